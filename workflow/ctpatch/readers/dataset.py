"""A map-style dataset over patch files: ``ds[i]`` is one patch, its label and its provenance.

:class:`PatchDataset` reads one or more merged files of one mode, one or several kinds
(:mod:`ctpatch.readers.contract`).  Items are tuples ``(image, label, provenance)`` or, with
``items="dict"``, dicts ``{"image", "label", "kind", "provenance"}`` (MONAI's keys); a
``transform`` callable is applied to each item as returned.  Every item of a dataset has the same
provenance keys with one type per key (:mod:`ctpatch.readers.provenance`), so PyTorch's default collate
batches any mix of kinds and files.

No HDF5 handle is opened before the first item is read, and a handle is never used in another
process than the one that opened it: a dataset pickled or forked into PyTorch ``DataLoader``
workers opens its own handles in each worker.  torch is never imported here.
"""

from __future__ import annotations

import bisect
import operator
import os
from typing import Callable, Mapping

import numpy as np

from ctpatch.luna16.layouts import images as open_images
from ctpatch.readers.contract import resolve_layout, to_layout
from ctpatch.readers.provenance import DicomSpacing, ProvenanceFields
from ctpatch.readers.selection import Segment, as_paths, segments
from ctpatch.store.h5 import h5py

ITEMS = ("tuple", "dict")

# Handles a process inherited through fork: never used nor closed in the child (HDF5 state is not
# fork-safe), only kept referenced so that their destructor does not run there.
_INHERITED: list = []


class PatchDataset:
    """A map-style dataset over one or more patch files.

    Parameters
    ----------
    paths : path or sequence of paths
        Merged patch files, all of one mode (LUNA16 subsets, LDCT parts).
    kind : str, sequence of str, or None
        Which patches (see :mod:`ctpatch.readers.contract`); a sequence concatenates kinds file by file
        (e.g. ``("nodule", "non_nodule")``).  None: ``nodule`` for LUNA16, ``patch`` for LDCT.
    layout : {"tf", "torch"} or None
        Channel last or first for images and labels; None: the layout the files store (LUNA16 ``tf``,
        LDCT the ``output.layout`` they were written with).
    rows : mapping, optional
        Only these rows: ``{path: indices}`` or ``{(path, kind): indices}`` (as :class:`~ctpatch.readers.folds.Fold`
        makes); files or kinds not in the mapping contribute nothing.
    items : {"tuple", "dict"}
        ``(image, label, provenance)`` or ``{"image", "label", "kind", "provenance"}``.
    transform : callable, optional
        Applied to every item (the tuple or the dict) as it is returned; its result is the item.

    The provenance is the patch's provenance row as a dict (bytes decoded to str, vectors as
    arrays) with every field of the dataset's kinds (fields of another kind hold fill values:
    -1, NaN, ``""``, False), plus ``file``, ``kind``, ``row`` (its position in that file:
    everything ``python -m ctpatch.report.explain <file> <row> --kind <kind>`` needs) and ``spacing``,
    the voxel spacing in mm as the file records it per patch (LUNA16: (x, y, z), the real grid spacing of
    the patch's scan after resampling; LDCT: (row, col), the source slice's pixel spacing in the
    patch's copy).  Files written before the spacing was recorded give the configured resampling
    spacing (LUNA16) or the DICOM header's pixel spacing over ``downscale`` (LDCT; NaN when the
    source file cannot be read).  Items are in the order files, then kinds, then rows.

    No file is held open between construction and the first read; each process (DataLoader
    worker, multiprocessing child) opens its own read-only handles on first use.  Pickling never
    carries a handle.
    """

    def __init__(
        self,
        paths,
        kind=None,
        layout: str | None = None,
        rows: Mapping | None = None,
        items: str = "tuple",
        transform: Callable | None = None,
    ):
        if layout is not None:
            resolve_layout(layout, "tf")  # a wrong value is refused before any file is opened
        if items not in ITEMS:
            raise ValueError(f"Expected items in {ITEMS}, got {items!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"Expected a callable transform, got {transform!r}")
        self.paths = as_paths(paths)
        self.items, self.transform = items, transform
        self.segments, self.mode, self.kinds = segments(self.paths, kind, rows)
        self.layout = resolve_layout(layout, self.segments[0].stored_layout)  # None: as the files store it
        self.fields = ProvenanceFields([s.prov_dtype for s in self.segments], where=", ".join(self.paths))
        self._starts = [s.start for s in self.segments]
        self._length = sum(len(s.rows) for s in self.segments)
        self._handles: dict | None = None
        self._pid: int | None = None
        self._dicom = DicomSpacing()

    # ---- sizes and positions
    def __len__(self) -> int:
        return self._length

    @property
    def image_shape(self) -> tuple:
        """Shape of one image in this dataset's layout."""
        s = self.segments[0]
        return to_layout(np.empty(s.image_shape, dtype=np.uint8), s.stored_layout, self.layout, False).shape

    @property
    def label_shape(self) -> tuple:
        """Shape of one item's label (LDCT: target) in this dataset's channel layout."""
        s = self.segments[0]
        return to_layout(np.empty(s.label_shape, dtype=np.uint8), s.stored_layout, self.layout, False).shape

    def locate(self, index) -> tuple[Segment, int]:
        """(segment, row in its file) of a position ``index`` (negative counts from the end)."""
        i = operator.index(index)
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"Expected an index in [{-self._length}, {self._length}), got {index!r}")
        k = bisect.bisect_right(self._starts, i) - 1
        while len(self.segments[k].rows) == 0 or i - self.segments[k].start >= len(self.segments[k].rows):
            k += 1  # empty segments share their start with the next one
        seg = self.segments[k]
        return seg, int(seg.rows[i - seg.start])

    def where(self, index) -> tuple[str, str, int]:
        """(file, kind, row) of a position."""
        seg, row = self.locate(index)
        return seg.path, seg.kind, row

    def positions(self, kind: str) -> np.ndarray:
        """The positions of the patches of ``kind``, increasing (e.g. for a sampler)."""
        parts = [np.arange(s.start, s.start + len(s.rows)) for s in self.segments if s.kind == kind]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # ---- handles: one set per process, opened lazily
    def _dataset(self, seg: Segment, name: str) -> h5py.Dataset:
        pid = os.getpid()
        if self._handles is None or self._pid != pid:
            if self._handles:
                _INHERITED.append(self._handles)
            self._handles, self._pid = {}, pid
        key = (seg.file_index, name)
        ds = self._handles.get(key)
        if ds is None:
            f = self._handles.get(seg.file_index)
            if f is None:
                f = self._handles[seg.file_index] = h5py.File(seg.path, "r")
            ds = self._handles[key] = open_images(f, name)  # crops layout: nodule patches cut from their crops
        return ds

    def __getitem__(self, index):
        seg, row = self.locate(index)
        image = np.empty((1, *seg.image_shape), dtype=seg.image_dtype)
        label = np.empty((1, *seg.label_shape), dtype=seg.label_dtype)
        self._dataset(seg, seg.image).read_direct(image, np.s_[row : row + 1])
        self._dataset(seg, seg.label).read_direct(label, np.s_[row : row + 1])
        image = to_layout(image[0], seg.stored_layout, self.layout, False)
        label = to_layout(label[0], seg.stored_layout, self.layout, False)
        prov = self._provenance(seg, row)
        if self.items == "dict":
            item = {"image": image, "label": label, "kind": seg.kind, "provenance": prov}
        else:
            item = (image, label, prov)
        return item if self.transform is None else self.transform(item)

    def _provenance(self, seg: Segment, row: int) -> dict:
        rec = self._dataset(seg, seg.table)[row]
        prov = self.fields.as_dict(rec)
        if "spacing" in rec.dtype.names:  # recorded per patch (files since issue 22)
            spacing = np.asarray(rec["spacing"], dtype=np.float64)
        elif seg.spacing is not None:  # older LUNA16 files: the configured resampling spacing
            spacing = np.asarray(seg.spacing, dtype=np.float64)
        else:  # older LDCT files: the source slice's pixel spacing, in the patch's scale
            spacing = self._dicom(prov["input_file"]) / float(prov["downscale"])
        prov.update(file=seg.path, kind=seg.kind, row=row, spacing=spacing)
        return prov

    def provenance(self, index) -> dict:
        """The provenance dict of a position, without reading the patch."""
        return self._provenance(*self.locate(index))

    def close(self) -> None:
        """Close this process's handles (they reopen on the next read)."""
        if self._handles is not None and self._pid == os.getpid():
            for h in self._handles.values():
                if isinstance(h, h5py.File):
                    h.close()
        self._handles = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = None
        state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"PatchDataset({len(self)} {'+'.join(self.kinds)} patches from {len(self.paths)} file(s), "
            f"layout={self.layout!r}, items={self.items!r})"
        )
