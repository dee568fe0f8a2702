"""LUNA16 nodule mode for the MPI extraction: one work unit per scan.

Inputs (``--inputs`` JSON): ``sidecars`` (the converted scans' JSON files, the ``.npy`` beside
each), ``masks_dir`` (label volumes ``<uid>.npy``), ``nodules`` (the subset's nodule table) and,
for the ``candidates`` strategy, ``candidates`` (candidates.csv).  Settings (``--settings-file``,
scope ``patches`` of :mod:`ctpatch.config`): ``seed``, ``buffer_patches`` and the ``luna16`` keys
``patch``, ``negatives`` and ``output``.

A rank holds one scan at a time: its volume and label mask, read in slabs straight into
(x, y, z) order (the patch order, so each patch is one copy of contiguous rows), plus at most
``buffer_patches`` patches per dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.geometry import VolumeGrid
from ctpatch.io.tables import read_candidates
from ctpatch.labels import label_patch
from ctpatch.layout import PROV_CROP, box_start, crop_edge
from ctpatch.luna import (MaskIndex, PatchLocation, crop_mask_xyz, cut_image_xyz, expected_counts, label_edge,
                          nodule_locations, patch_offsets, random_centres)
from ctpatch.rng import keyed_rng
from ctpatch.store import ShardWriter

PROV_NODULE = np.dtype([
    ("scan_index", "<i4"), ("patch_index", "<i4"), ("seriesuid", "S64"), ("nodule_index", "<i4"),
    ("annotation_row", "<i4"), ("shift_index", "<i4"), ("shift", "<i4", (3,)), ("centre_voxel", "<i4", (3,)),
    ("centre_world", "<f8", (3,)), ("nodule_voxel", "<i4", (3,)), ("nodule_world", "<f8", (3,)),
])
PROV_NEGATIVE = np.dtype([
    ("scan_index", "<i4"), ("patch_index", "<i4"), ("seriesuid", "S64"), ("negative_index", "<i4"),
    ("source", "S16"), ("candidate_row", "<i4"), ("centre_voxel", "<i4", (3,)), ("centre_world", "<f8", (3,)),
    ("touches_nodule", "?"),
])
DATASETS = ("nodule", "label_nodule", "non_nodule", "label_non_nodule")


def load_xyz(path, slab_bytes: int = 4 << 20) -> np.ndarray:
    """A (z, y, x) ``.npy`` volume as a C-contiguous (x, y, z) array, read ``slab_bytes`` at a time.

    Only the result and one slab are held (no memory map stays touched); the values are those
    of ``np.load(path).transpose(2, 1, 0)``.
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if len(shape) != 3 or fortran or dtype.hasobject:
            return np.ascontiguousarray(np.load(path, mmap_mode="r").transpose(2, 1, 0))
        nz, ny, nx = shape
        out = np.empty((nx, ny, nz), dtype=dtype)
        step = max(1, slab_bytes // max(ny * nx * dtype.itemsize, 1))
        buf = np.empty((min(step, nz), ny, nx), dtype=dtype)
        for z0 in range(0, nz, step):
            k = min(step, nz - z0)
            view = memoryview(buf[:k]).cast("B")
            if fh.readinto(view) != view.nbytes:
                raise ValueError(f"{path}: truncated: expected {shape} {dtype} (z, y, x)")
            out[:, :, z0:z0 + k] = buf[:k].transpose(2, 1, 0)
    return out


@dataclass(frozen=True)
class Unit:
    key: str
    index: int
    cost: float


class Job:
    def __init__(self, args):
        s, inp = args.settings, args.inputs
        self.settings = s
        self.seed = int(s["seed"])
        self.patch = s["patch"]
        self.neg = s["negatives"]
        self.out = s["output"]
        self.size = int(self.patch["size"])
        self.offsets = patch_offsets(self.patch)
        self.layout = self.out.get("layout", "full")
        if self.layout not in ("full", "crops"):
            raise ValueError(f"output.layout: expected 'full' or 'crops', got {self.layout!r}")
        self.crop = crop_edge(self.size, self.offsets)
        self.sidecars = sorted((Path(p) for p in inp["sidecars"]), key=lambda p: p.stem)
        self.uids = [p.stem for p in self.sidecars]
        self.masks_dir = Path(inp["masks_dir"])
        self.table = pd.read_csv(inp["nodules"], sep="\t", dtype={"seriesuid": str})
        unknown = set(self.table["seriesuid"]) - set(self.uids)
        if unknown:
            raise ValueError(f"{inp['nodules']}: nodules of scans not in this subset: {sorted(unknown)[:3]}")
        self.nodule_patches, self.negatives = expected_counts(self.table, self.uids, len(self.offsets), self.neg)
        self.candidates = None
        self.candidates_outside: dict[str, int] = {}
        if self.neg["strategy"] == "candidates":
            cand = read_candidates(inp["candidates"])
            self.candidates = cand[(cand["class"] == 0) & cand["seriesuid"].isin(self.uids)]

    def units(self) -> list[Unit]:
        return [Unit(uid, i, 1.0 + self.nodule_patches[uid] + self.negatives[uid]) for i, uid in enumerate(self.uids)]

    def writer(self, path) -> ShardWriter:
        p, lab = self.size, label_edge(self.patch)
        img_shape, lab_shape = (p, p, p, 1), (lab, lab, lab, 2)
        specs = {"nodule": (img_shape, self.out["dtype"]), "label_nodule": (lab_shape, "float32"),
                 "non_nodule": (img_shape, self.out["dtype"]), "label_non_nodule": (lab_shape, "float32")}
        tables = {"nodule": PROV_NODULE, "non_nodule": PROV_NEGATIVE}
        if self.layout == "crops":  # one crop per nodule instead of its shifted patches (ctpatch.layout)
            del specs["nodule"]
            specs = {"nodule_crop": ((self.crop,) * 3 + (1,), self.out["dtype"]), **specs}
            tables["nodule_crop"] = PROV_CROP
        w = ShardWriter(path, specs, tables, compression=self.out["compression"],
                        buffer=int(self.settings["buffer_patches"]))
        if self.layout == "crops":
            w.datasets["nodule_crop"].attrs["patch_edge"] = p
        return w

    def run(self, unit: Unit, w: ShardWriter) -> dict:
        sidecar_path = self.sidecars[unit.index]
        sidecar = json.loads(sidecar_path.read_text())
        grid = VolumeGrid.from_dict(sidecar["grid"])
        volume = load_xyz(sidecar_path.with_suffix(".npy"))  # (x, y, z)
        mask = load_xyz(self.masks_dir / f"{unit.key}.npy")  # (x, y, z)
        if volume.shape != grid.size or mask.shape != grid.size:
            raise ValueError(f"{sidecar_path}: volume {volume.shape[::-1]} / mask {mask.shape[::-1]} do not match "
                             f"the grid {grid.shape_zyx} (z, y, x)")
        fill, pool, dtype = sidecar["min"], int(self.patch["label_pool"]), self.out["dtype"]
        index = MaskIndex(mask)
        empty_label = label_patch(np.zeros((self.size,) * 3, dtype=bool), pool)  # the label of a crop without nodule

        def label_and_touch(loc):
            if not index.may_touch(loc):
                return empty_label, False
            box = crop_mask_xyz(mask, loc)
            return label_patch(box, pool), bool(box.any())

        nod = self.table[self.table["seriesuid"] == unit.key].sort_values("nodule_index")
        centres_xyz = nod[["voxel_x", "voxel_y", "voxel_z"]].to_numpy(np.int64)
        k = 0
        row, row_n = None, -1
        crops = self.layout == "crops"
        for n, s, loc in nodule_locations(centres_xyz[:, ::-1], self.offsets, self.size):
            centre_xyz = np.asarray(loc.centre_zyx[::-1])
            if n != row_n:
                row, row_n = nod.iloc[n], n
                if crops:  # the box around the nodule that holds all its shifted patches
                    cut_image_xyz(volume, PatchLocation(tuple(int(v) for v in centres_xyz[n][::-1]), self.crop),
                                  fill, dtype, out=w.slot("nodule_crop"))
                    w.commit("nodule_crop")
                    w.add_row("nodule_crop", (unit.index, unit.key.encode(), n, int(row["annotation_row"]),
                                              centres_xyz[n], box_start(centres_xyz[n], self.crop), self.crop))
            if not crops:
                cut_image_xyz(volume, loc, fill, dtype, out=w.slot("nodule"))
                w.commit("nodule")
            w.add("label_nodule", label_and_touch(loc)[0])
            w.add_row("nodule", (unit.index, k, unit.key.encode(), n, int(row["annotation_row"]), s,
                                 self.offsets[s], centre_xyz, grid.index_to_world(centre_xyz), centres_xyz[n],
                                 (row["world_x"], row["world_y"], row["world_z"])))
            k += 1
        negs = self.negative_locations(unit, grid, mask, index)
        for j, (loc, source, cand_row) in enumerate(negs):
            centre_xyz = np.asarray(loc.centre_zyx[::-1])
            cut_image_xyz(volume, loc, fill, dtype, out=w.slot("non_nodule"))
            w.commit("non_nodule")
            label, touches = label_and_touch(loc)
            w.add("label_non_nodule", label)
            w.add_row("non_nodule", (unit.index, j, unit.key.encode(), j, source.encode(), cand_row, centre_xyz,
                                     grid.index_to_world(centre_xyz), touches))
        counts = {"nodules": len(nod), "nodule_patches": k, "negatives": len(negs)}
        if unit.key in self.candidates_outside:
            counts["candidates_outside_volume"] = self.candidates_outside[unit.key]
        return counts

    def negative_locations(self, unit: Unit, grid: VolumeGrid, mask, index: MaskIndex | None = None
                           ) -> list[tuple[PatchLocation, str, int]]:
        """The negatives of one scan as (location, source, candidates.csv row or -1); ``mask`` is (x, y, z)."""
        count = self.negatives[unit.key]
        rng = keyed_rng(self.seed, "negatives", unit.key)
        strategy = self.neg["strategy"]
        if strategy == "random":
            return [(PatchLocation(tuple(int(v) for v in c), self.size), "random", -1)
                    for c in random_centres(grid.shape_zyx, count, rng)]
        out = []
        if strategy == "candidates":
            cand = self.candidates[self.candidates["seriesuid"] == unit.key]
            vox = grid.world_to_voxel(cand[["coordX", "coordY", "coordZ"]].to_numpy(float)).reshape(-1, 3)
            inside = np.all((vox >= 0) & (vox < np.asarray(grid.size)), axis=1)
            self.candidates_outside[unit.key] = int((~inside).sum())
            order = rng.permutation(np.flatnonzero(inside))[:count]
            out = [(PatchLocation(tuple(int(v) for v in vox[i][::-1]), self.size), "candidate",
                    int(cand["row"].iloc[i])) for i in order]
        source = "avoid_nodules" if strategy == "avoid_nodules" else "fill"
        while len(out) < count:
            for _ in range(int(self.neg["max_tries"])):
                loc = PatchLocation(tuple(int(v) for v in random_centres(grid.shape_zyx, 1, rng)[0]), self.size)
                if not ((index is None or index.may_touch(loc)) and crop_mask_xyz(mask, loc).any()):
                    out.append((loc, source, -1))
                    break
            else:
                raise RuntimeError(f"scan {unit.key}: no patch free of nodules found in {self.neg['max_tries']} "
                                   f"draws (negative {len(out)} of {count}); raise negatives.max_tries or use "
                                   f"strategy 'random'")
        return out
