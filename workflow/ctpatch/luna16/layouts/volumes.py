"""The volumes layout: each scan's volume once, in bricks; every image patch cut from them on reading.

``volume_brick`` ((bricks, B, B, B, 1), with ``provenance/volume_brick``) tiles each converted scan
into cubic bricks (:mod:`ctpatch.core.bricks`); no image patch is stored, the labels and provenance
are stored as in the full layout.  :class:`VolumePatches` reads ``nodule`` and ``non_nodule`` like the
full layout's datasets, through a process-wide cache of decoded bricks (:data:`BRICKS`).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ctpatch.core.bricks import brick_grid, brick_indices, brick_span, cut_brick
from ctpatch.core.geometry import VolumeGrid
from ctpatch.luna16.layouts.base import (
    KINDS,
    Compact,
    CutSizes,
    ExportError,
    PlanSizes,
    RowReader,
    copy_attrs,
    copy_datasets,
)
from ctpatch.settings.types import LunaPatches
from ctpatch.store.atomic import atomic_path
from ctpatch.store.codecs import create_patch_dataset
from ctpatch.store.h5 import h5py

PROV_BRICK = np.dtype(
    [
        ("scan_index", "<i4"),
        ("seriesuid", "S64"),
        ("brick", "<i4", (3,)),
        ("start_voxel", "<i4", (3,)),
        ("volume_size", "<i4", (3,)),
        ("fill", "<f8"),
    ]
)

#: decoded bricks kept for the volumes-layout readers of a process, in MiB, shared by every reader and
#: file (a block read in scan and x order sweeps a slab a few bricks deep: ~54 MB for a
#: 350 x 350 x 300 float32 scan with 32³ bricks)
BRICK_CACHE_MB = 128


class BrickCache:
    """Least-recently-used decoded bricks, keyed by (file, row), up to a byte budget; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: OrderedDict = OrderedDict()
        self.nbytes = 0

    def get(self, key):
        with self._lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
            return arr

    def put(self, key, arr: np.ndarray, budget: int) -> None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return
            self._items[key] = arr
            self.nbytes += arr.nbytes
            while self.nbytes > budget and self._items:
                self.nbytes -= self._items.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0


#: the process's brick cache (forked workers start with a copy and fill their own)
BRICKS = BrickCache()


class VolumePatches(RowReader):
    """The ``nodule`` or ``non_nodule`` patches of a volumes-layout file, read like the full layout's dataset.

    Patch ``i`` is the box of edge ``P`` starting at ``centre_voxel - P // 2`` in the volume of its
    ``scan_index`` (provenance), assembled from the bricks it touches (one HDF5 read per run of them
    along z); voxels outside the volume are the scan's fill.  Decoded bricks are kept in the
    process's :data:`BRICKS` cache, up to ``cache_mb`` MiB over all readers and files (least
    recently used dropped first; 0: no cache); a block of rows is read in scan and x order, so it
    decodes each brick it needs about once.
    """

    def __init__(self, f: h5py.File, kind: str, cache_mb: float = BRICK_CACHE_MB):
        self.bricks = f["volume_brick"]
        self.edge = int(self.bricks.shape[1])
        self.patch = int(self.bricks.attrs["patch_edge"])
        prov = f[f"provenance/{kind}"]
        self.scan = prov.fields("scan_index")[...].astype(np.int64)
        self.start = prov.fields("centre_voxel")[...].astype(np.int64) - self.patch // 2
        self.shape = (len(self.scan), self.patch, self.patch, self.patch, self.bricks.shape[-1])
        self.dtype = self.bricks.dtype
        self.ndim = len(self.shape)
        self.name = f"/{kind}"
        self.file = f
        self.volumes = volume_index(f["provenance/volume_brick"][...], f.filename)
        missing = sorted(set(np.unique(self.scan).tolist()) - set(self.volumes))
        if missing:
            raise ValueError(f"{f.filename}: provenance/{kind} names scans without bricks: {missing[:3]}")
        self._budget = max(0, int(cache_mb * (1 << 20)))
        st = os.stat(f.filename)  # the cache's key: this file's contents (any handle, either kind)
        self._key = (os.path.realpath(f.filename), st.st_mtime_ns, st.st_size, st.st_ino)
        self._buf = np.empty((0, *self.bricks.shape[1:]), dtype=self.dtype)

    def _read(self, rows: np.ndarray, buf: np.ndarray) -> None:
        """Bricks ``rows`` (increasing) into ``buf``: one HDF5 read per run of consecutive rows (a union of
        runs in one read is much slower in HDF5 1.14)."""
        dsid = self.bricks.id
        fspace = dsid.get_space()
        tail = tuple(self.bricks.shape[1:])
        zeros = (0,) * len(tail)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            count = (int(b - a), *tail)
            fspace.select_hyperslab((int(rows[a]), *zeros), count)
            dsid.read(h5py.h5s.create_simple(count), fspace, buf[a:b])

    def _bricks(self, rows: list[int]) -> list[np.ndarray]:
        """Bricks ``rows`` (increasing) decoded: cached ones reused, the others read together."""
        keep = self._budget > 0
        got = [BRICKS.get((self._key, r)) for r in rows] if keep else [None] * len(rows)
        miss = [i for i, g in enumerate(got) if g is None]
        if miss:
            shape = (len(miss), *self.bricks.shape[1:])
            if len(self._buf) < len(miss):
                self._buf = np.empty(shape, dtype=self.dtype)
            buf = self._buf[: len(miss)]
            self._read(np.asarray([rows[i] for i in miss], dtype=np.int64), buf)
            for j, i in enumerate(miss):
                got[i] = buf[j]
                if keep:  # a copy: a view would keep the whole read buffer alive
                    BRICKS.put((self._key, rows[i]), buf[j].copy(), self._budget)
        return got

    def cut(self, i: int, dest: np.ndarray) -> np.ndarray:
        """Patch ``i`` into ``dest`` ((P, P, P, channels), the dtype)."""
        first_row, grid, fill = self.volumes[int(self.scan[i])]
        e, p, start = self.edge, self.patch, self.start[i]
        first, last = brick_span(start, p, e, grid)
        if np.any(start < 0) or np.any(start + p > grid * e) or np.any(last < first):
            dest[...] = fill  # past the bricks (the bricks' own padding holds the fill too)
        if np.any(last < first):
            return dest
        gy, gz = int(grid[1]), int(grid[2])
        where = [
            (bx, by, bz)
            for bx in range(int(first[0]), int(last[0]) + 1)
            for by in range(int(first[1]), int(last[1]) + 1)
            for bz in range(int(first[2]), int(last[2]) + 1)
        ]
        bricks = self._bricks([first_row + (bx * gy + by) * gz + bz for bx, by, bz in where])
        sx, sy, sz = (int(v) for v in start)
        for (bx, by, bz), brick in zip(where, bricks):
            x0, x1 = max(bx * e, sx), min(bx * e + e, sx + p)
            y0, y1 = max(by * e, sy), min(by * e + e, sy + p)
            z0, z1 = max(bz * e, sz), min(bz * e + e, sz + p)
            dest[x0 - sx : x1 - sx, y0 - sy : y1 - sy, z0 - sz : z1 - sz] = brick[
                x0 - bx * e : x1 - bx * e, y0 - by * e : y1 - by * e, z0 - bz * e : z1 - bz * e
            ]
        return dest

    def read_rows(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        """Patches ``rows`` into ``out`` ((len(rows), P, P, P, channels)), in scan and x order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for j in np.lexsort((self.start[rows, 0], self.scan[rows])):
            self.cut(int(rows[j]), out[j])
        return out


def volume_index(table: np.ndarray, where: str = "") -> dict:
    """Scan index -> (first brick row, bricks per axis (x, y, z), fill in the brick dtype) from
    ``provenance/volume_brick``; raises when a scan's bricks are not one run in C order."""
    out = {}
    scans = table["scan_index"]
    if len(scans) and np.any(np.diff(scans) < 0):
        raise ValueError(f"{where}: provenance/volume_brick: scans not in order")
    for s in np.unique(scans):
        rows = np.flatnonzero(scans == s)
        idx = table["brick"][rows].astype(np.int64)
        grid = idx.max(axis=0) + 1
        want = np.stack(np.unravel_index(np.arange(len(rows)), tuple(grid)), axis=1)
        if len(rows) != int(np.prod(grid)) or not np.array_equal(idx, want):
            raise ValueError(
                f"{where}: provenance/volume_brick: the bricks of scan {int(s)} are not its grid in C order"
            )
        out[int(s)] = (int(rows[0]), grid, table["fill"][rows[0]])
    return out


#: patches cut and written per call when exporting a volumes-layout file
EXPORT_BLOCK = 64


class Volumes(Compact):
    """The volumes layout: every image patch cut on reading from its scan's bricks."""

    name = "volumes"
    marks = ("volume_brick", "provenance/volume_brick")
    stores = ()
    own = "volume_brick"
    table = PROV_BRICK
    objects = ("volume_brick", "provenance/volume_brick")

    def edge(self, sizes: CutSizes) -> int:
        return sizes.brick

    def scan_items(self, size_xyz, sizes: CutSizes) -> int:
        return len(brick_indices(size_xyz, sizes.brick))

    def cut_scan_items(self, w, volume, fill, sizes: CutSizes, scan_index: int, key: bytes, start: int, stop: int):
        """The scan's bricks ``[start, stop)``, each with its row (the fill as the patches hold it)."""
        size = np.asarray(volume.shape, dtype=np.int64)
        fill_out = float(np.asarray(np.asarray(fill, dtype=volume.dtype), dtype=sizes.dtype))
        for index in brick_indices(size, sizes.brick)[start:stop]:
            cut_brick(volume, index, sizes.brick, fill, w.slot(self.own))
            w.commit(self.own)
            w.add_row(self.own, (scan_index, key, index, index * sizes.brick, size, fill_out))
        return {"volume_bricks": max(0, stop - start)}

    def own_rows(self, nodules: int, scan_items: int) -> dict:
        return {self.own: scan_items}

    def has_images(self, f: h5py.File, name: str) -> bool:
        return name in f or (name in KINDS and f"provenance/{name}" in f)

    def images(self, f: h5py.File, name: str, cache_mb: float):
        if name in f:
            return f[name]
        if self.has_images(f, name):
            return VolumePatches(f, name, cache_mb)
        raise KeyError(f"{f.filename}: no dataset {name!r}")

    def check(self, f, settings: LunaPatches, scans, inputs, provs, nodules: int) -> tuple[list[str], dict]:
        """Bricks of the configured edge, each scan's grid of bricks once and in C order, every patch's scan
        present; with ``inputs``, each volume's size that of its converted scan."""
        fails = []
        bricks, table = f["volume_brick"], f["provenance/volume_brick"][...]
        report = {"layout": self.name, "volume_bricks": int(bricks.shape[0])}
        edge = settings.output.brick
        if bricks.shape[1:] != (edge,) * 3 + (1,):
            fails.append(f"volume_brick: expected bricks of shape {(edge,) * 3 + (1,)}, got {bricks.shape[1:]}")
        if bricks.shape[0] != len(table):
            fails.append(f"volume_brick: {bricks.shape[0]} bricks but {len(table)} rows in provenance/volume_brick")
        try:
            index = volume_index(table, f.filename)
        except ValueError as exc:
            return fails + [str(exc)], report
        uids = sorted(scans)
        if sorted(index) != list(range(len(uids))):
            fails.append(
                f"volume_brick: bricks of scans {sorted(index)[:5]}, expected one volume per scan 0..{len(uids) - 1}"
            )
        for s, (first, grid, _) in index.items():
            rows = table[first : first + int(np.prod(grid))]
            if not np.all(rows["seriesuid"] == (uids[s].encode() if s < len(uids) else b"")):
                fails.append(
                    f"volume_brick: the bricks of scan_index {s} do not name series {uids[s] if s < len(uids) else '?'}"
                )
            if not np.array_equal(rows["start_voxel"], rows["brick"] * edge):
                fails.append(f"volume_brick: bricks of scan_index {s} not at brick index x {edge}")
            size = rows["volume_size"]
            if np.any(size != size[0]) or not np.array_equal(brick_grid(size[0], edge), grid):
                fails.append(
                    f"volume_brick: scan_index {s}: {grid.tolist()} bricks do not tile its volume {size[0].tolist()}"
                )
        for name, prov in zip(KINDS, provs):
            missing = sorted(set(np.unique(prov["scan_index"]).tolist()) - set(index))
            if missing:
                fails.append(f"provenance/{name}: patches of scans without bricks: {missing[:3]}")
        if inputs is not None and "sidecars" in inputs:
            for path in sorted((Path(p) for p in inputs["sidecars"]), key=lambda p: p.stem):
                if path.stem not in uids or uids.index(path.stem) not in index:
                    continue
                s = uids.index(path.stem)
                size = VolumeGrid.from_dict(json.loads(path.read_text())["grid"]).size
                stored = table["volume_size"][index[s][0]]
                if tuple(int(v) for v in stored) != tuple(int(v) for v in size):
                    fails.append(
                        f"volume_brick: scan {path.stem}: volume {stored.tolist()}, converted scan {list(size)} (x, y, z)"
                    )
        return fails, report

    def export(self, src: h5py.File, dst_path, codec: str, recode: str | None) -> dict:
        """The nodule and non-nodule patches cut from the bricks, :data:`EXPORT_BLOCK` rows at a time (memory: a
        block plus the reader's brick cache)."""
        bricks = src["volume_brick"]
        try:
            readers = {kind: VolumePatches(src, kind) for kind in KINDS}
        except (KeyError, ValueError) as exc:
            raise ExportError(f"{src.filename}: {exc}") from None
        with atomic_path(dst_path) as tmp, h5py.File(tmp, "w") as dst:
            copy_attrs(src, dst, recode)
            for kind, reader in readers.items():  # the full layout's order: nodule, label_nodule, non_nodule, ...
                out = create_patch_dataset(dst, kind, reader.shape[1:], reader.dtype, codec, rows=len(reader))
                for a in range(0, len(reader), EXPORT_BLOCK):
                    b = min(a + EXPORT_BLOCK, len(reader))
                    out[a:b] = reader.read_rows(np.arange(a, b))
                copy_datasets(src, dst, (), recode, only=("label_" + kind,))
            copy_datasets(src, dst, (*self.objects, *(f"label_{kind}" for kind in KINDS)), recode)
        return {k + "_patches": len(r) for k, r in readers.items()} | {"volume_bricks": int(bricks.shape[0])}

    def plan(self, group: dict, sizes: PlanSizes, image_bytes, combos) -> None:
        """No image patch; the scans' voxels in whole bricks (``image_bytes("voxel", ...)``: the stored bytes
        of a voxel, measured on bricks of the sample scan), and a table row and chunk overhead per brick."""
        n, overhead = group["patches"], sizes.overhead
        group["raw_bytes"] += int(group["brick_voxels"] * sizes.itemsize - sum(n.values()) * sizes.image_raw)
        for d, c in combos:
            img = {k: image_bytes(k, d, c) for k in n}
            group["file_bytes"][f"{d}/{c}"] += (
                group["brick_voxels"] * image_bytes("voxel", d, c)
                + group["bricks"] * (overhead + PROV_BRICK.itemsize)
                - sum(n[k] * (img[k] + overhead) for k in n)
            )
