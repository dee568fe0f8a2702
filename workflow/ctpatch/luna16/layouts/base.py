"""The layout interface: everything that differs between the LUNA16 output layouts, as methods.

A :class:`Layout` says how a LUNA16 patch file stores its image patches (``luna16.output.layout``).
The full layout (this class itself) stores every image patch as cut; a :class:`Compact` layout adds
one dataset of boxes (``own``, with a provenance table of the same name) from which some or all
image patches are cut on reading.  One object per layout, chosen once
(:func:`ctpatch.luna16.layouts.layout_for` from the settings, :func:`ctpatch.luna16.layouts.layout_of`
from a file), answers for it:

* writing (:mod:`ctpatch.luna16.job`): what it changes in the job's datasets, tables and groups
  (:meth:`Layout.specs`), the items it cuts per scan before the patches (:meth:`Layout.scan_items`,
  :meth:`Layout.cut_scan_items`), how it stores a cut image patch (:meth:`Layout.store`), the rows
  of its own table (:meth:`Layout.own_rows`);
* reading (:mod:`ctpatch.readers`, :mod:`ctpatch.report`): :meth:`Layout.has_images`, :meth:`Layout.images`;
* checking (:mod:`ctpatch.luna16.verify`): :meth:`Layout.check` and the datasets holding the image
  voxels (:attr:`Layout.image_datasets`);
* exporting (:mod:`ctpatch.luna16.export`): :meth:`Compact.export`;
* planning (:mod:`ctpatch.report.plan.luna`): :meth:`Layout.plan`.

Geometry is in (x, y, z), the order of the patches and of ``centre_voxel`` in provenance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ctpatch.core.nodules import PatchLocation, cut_image_xyz
from ctpatch.settings.types import LunaPatches
from ctpatch.store.codecs import create_patch_dataset
from ctpatch.store.h5 import h5py
from ctpatch.store.identity import settings_attrs
from ctpatch.store.writer import Specs

#: the kinds of LUNA16 patches, each an image dataset, a label dataset ``label_<kind>`` and a table
KINDS = ("nodule", "non_nodule")


class ExportError(ValueError):
    """A file that cannot be exported; the message names it."""


@dataclass(frozen=True)
class CutSizes:
    """A job's sizes as a layout needs them: patch edge ``P``, crop edge ``C`` (crops), brick edge ``B``
    (volumes) and the patch dtype."""

    patch: int
    crop: int
    brick: int
    dtype: str


class NodulePatch(NamedTuple):
    """The nodule a nodule patch belongs to (a crops-layout crop row is made of it)."""

    scan_index: int
    seriesuid: bytes
    nodule_index: int
    annotation_row: int
    centre_xyz: np.ndarray  # the nodule's voxel
    shift_index: int


@dataclass(frozen=True)
class PlanSizes:
    """What a layout's size estimate needs besides a subset's counts: patch edge ``P``, crop edge ``C``, the
    output dtype's item size, an image patch's raw bytes and the chunk overhead per stored box."""

    patch: int
    crop: int
    itemsize: int
    image_raw: int
    overhead: float


class Layout:
    """The full layout: every image patch stored as cut, in the datasets ``nodule`` and ``non_nodule``."""

    name = "full"
    #: datasets that identify a file of this layout (none: the full layout is what is left)
    marks: tuple[str, ...] = ()
    #: kinds whose image patches are stored as cut
    stores: tuple[str, ...] = KINDS
    #: the layout's own patch dataset (and provenance table), none here
    own: str | None = None

    # ----------------------------------------------------------------------------- writing
    def specs(self, datasets: dict, tables: dict, groups: dict, sizes: CutSizes, compression: str) -> Specs:
        """The job's :class:`ctpatch.store.writer.Specs` in this layout, from the full layout's datasets
        (name -> (patch shape, dtype)), tables and groups: image datasets not stored dropped."""
        drop = {kind for kind in KINDS if kind not in self.stores}
        return Specs(
            {k: v for k, v in datasets.items() if k not in drop},
            dict(tables),
            {t: tuple(n for n in names if n not in drop) for t, names in groups.items()},
            compression,
        )

    def scan_items(self, size_xyz, sizes: CutSizes) -> int:
        """Items a scan of ``size_xyz`` voxels gives before its patches (volumes: its bricks)."""
        return 0

    def cut_scan_items(
        self, w, volume: np.ndarray, fill, sizes: CutSizes, scan_index: int, key: bytes, start: int, stop: int
    ) -> dict:
        """Cut items ``[start, stop)`` of :meth:`scan_items` of the (x, y, z) ``volume`` into the sink ``w``;
        return their counts for the job's summary."""
        return {}

    def store(
        self, w, kind: str, volume: np.ndarray, fill, loc: PatchLocation, sizes: CutSizes, nodule: NodulePatch | None
    ) -> None:
        """Store what this layout keeps of the cut image patch ``loc`` of ``kind`` (``nodule``: its nodule)."""
        if kind in self.stores:
            cut_image_xyz(volume, loc, fill, sizes.dtype, out=w.slot(kind))
            w.commit(kind)

    def own_rows(self, nodules: int, scan_items: int) -> dict:
        """Rows of this layout's own table for units with ``nodules`` nodules and ``scan_items`` items."""
        return {}

    # ----------------------------------------------------------------------------- reading
    def matches(self, f: h5py.File) -> bool:
        """True when the open file ``f`` holds this layout's datasets."""
        return all(name in f for name in self.marks)

    def has_images(self, f: h5py.File, name: str) -> bool:
        """True when :meth:`images` can read ``name`` from ``f``."""
        return name in f

    def images(self, f: h5py.File, name: str, cache_mb: float):
        """The patch dataset ``name`` of the open file ``f``, read like an ``h5py.Dataset`` (``cache_mb``: a
        reader's decoded-box cache)."""
        if name in f:
            return f[name]
        raise KeyError(f"{f.filename}: no dataset {name!r}")

    # ----------------------------------------------------------------------------- checking
    @property
    def image_datasets(self) -> tuple[str, ...]:
        """The datasets holding the image voxels (their chunks are checksummed by the verification)."""
        return (*((self.own,) if self.own else ()), *self.stores)

    def check(
        self, f: h5py.File, settings: LunaPatches, scans: list[str], inputs: dict | None, provs, nodules: int
    ) -> tuple[list[str], dict]:
        """This layout's own checks of ``f``: (failures, report entries).  ``provs``: the ``nodule`` and
        ``non_nodule`` provenance tables; ``nodules``: rows of the nodule table; ``inputs``: the
        extraction's (or ``None``)."""
        return [], {}

    # ----------------------------------------------------------------------------- planning
    def plan(self, group: dict, sizes: PlanSizes, image_bytes: Callable[[str, str, str], float], combos) -> None:
        """Turn a subset's plan ``group``, estimated for the full layout (``raw_bytes``, ``file_bytes`` per
        ``dtype/codec`` of ``combos``), into this layout's; ``image_bytes(kind, dtype, codec)``: the stored
        bytes of one image patch."""


class Compact(Layout):
    """A layout with its own dataset of boxes (``own``, edge :meth:`edge`, table ``provenance/<own>``),
    from which the image patches of the kinds not in ``stores`` are cut on reading; one file per subset."""

    own: str
    #: the provenance table of ``own``
    table: np.dtype
    #: every object this layout adds to a file (dropped by the export)
    objects: tuple[str, ...] = ()
    #: called with each open file after its provenance tables are written
    finish: Callable[[h5py.File], None] | None = None

    def edge(self, sizes: CutSizes) -> int:
        raise NotImplementedError

    def specs(self, datasets: dict, tables: dict, groups: dict, sizes: CutSizes, compression: str) -> Specs:
        full = super().specs(datasets, tables, groups, sizes, compression)
        return Specs(
            {self.own: ((self.edge(sizes),) * 3 + (1,), np.dtype(sizes.dtype)), **full.datasets},
            {**full.tables, self.own: self.table},
            {**full.groups, self.own: (self.own,)},
            compression,
            unshuffled=(self.own,),
            attrs={self.own: {"patch_edge": sizes.patch}},
            one_file=True,
            finish=self.finish,
        )

    def export(self, src: h5py.File, dst_path, codec: str, recode: str | None) -> dict:
        """Write ``dst_path`` in the full layout from ``src`` (a file of this layout): the image patches cut
        again with ``codec``, everything else copied (patch datasets re-encoded with ``recode`` when
        given, :func:`copy_datasets`); return counts.  Raises :class:`ExportError` naming the file."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------ export helpers
def copy_attrs(src: h5py.File, dst: h5py.File, codec: str | None) -> None:
    """The file attributes, ``settings.output.layout`` set to ``full`` (and the codec to ``codec``)."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    raw = src.attrs.get("settings")
    if raw is None:
        raise ExportError(f"{src.filename}: no 'settings' attribute: not a ctpatch patch file")
    settings = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    settings["output"]["layout"] = Layout.name
    if codec:
        settings["output"]["compression"] = codec
    dst.attrs.update(settings_attrs(settings))  # the settings a full-layout run records, and their digest


def copy_datasets(src: h5py.File, dst: h5py.File, skip, codec: str | None, only=None) -> None:
    """Copy the datasets of ``src`` but ``skip`` (or just ``only``) as stored, patch datasets re-encoded
    with ``codec`` when given."""
    for name in _objects(src):
        if name in skip or (only is not None and name not in only) or name in dst:
            continue
        ds = src[name]
        if codec and ds.chunks and ds.ndim > 1 and not name.startswith("provenance/"):
            # another patch dataset, re-encoded with the requested codec
            enc = create_patch_dataset(dst, name, ds.shape[1:], ds.dtype, codec)
            enc.resize(ds.shape[0], axis=0)
            for i in range(ds.shape[0]):
                enc[i] = ds[i]
        else:
            if "/" in name:
                dst.require_group(name.rsplit("/", 1)[0])
            src.copy(src[name], dst, name=name)


def _objects(f: h5py.File) -> list[str]:
    """The datasets of a file by path (groups descended into)."""
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


class RowReader:
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
