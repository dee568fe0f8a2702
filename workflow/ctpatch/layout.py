"""The compact LUNA16 layout (``output.layout: crops``): one crop per nodule instead of its shifted patches.

All shifted patches of a nodule lie inside one box around it: with patch edge ``P`` and shifts
of at most ``m = S·M`` voxels per axis (the largest shift component), the box of edge
``C = P + 2·m`` (132 for the defaults) centred like the patches holds all 57 of them.  The crops
layout stores that box once per nodule (``nodule_crop``, (n, C, C, C, 1)) and, per nodule patch,
where it lies in its crop (``nodule_view``, (N, 4) int32: crop row, then the x, y, z start); the
label patches, the provenance and the negatives are stored as in the full layout.  A nodule patch
is then ``nodule_crop[v[0], v[1]:v[1]+P, v[2]:v[2]+P, v[3]:v[3]+P]`` for ``v = nodule_view[i]``,
equal voxel for voxel to the patch the full layout stores (outside the volume both hold the fill
value).

Readers do not need to know: :func:`images` returns, for ``"nodule"``, an object that reads like
the full layout's dataset (``shape``, ``dtype``, ``len``, ``[i]``, ``[i:j]``, ``read_direct``),
cutting patches from decoded crops (the last few crops are cached, and a block of rows decodes
each of its crops once).  ``python -m ctpatch.export`` writes the full layout from a crops file.

Geometry here is in (x, y, z), the order of the patches and of ``centre_voxel`` in provenance.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ctpatch.h5 import h5py

LAYOUTS = ("full", "crops")

PROV_CROP = np.dtype([
    ("scan_index", "<i4"), ("seriesuid", "S64"), ("nodule_index", "<i4"), ("annotation_row", "<i4"),
    ("centre_voxel", "<i4", (3,)), ("start_voxel", "<i4", (3,)), ("edge", "<i4"),
])


# ------------------------------------------------------------------------------------ pure geometry
def shift_margin(offsets) -> int:
    """The largest shift component, in voxels: how far a shifted patch reaches past the centred one.

    >>> from ctpatch.shifts import shift_offsets
    >>> shift_margin(shift_offsets(8, 4))
    32
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
    return int(np.abs(off).max()) if off.size else 0


def crop_edge(patch: int, offsets) -> int:
    """Edge of the crop that holds every shifted patch of a nodule: ``P + 2·m``.

    >>> from ctpatch.shifts import shift_offsets
    >>> crop_edge(68, shift_offsets(8, 4))
    132
    """
    return int(patch) + 2 * shift_margin(offsets)


def box_start(centre_xyz, edge: int) -> np.ndarray:
    """First voxel (x, y, z) of the box of edge ``edge`` around ``centre`` (the patches' convention:
    ``[c - edge//2, c - edge//2 + edge)``)."""
    return np.asarray(centre_xyz, dtype=np.int64) - int(edge) // 2


def view_starts(patch_centres_xyz, crop_starts_xyz, patch: int, edge: int) -> np.ndarray:
    """Start (x, y, z) of each patch inside its crop, (n, 3); raises if a patch leaves its crop.

    >>> view_starts([[100, 100, 100], [108, 100, 68]], [[34, 34, 34], [34, 34, 34]], 68, 132).tolist()
    [[32, 32, 32], [40, 32, 0]]
    """
    pc = np.asarray(patch_centres_xyz, dtype=np.int64).reshape(-1, 3)
    cs = np.asarray(crop_starts_xyz, dtype=np.int64).reshape(-1, 3)
    starts = box_start(pc, patch) - cs
    bad = np.flatnonzero(np.any((starts < 0) | (starts > int(edge) - int(patch)), axis=1))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{len(bad)} patches leave their crop of edge {edge}: e.g. patch centre {pc[i].tolist()} "
                         f"with crop start {cs[i].tolist()} gives start {starts[i].tolist()}, expected within "
                         f"[0, {int(edge) - int(patch)}]")
    return starts


def match_crops(patch_keys: np.ndarray, crop_keys: np.ndarray) -> np.ndarray:
    """Row of ``crop_keys`` holding each of ``patch_keys`` ((n, 2) int arrays: scan index, nodule index).

    Raises when a patch has no crop or two crops share a key.

    >>> match_crops(np.array([[1, 0], [0, 2], [1, 0]]), np.array([[0, 2], [1, 0]])).tolist()
    [1, 0, 1]
    """
    pk = np.asarray(patch_keys, dtype=np.int64).reshape(-1, 2)
    ck = np.asarray(crop_keys, dtype=np.int64).reshape(-1, 2)
    code = lambda k: k[:, 0] * (1 << 32) + k[:, 1]  # noqa: E731 (non-negative int32 pairs: an exact packing)
    cc = code(ck)
    order = np.argsort(cc, kind="stable")
    if len(cc) > 1 and np.any(np.diff(cc[order]) == 0):
        raise ValueError("two crops of the same nodule")
    pos = np.searchsorted(cc[order], code(pk))
    pos = np.minimum(pos, max(len(cc) - 1, 0))
    if len(pk) and (not len(cc) or np.any(cc[order][pos] != code(pk))):
        missing = pk[cc[order][pos] != code(pk)][0] if len(cc) else pk[0]
        raise ValueError(f"no crop for the nodule patch of scan {int(missing[0])}, nodule {int(missing[1])}")
    return order[pos]


def cut_from_crop(crop: np.ndarray, start_xyz, patch: int) -> np.ndarray:
    """The patch ``crop[x:x+P, y:y+P, z:z+P]`` (a view; any trailing channel axis kept)."""
    x, y, z = (int(v) for v in start_xyz)
    return crop[x:x + patch, y:y + patch, z:z + patch]


# ------------------------------------------------------------------------------------ reading
def is_crops(f: h5py.File) -> bool:
    """True for a crops-layout LUNA16 file."""
    return "nodule_crop" in f and "nodule_view" in f


def has_images(f: h5py.File, name: str) -> bool:
    """True when ``images(f, name)`` can read: the dataset itself, or nodule patches stored as crops."""
    return name in f or (name == "nodule" and is_crops(f))


def images(f: h5py.File, name: str):
    """The patch dataset ``name`` of an open file, whatever the layout (see :class:`CropPatches`)."""
    if name in f:
        return f[name]
    if name == "nodule" and is_crops(f):
        return CropPatches(f)
    raise KeyError(f"{f.filename}: no dataset {name!r}")


class CropPatches:
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

    def __len__(self) -> int:
        return self.shape[0]

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

    def _rows(self, key) -> tuple[np.ndarray, bool]:
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if int(key) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {key} out of range for {n} nodule patches")
            return np.array([i]), True
        if isinstance(key, slice):
            return np.arange(n)[key], False
        if isinstance(key, tuple) and len(key) == 1:
            return self._rows(key[0])
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"indices out of range for {n} nodule patches")
        return rows, False

    def read_rows(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        """Patches ``rows`` into ``out`` ((len(rows), P, P, P, channels)), each crop decoded once."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        v = self.views[rows]
        for j in np.argsort(v[:, 0], kind="stable"):
            out[j] = cut_from_crop(self.crop(v[j, 0]), v[j, 1:], self.patch)
        return out

    def __getitem__(self, key):
        rows, scalar = self._rows(key)
        block = self.read_rows(rows)
        return block[0] if scalar else block

    def read_direct(self, dest: np.ndarray, source_sel=None, dest_sel=None) -> None:
        """Like ``h5py.Dataset.read_direct`` for row selections: ``dest[dest_sel] = self[source_sel]``."""
        rows, scalar = self._rows(np.s_[:] if source_sel is None else source_sel)
        block_shape = (len(rows), *self.shape[1:])
        basic = dest_sel is None or isinstance(dest_sel, slice) or (
            isinstance(dest_sel, tuple) and all(isinstance(s, (slice, type(Ellipsis))) for s in dest_sel))
        target = (dest if dest_sel is None else dest[dest_sel]) if basic else None
        if (target is not None and not scalar and target.shape == block_shape and target.dtype == self.dtype
                and target.flags.c_contiguous):
            self.read_rows(rows, out=target)  # a view of dest: decoded straight into place
            return
        block = self.read_rows(rows)
        if dest_sel is None:
            dest[...] = block[0] if scalar else block
        else:
            dest[dest_sel] = block[0] if scalar else block
