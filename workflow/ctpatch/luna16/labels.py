"""Label volumes and the nodule table of one LUNA16 subset.

For every scan of the subset: the union of the annotation spheres on the converted grid (bool,
(z, y, x), saved as ``<uid>.npy``), and one table row per nodule with the world position, the
voxel centre on the converted grid ((x, y, z), nearest voxel: within half a voxel of the world
position) and the radius in voxels.  World -> voxel uses the grid's direction cosines.

Usage: ``python -m ctpatch.luna16.labels --subset subset0 --sidecars A.json B.json
--annotations annotations.csv [--settings-file check.json] --masks-dir DIR --table-out nodules.tsv``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.geometry import VolumeGrid
from ctpatch.core.labels import nodule_radius_voxels, paint_sphere
from ctpatch.io.tables import TableError, read_annotations
from ctpatch.settings import ConfigError, defaults, read_settings
from ctpatch.store.atomic import atomic_path, save_npy

TABLE_COLUMNS = [
    "subset",
    "seriesuid",
    "nodule_index",
    "annotation_row",
    "world_x",
    "world_y",
    "world_z",
    "diameter_mm",
    "voxel_x",
    "voxel_y",
    "voxel_z",
    "index_x",
    "index_y",
    "index_z",
    "radius_vox",
]


class LabelError(ValueError):
    """An annotation that cannot be placed; names the file, the row and the scan."""


def nodules_of_scan(ann: pd.DataFrame, grid: VolumeGrid, subset: str, uid: str, annotations_path) -> list[dict]:
    """The nodule rows of one scan, in annotation-file order."""
    rows = []
    for k, rec in enumerate(ann[ann["seriesuid"] == uid].itertuples(index=False)):
        world = (rec.coordX, rec.coordY, rec.coordZ)
        idx = grid.world_to_index(world)
        vox = np.rint(idx).astype(np.int64)
        if not grid.contains_index(vox):
            raise LabelError(
                f"{annotations_path}: row {rec.row}: nodule centre {world} mm is outside the volume of scan {uid} "
                f"(voxel {vox.tolist()} of size {list(grid.size)}, (x, y, z))"
            )
        rows.append(
            {
                "subset": subset,
                "seriesuid": uid,
                "nodule_index": k,
                "annotation_row": int(rec.row),
                "world_x": world[0],
                "world_y": world[1],
                "world_z": world[2],
                "diameter_mm": rec.diameter_mm,
                "voxel_x": int(vox[0]),
                "voxel_y": int(vox[1]),
                "voxel_z": int(vox[2]),
                "index_x": float(idx[0]),
                "index_y": float(idx[1]),
                "index_z": float(idx[2]),
                "radius_vox": nodule_radius_voxels(rec.diameter_mm, grid.spacing[1]),
            }
        )
    return rows


def label_volume(grid: VolumeGrid, nodules: list[dict]) -> np.ndarray:
    """The union of the nodules' spheres, bool (z, y, x)."""
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    for n in nodules:
        paint_sphere(mask, (n["voxel_z"], n["voxel_y"], n["voxel_x"]), n["radius_vox"])
    return mask


def main(argv=None) -> int:
    """``python -m ctpatch.luna16.labels`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.labels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", required=True)
    ap.add_argument("--sidecars", nargs="+", required=True, help="JSON sidecars of the converted scans")
    ap.add_argument("--annotations", required=True)
    ap.add_argument(
        "--settings-file",
        default=None,
        help="settings of scope 'check' (duplicate_annotations); default: the schema's (fail)",
    )
    ap.add_argument("--masks-dir", required=True)
    ap.add_argument("--table-out", required=True)
    args = ap.parse_args(argv)
    try:
        duplicates = (read_settings(args.settings_file, scope="check") if args.settings_file else defaults("check"))[
            "duplicate_annotations"
        ]
        ann = read_annotations(args.annotations, duplicates)
        table, masks = [], []
        for sidecar_path in args.sidecars:
            sidecar = json.loads(Path(sidecar_path).read_text())
            grid = VolumeGrid.from_dict(sidecar["grid"])
            rows = nodules_of_scan(ann, grid, args.subset, sidecar["seriesuid"], args.annotations)
            table += rows
            masks.append((sidecar["seriesuid"], grid, rows))
    except (TableError, LabelError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for uid, grid, rows in masks:  # every annotation is checked before the first mask is written
        save_npy(Path(args.masks_dir) / f"{uid}.npy", label_volume(grid, rows))
    with atomic_path(args.table_out) as tmp:
        pd.DataFrame(table, columns=TABLE_COLUMNS).to_csv(tmp, sep="\t", index=False)
    print(f"{args.subset}: {len(masks)} scans, {len(table)} nodules")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
