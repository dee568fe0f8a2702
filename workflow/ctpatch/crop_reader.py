"""Reading patch images whatever the LUNA16 layout: full files' datasets, or nodule patches cut from crops.

:func:`images` returns, for ``"nodule"`` in a crops-layout file (:mod:`ctpatch.layout`), a
:class:`CropPatches` that reads like the full layout's dataset (``shape``, ``dtype``, ``len``,
``[i]``, ``[i:j]``, ``read_direct``), cutting patches from decoded crops (the last few crops are
cached, and a block of rows decodes each of its crops once); any other name is the file's dataset.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ctpatch.h5 import h5py
from ctpatch.layout import cut_from_crop


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
