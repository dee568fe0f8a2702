"""The crops layout: one crop per nodule instead of its shifted patches (:mod:`ctpatch.core.bricks`).

``nodule_crop`` ((nodules, C, C, C, 1), with ``provenance/nodule_crop``) holds the box around each
nodule that holds all its shifted patches, ``nodule_view`` ((N, 4) int32: crop row, then the x, y, z
start) where each nodule patch lies in its crop; the negatives, labels and provenance are stored as
in the full layout.  :class:`CropPatches` reads the nodule patches like the full layout's dataset.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ctpatch.core.bricks import box_start, crop_edge, cut_from_crop, match_crops, shift_margin, view_starts
from ctpatch.core.nodules import PatchLocation, cut_image_xyz
from ctpatch.core.shifts import shift_offsets
from ctpatch.luna16.layouts.base import (
    Compact,
    CutSizes,
    ExportError,
    NodulePatch,
    PlanSizes,
    RowReader,
    copy_attrs,
    copy_datasets,
)
from ctpatch.settings.types import LunaPatches
from ctpatch.store.atomic import atomic_path
from ctpatch.store.codecs import create_patch_dataset
from ctpatch.store.h5 import h5py

PROV_CROP = np.dtype(
    [
        ("scan_index", "<i4"),
        ("seriesuid", "S64"),
        ("nodule_index", "<i4"),
        ("annotation_row", "<i4"),
        ("centre_voxel", "<i4", (3,)),
        ("start_voxel", "<i4", (3,)),
        ("edge", "<i4"),
    ]
)

#: bytes of one ``nodule_view`` row (four int32)
VIEW_ROW_BYTES = 16


class CropPatches(RowReader):
    """The nodule patches of a crops-layout file, read like the full layout's ``nodule`` dataset.

    ``[i]`` is one patch (P, P, P, 1), ``[i:j]`` (or an increasing index list) a block; reading a
    block decodes each crop it needs once.  The ``cache`` most recently decoded crops are kept,
    so reading the rows of one nodule one by one decodes its crop once; random single reads
    decode one crop (``C³``, about 7 × a patch) each.
    """

    def __init__(self, f: h5py.File, cache: int = 2):
        self.crops = f["nodule_crop"]
        self.views = f["nodule_view"][...]
        self.patch = int(self.crops.attrs["patch_edge"])
        self.edge = int(self.crops.shape[1])
        self.shape = (len(self.views), self.patch, self.patch, self.patch, self.crops.shape[-1])
        self.dtype = self.crops.dtype
        self.ndim = len(self.shape)
        self.name = "/nodule"
        self.file = f
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._keep = max(1, int(cache))
        if len(self.views) and (self.views[:, 0].min() < 0 or self.views[:, 0].max() >= self.crops.shape[0]):
            raise ValueError(f"{f.filename}: nodule_view names crops outside [0, {self.crops.shape[0]})")

    def crop(self, c: int) -> np.ndarray:
        """Crop ``c`` decoded (cached)."""
        c = int(c)
        arr = self._cache.get(c)
        if arr is None:
            arr = np.empty(self.crops.shape[1:], dtype=self.dtype)
            self.crops.read_direct(arr, np.s_[c], np.s_[...])
            self._cache[c] = arr
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(c)
        return arr

    def read_rows(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        """Patches ``rows`` into ``out`` ((len(rows), P, P, P, channels)), each crop decoded once."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        v = self.views[rows]
        for j in np.argsort(v[:, 0], kind="stable"):
            out[j] = cut_from_crop(self.crop(v[j, 0]), v[j, 1:], self.patch)
        return out


def write_nodule_view(f: h5py.File) -> None:
    """Crops layout: crop row and start inside it of every nodule patch, aligned with ``provenance/nodule``."""
    prov, table = f["provenance/nodule"][...], f["provenance/nodule_crop"][...]
    patch_keys = np.stack([prov["scan_index"], prov["nodule_index"]], axis=1) if len(prov) else np.zeros((0, 2), int)
    crop_keys = np.stack([table["scan_index"], table["nodule_index"]], axis=1)
    crop_row = match_crops(patch_keys, crop_keys)
    crops = f["nodule_crop"]
    starts = view_starts(
        prov["centre_voxel"], table["start_voxel"][crop_row], int(crops.attrs["patch_edge"]), crops.shape[1]
    )
    f.create_dataset("nodule_view", data=np.concatenate([crop_row[:, None], starts], axis=1).astype(np.int32))


class Crops(Compact):
    """The crops layout: nodule patches cut on reading from one crop per nodule, negatives stored as cut."""

    name = "crops"
    marks = ("nodule_crop", "nodule_view")
    stores = ("non_nodule",)
    own = "nodule_crop"
    table = PROV_CROP
    objects = ("nodule_crop", "nodule_view", "provenance/nodule_crop")
    finish = staticmethod(write_nodule_view)

    def edge(self, sizes: CutSizes) -> int:
        return sizes.crop

    def store(self, w, kind, volume, fill, loc, sizes: CutSizes, nodule: NodulePatch | None) -> None:
        """The nodule's crop before its first shift, then the patch if its kind is stored."""
        if nodule is not None and nodule.shift_index == 0:  # the box around the nodule that holds all its shifts
            centre = nodule.centre_xyz
            cut_image_xyz(
                volume,
                PatchLocation(tuple(int(v) for v in centre[::-1]), sizes.crop),
                fill,
                sizes.dtype,
                out=w.slot(self.own),
            )
            w.commit(self.own)
            w.add_row(
                self.own,
                (
                    nodule.scan_index,
                    nodule.seriesuid,
                    nodule.nodule_index,
                    nodule.annotation_row,
                    centre,
                    box_start(centre, sizes.crop),
                    sizes.crop,
                ),
            )
        super().store(w, kind, volume, fill, loc, sizes, nodule)

    def own_rows(self, nodules: int, scan_items: int) -> dict:
        return {self.own: nodules}

    def has_images(self, f: h5py.File, name: str) -> bool:
        return name in f or name == "nodule"

    def images(self, f: h5py.File, name: str, cache_mb: float):
        if name in f:
            return f[name]
        if name == "nodule":
            return CropPatches(f)
        raise KeyError(f"{f.filename}: no dataset {name!r}")

    def check(self, f, settings: LunaPatches, scans, inputs, provs, nodules: int) -> tuple[list[str], dict]:
        """One crop per nodule of the expected edge, each nodule patch where its shift puts it."""
        patch = settings.patch
        offsets = shift_offsets(patch.stride, patch.shifts_per_side, patch.directions)
        prov = provs[0]
        fails = []
        crops, view, table = f["nodule_crop"], f["nodule_view"][...], f["provenance/nodule_crop"][...]
        edge = crop_edge(patch.size, offsets)
        report = {"layout": self.name, "nodule_crops": int(crops.shape[0])}
        if crops.shape[1:] != (edge,) * 3 + (1,):
            fails.append(f"nodule_crop: expected crops of shape {(edge,) * 3 + (1,)}, got {crops.shape[1:]}")
        if crops.shape[0] != nodules or len(table) != nodules:
            fails.append(
                f"nodule_crop: expected {nodules} crops (one per nodule), got {crops.shape[0]} "
                f"(provenance rows {len(table)})"
            )
        if view.shape != (len(prov), 4):
            return fails + [f"nodule_view: expected shape {(len(prov), 4)}, got {view.shape}"], report
        if len(prov) and len(table):
            if view[:, 0].min() < 0 or view[:, 0].max() >= len(table):
                return fails + ["nodule_view: crop rows outside the crop table"], report
            crop = table[view[:, 0]]
            same = (crop["scan_index"] == prov["scan_index"]) & (crop["nodule_index"] == prov["nodule_index"])
            if not np.all(same):
                fails.append(f"nodule_view: {int((~same).sum())} nodule patches point to another nodule's crop")
            expected = shift_margin(offsets) + prov["shift"]  # where the shift puts the patch inside the crop
            off = ~np.all(view[:, 1:] == expected, axis=1)
            if np.any(off):
                fails.append(f"nodule_view: {int(off.sum())} nodule patches not at margin + shift inside their crop")
        return fails, report

    def export(self, src: h5py.File, dst_path, codec: str, recode: str | None) -> dict:
        """The nodule patches cut from one decoded crop at a time (memory: one crop plus one patch)."""
        crops, view = src["nodule_crop"], src["nodule_view"][...]
        patch = int(crops.attrs["patch_edge"])
        if len(view) and (view[:, 0].min() < 0 or view[:, 0].max() >= crops.shape[0]):
            raise ExportError(f"{src.filename}: nodule_view names crops outside [0, {crops.shape[0]})")
        with atomic_path(dst_path) as tmp, h5py.File(tmp, "w") as dst:
            copy_attrs(src, dst, recode)
            out = create_patch_dataset(dst, "nodule", (patch,) * 3 + crops.shape[-1:], crops.dtype, codec)
            out.resize(len(view), axis=0)
            crop = np.empty(crops.shape[1:], dtype=crops.dtype)
            order = np.argsort(view[:, 0], kind="stable")
            bounds = np.flatnonzero(np.diff(view[order, 0])) + 1
            for rows in np.split(order, bounds) if len(order) else []:
                crops.read_direct(crop, np.s_[int(view[rows[0], 0])], np.s_[...])
                for r in np.sort(rows):
                    out[int(r)] = cut_from_crop(crop, view[r, 1:], patch)
            copy_datasets(src, dst, (*self.objects, "nodule"), recode)
        return {"nodule_patches": int(len(view)), "crops": int(crops.shape[0])}

    def plan(self, group: dict, sizes: PlanSizes, image_bytes, combos) -> None:
        """Per nodule one crop of edge C instead of its patches' images, estimated as (C / P)³ patches (crops
        compress like patches), plus a view row per nodule patch and a table row per crop."""
        n, ratio = group["patches"], (sizes.crop / sizes.patch) ** 3
        group["raw_bytes"] += int(group["nodules"] * sizes.image_raw * ratio - n["nodule"] * sizes.image_raw)
        for d, c in combos:
            img = image_bytes("nodule", d, c)
            group["file_bytes"][f"{d}/{c}"] += (
                group["nodules"] * img * ratio
                - n["nodule"] * img
                + n["nodule"] * VIEW_ROW_BYTES
                + group["nodules"] * PROV_CROP.itemsize
            )
