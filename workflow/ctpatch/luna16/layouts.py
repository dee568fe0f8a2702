"""Reading patch images whatever the LUNA16 layout: full files' datasets, nodule patches cut from crops,
or any patch cut from the scans' volumes.

:func:`images` returns, for ``"nodule"`` in a crops-layout file (:mod:`ctpatch.core.bricks`), a
:class:`CropPatches`, and for ``"nodule"`` or ``"non_nodule"`` in a volumes-layout file a
:class:`VolumePatches`; both read like the full layout's dataset (``shape``, ``dtype``, ``len``,
``[i]``, ``[i:j]``, ``read_direct``), cutting patches from decoded crops or volume bricks (recently
decoded ones are cached); any other name is the file's dataset.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

from ctpatch.core.bricks import brick_span, cut_from_crop, match_crops, view_starts
from ctpatch.store.h5 import h5py

LAYOUTS = ("full", "crops", "volumes")


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


def is_crops(f: h5py.File) -> bool:
    """True for a crops-layout LUNA16 file."""
    return "nodule_crop" in f and "nodule_view" in f


def is_volumes(f: h5py.File) -> bool:
    """True for a volumes-layout LUNA16 file."""
    return "volume_brick" in f and "provenance/volume_brick" in f


def has_images(f: h5py.File, name: str) -> bool:
    """True when ``images(f, name)`` can read: the dataset itself, nodule patches stored as crops, or
    patches cut from the volumes."""
    if name in f:
        return True
    if name == "nodule" and is_crops(f):
        return True
    return name in ("nodule", "non_nodule") and is_volumes(f) and f"provenance/{name}" in f


def images(f: h5py.File, name: str, cache_mb: float | None = None):
    """The patch dataset ``name`` of an open file, whatever the layout (see :class:`CropPatches`,
    :class:`VolumePatches`; ``cache_mb``: the latter's decoded-brick cache, default :data:`BRICK_CACHE_MB`)."""
    cache_mb = BRICK_CACHE_MB if cache_mb is None else cache_mb
    if name in f:
        return f[name]
    if name == "nodule" and is_crops(f):
        return CropPatches(f)
    if name in ("nodule", "non_nodule") and has_images(f, name):
        return VolumePatches(f, name, cache_mb)
    raise KeyError(f"{f.filename}: no dataset {name!r}")


class _RowReader:
    """Row indexing and ``read_direct`` on top of :meth:`read_rows` (patches of ``shape[1:]``)."""

    shape: tuple
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def read_rows(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _rows(self, key) -> tuple[np.ndarray, bool]:
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if int(key) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {key} out of range for {n} {self.name[1:]} patches")
            return np.array([i]), True
        if isinstance(key, slice):
            return np.arange(n)[key], False
        if isinstance(key, tuple) and len(key) == 1:
            return self._rows(key[0])
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"indices out of range for {n} {self.name[1:]} patches")
        return rows, False

    def __getitem__(self, key):
        rows, scalar = self._rows(key)
        block = self.read_rows(rows)
        return block[0] if scalar else block

    def read_direct(self, dest: np.ndarray, source_sel=None, dest_sel=None) -> None:
        """Like ``h5py.Dataset.read_direct`` for row selections: ``dest[dest_sel] = self[source_sel]``."""
        rows, scalar = self._rows(np.s_[:] if source_sel is None else source_sel)
        block_shape = (len(rows), *self.shape[1:])
        basic = (
            dest_sel is None
            or isinstance(dest_sel, slice)
            or (isinstance(dest_sel, tuple) and all(isinstance(s, (slice, type(Ellipsis))) for s in dest_sel))
        )
        target = (dest if dest_sel is None else dest[dest_sel]) if basic else None
        if (
            target is not None
            and not scalar
            and target.shape == block_shape
            and target.dtype == self.dtype
            and target.flags.c_contiguous
        ):
            self.read_rows(rows, out=target)  # a view of dest: decoded straight into place
            return
        block = self.read_rows(rows)
        if dest_sel is None:
            dest[...] = block[0] if scalar else block
        else:
            dest[dest_sel] = block[0] if scalar else block


class CropPatches(_RowReader):
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


class VolumePatches(_RowReader):
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
