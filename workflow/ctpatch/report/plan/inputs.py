"""What a plan is made from: the scans of the run (headers only) and the annotations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.geometry import VolumeGrid, resampled_grid
from ctpatch.io.folders import under
from ctpatch.luna16.discover import luna16_scans, subset_number


class PlanError(ValueError):
    """Inputs the plan cannot read; the message names the file or key."""


# ---------------------------------------------------------------------------------------- LUNA16 inputs
@dataclass
class Scan:
    """One scan of the plan: its subset, uid, source and output grids, bytes per voxel, header path
    (None for the demo) and demo plan (None for real data)."""

    subset: str
    uid: str
    grid: VolumeGrid  # source grid, (x, y, z)
    out: VolumeGrid  # converted grid
    element_bytes: int
    path: Path | None  # .mhd (None for demo scans, which do not exist yet)
    plan: object = None  # demo ScanPlan

    @property
    def in_voxels(self) -> int:
        """Voxels of the source grid."""
        return int(np.prod(self.grid.size, dtype=np.int64))

    @property
    def out_voxels(self) -> int:
        """Voxels of the resampled (output) grid."""
        return int(np.prod(self.out.size, dtype=np.int64))


def luna_inputs(config: dict, workdir: Path) -> tuple[list[Scan], pd.DataFrame, list[str], str]:
    """The scans of the selected subsets (headers only), the annotations, warnings, and the root."""
    from ctpatch.io.mhd import ELEMENT_BYTES, ScanError, read_header
    from ctpatch.io.tables import read_annotations

    luna, warnings = config["luna16"], []
    rs = luna["resample"]

    def out_grid(g):
        return resampled_grid(g, rs["spacing_mm"]) if rs["enabled"] else g

    scans: list[Scan] = []
    found = luna16_scans(config, workdir)  # the scans the workflow finds (DiscoveryError: a ValueError)
    warnings += found.warnings
    if luna["root"] == "demo":
        from ctpatch.luna16.demo import plan_scans

        root = f"{config['results']}/demo/luna16"
        rows = []
        for p in plan_scans(config["demo"], config["seed"]):
            scans.append(Scan(p.subset, p.series_uid, p.grid, out_grid(p.grid), 2, None, p))
            rows += [(p.series_uid, *n.world, n.diameter_mm) for n in p.nodules]
        ann = pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        ann.insert(0, "row", np.arange(len(ann)) + 2)
    else:
        root = luna["root"]
        rpath = under(root, workdir)
        for d, uids in ((rpath / s, uids) for s, uids in found.scans.items()):
            for mhd in (d / f"{uid}.mhd" for uid in uids):
                try:
                    h = read_header(mhd)
                except ScanError as exc:
                    warnings.append(str(exc))
                    continue
                if not h.compressed:
                    want = int(np.prod(h.grid.size)) * ELEMENT_BYTES[h.element_type]
                    have = h.data_file.stat().st_size if h.data_file.is_file() else None
                    if have != want:
                        warnings.append(
                            f"{h.data_file}: {'missing' if have is None else f'{have} bytes'}, header declares {want}"
                        )
                scans.append(Scan(d.name, h.series_uid, h.grid, out_grid(h.grid), ELEMENT_BYTES[h.element_type], mhd))
        ann = read_annotations(under(luna["annotations"], rpath), luna["duplicate_annotations"])
    wanted = list(found.scans)
    missing = [s for s, uids in found.scans.items() if not uids]
    if missing:
        warnings.append(f"subsets without scans: {missing}")
    unknown = sorted(set(ann["seriesuid"]) - {s.uid for s in scans})
    if unknown:
        warnings.append(
            f"{len(unknown)} annotated series have no scan under the root (luna16.unknown_series: "
            f"{luna['unknown_series']}), e.g. {unknown[0]}"
        )
    scans = sorted((s for s in scans if s.subset in wanted), key=lambda s: (subset_number(s.subset), s.uid))
    if not scans:
        raise PlanError(f"luna16: no scans in subsets {wanted} under {root}")
    return scans, ann, warnings, root


def _nodule_rows(world_by_uid: dict, scan: Scan) -> tuple[int, int]:
    """(nodules, of which outside the converted volume) of one scan."""
    a = world_by_uid.get(scan.uid)
    if a is None:
        return 0, 0
    idx = np.rint(scan.out.world_to_index(a)).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(scan.out.size)), axis=1)
    return int(len(a)), int((~inside).sum())


# ---------------------------------------------------------------------------------------- sampling helpers
