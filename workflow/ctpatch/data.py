"""Reading patch files for training: a map-style dataset, a parallel bulk loader, and folds.

Everything here reads the merged files of either mode (torch stays optional: nothing imports it):

* :class:`PatchDataset` -- ``len(ds)`` patches of one or more files, ``ds[i]`` is
  ``(image, label, provenance)``.  No HDF5 handle is opened before the first item is read, and
  a handle is never used in another process than the one that opened it: a dataset pickled or
  forked into PyTorch ``DataLoader`` workers opens its own handle in each worker.
* :func:`iter_batches` and :func:`load_all` -- whole batches read by a pool of processes (or
  threads) straight into shared memory: no pickling of patches, no concatenation.
* :func:`folds` and :func:`check_folds` -- LUNA16 subsets as folds, LDCT patients split into
  folds, and the check that no scan or patient is in two folds.

Kinds (``kind=``) and the datasets they read:

============== ================ ==================== ========================= ======
kind           image            label                provenance                mode
============== ================ ==================== ========================= ======
``nodule``     ``nodule``       ``label_nodule``     ``provenance/nodule``     luna16
``non_nodule`` ``non_nodule``   ``label_non_nodule`` ``provenance/non_nodule`` luna16
``patch``      ``input``        ``target``           ``provenance/patch``      ldct
============== ================ ==================== ========================= ======

For LDCT the "label" is the full-dose target patch.

LUNA16 files written with ``output.layout: crops`` store one crop per nodule instead of its
shifted patches (:mod:`ctpatch.layout`); ``nodule`` patches are cut from the crops as they are
read, equal to the full layout's.  Reading many rows at once (:func:`load_all`, a batch) decodes
each crop once; a random single patch costs one crop (~7 patches) of decompression.

Layouts (``layout=``): ``"tf"`` puts the channel last, ``"torch"`` first.  LUNA16 patches are
stored ``tf``: an image is (x, y, z, 1) and a label (8, 8, 8, 2) (pooled one-hot, class 0
background, class 1 nodule); with ``torch`` they come as (1, x, y, z) and (2, 8, 8, 8) -- the
spatial axes keep their (x, y, z) order.  LDCT patches are stored in the layout of their
settings (``output.layout``): (1, H, W) or (H, W, 1).  A single channel moves for free; the
two-class LUNA label is transposed (4 KiB per patch).

Example (DataLoader is optional)::

    ds = PatchDataset(["results/luna16/patches/subset0.h5"], kind="nodule", layout="torch")
    image, label, prov = ds[0]          # (1, 68, 68, 68) float32, (2, 8, 8, 8) float32, dict
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=4)

    for batch in iter_batches(paths, "non_nodule", batch_size=64, workers=4, shuffle=True, epoch=epoch):
        batch.images, batch.labels, batch.index   # index: positions in PatchDataset(paths, kind)
"""

from __future__ import annotations

import bisect
import json
import mmap
import multiprocessing as mp
import operator
import os
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from ctpatch.h5 import h5py
from ctpatch.layout import has_images
from ctpatch.layout import images as open_images
from ctpatch.rng import keyed_rng

#: kind -> (image dataset, label dataset, provenance table, mode)
KINDS = {
    "nodule": ("nodule", "label_nodule", "provenance/nodule", "luna16"),
    "non_nodule": ("non_nodule", "label_non_nodule", "provenance/non_nodule", "luna16"),
    "patch": ("input", "target", "provenance/patch", "ldct"),
}
MODE_KINDS = {"luna16": ("nodule", "non_nodule"), "ldct": ("patch",)}
LAYOUTS = ("tf", "torch")
BACKENDS = ("process", "thread")
#: what a fold keeps apart, per mode: (provenance field, what it is called in messages)
FOLD_UNIT = {"luna16": ("seriesuid", "scan"), "ldct": ("patient", "patient")}


# ------------------------------------------------------------------------------------ files
def file_mode(f: h5py.File, path) -> str:
    """The mode of an open patch file: its ``mode`` attribute, else guessed from its datasets."""
    mode = f.attrs.get("mode")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode in MODE_KINDS:
        return str(mode)
    if "input" in f and "target" in f:
        return "ldct"
    if "nodule" in f or "non_nodule" in f:
        return "luna16"
    raise ValueError(f"{path}: not a ctpatch patch file: no 'mode' attribute and none of the datasets "
                     f"nodule, non_nodule, input (found {sorted(f)})")


def file_settings(f: h5py.File) -> dict:
    """The JSON ``settings`` attribute of an open patch file ({} when absent)."""
    raw = f.attrs.get("settings")
    if raw is None:
        return {}
    return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))


def _stored_layout(f: h5py.File, kind: str, image: h5py.Dataset) -> str:
    if KINDS[kind][3] == "luna16":
        return "tf"
    layout = file_settings(f).get("output", {}).get("layout")
    if layout in LAYOUTS:
        return layout
    shape = image.shape[1:]
    if shape and shape[0] == 1 and shape[-1] != 1:
        return "torch"
    return "tf"


def to_layout(array: np.ndarray, stored: str, layout: str, batched: bool) -> np.ndarray:
    """Move the channel axis of a patch (or a batch of patches when ``batched``) from ``stored`` to ``layout``.

    No copy when the channel has size 1; otherwise a contiguous transposed copy.

    >>> to_layout(np.zeros((8, 8, 8, 2)), "tf", "torch", batched=False).shape
    (2, 8, 8, 8)
    """
    if layout not in LAYOUTS or stored not in LAYOUTS:
        raise ValueError(f"Expected layout in {LAYOUTS}, got {layout!r} (stored {stored!r})")
    if layout == stored:
        return array
    first = 1 if batched else 0
    moved = np.moveaxis(array, -1, first) if layout == "torch" else np.moveaxis(array, first, -1)
    return np.ascontiguousarray(moved)


def _as_paths(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise ValueError("Expected at least one patch file, got none")
    return out


def _kinds_of(kind, mode: str, path) -> tuple[str, ...]:
    if kind is None:
        kinds = MODE_KINDS[mode][:1]
    elif isinstance(kind, str):
        kinds = (kind,)
    else:
        kinds = tuple(kind)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"Expected kind in {sorted(KINDS)}, got {k!r}")
        if KINDS[k][3] != mode:
            raise ValueError(f"{path}: kind {k!r} belongs to mode {KINDS[k][3]}, but the file is a {mode} file "
                             f"(its kinds: {list(MODE_KINDS[mode])})")
    return kinds


@dataclass(frozen=True)
class Segment:
    """The rows of one kind of one file that a dataset reads, at positions ``start .. start + len(rows)``."""

    path: str
    file_index: int
    kind: str
    rows: np.ndarray
    start: int
    stored_layout: str
    image_shape: tuple
    image_dtype: np.dtype
    label_shape: tuple
    label_dtype: np.dtype

    @property
    def image(self) -> str:
        return KINDS[self.kind][0]

    @property
    def label(self) -> str:
        return KINDS[self.kind][1]

    @property
    def table(self) -> str:
        return KINDS[self.kind][2]


def _selection(rows, path: str, kind: str, n: int) -> np.ndarray:
    if rows is None:
        return np.arange(n, dtype=np.int64)
    key_path = os.path.abspath(path)
    chosen = None
    for key, value in rows.items():
        if isinstance(key, tuple):
            p, k = key
            if os.path.abspath(os.fspath(p)) == key_path and k == kind:
                chosen = value
        elif os.path.abspath(os.fspath(key)) == key_path and chosen is None:
            chosen = value
    if chosen is None:
        return np.zeros(0, dtype=np.int64)
    sel = np.asarray(chosen, dtype=np.int64).reshape(-1)
    if sel.size and (sel.min() < 0 or sel.max() >= n):
        raise ValueError(f"{path}: {kind}: expected row indices in [0, {n}), got range [{sel.min()}, {sel.max()}]")
    return sel


def _segments(paths: list[str], kind, rows) -> tuple[list[Segment], str, tuple[str, ...]]:
    segments: list[Segment] = []
    start = 0
    mode = kinds = None
    for i, path in enumerate(paths):
        if not Path(path).is_file():
            raise ValueError(f"{path}: patch file not found")
        with h5py.File(path, "r") as f:
            m = file_mode(f, path)
            if mode is None:
                mode, kinds = m, _kinds_of(kind, m, path)
            elif m != mode:
                raise ValueError(f"{path}: a {m} file among {mode} files ({paths[0]}): one dataset reads one mode")
            for k in kinds:
                img_name, lab_name, table, _ = KINDS[k]
                missing = [n for n in (img_name, lab_name, table) if not has_images(f, n)]
                if missing:
                    raise ValueError(f"{path}: kind {k!r} needs {[img_name, lab_name, table]}, missing {missing}")
                img, lab, prov = open_images(f, img_name), f[lab_name], f[table]
                if not (img.shape[0] == lab.shape[0] == prov.shape[0]):
                    raise ValueError(f"{path}: {img_name}, {lab_name} and {table} have {img.shape[0]}, "
                                     f"{lab.shape[0]} and {prov.shape[0]} rows; expected equal counts")
                sel = _selection(rows, path, k, img.shape[0])
                seg = Segment(path, i, k, sel, start, _stored_layout(f, k, img), img.shape[1:], img.dtype,
                              lab.shape[1:], lab.dtype)
                if segments:
                    ref = segments[0]
                    if (seg.image_shape, seg.image_dtype, seg.label_shape, seg.label_dtype, seg.stored_layout) != (
                            ref.image_shape, ref.image_dtype, ref.label_shape, ref.label_dtype, ref.stored_layout):
                        raise ValueError(
                            f"{path}: {k} patches are {seg.image_shape} {seg.image_dtype} / labels {seg.label_shape} "
                            f"{seg.label_dtype} ({seg.stored_layout}), but {ref.path}: {ref.kind} has "
                            f"{ref.image_shape} {ref.image_dtype} / {ref.label_shape} {ref.label_dtype} "
                            f"({ref.stored_layout}); one dataset needs one patch shape and dtype")
                segments.append(seg)
                start += len(sel)
    return segments, mode, kinds


def _record(rec: np.void) -> dict:
    out = {}
    for name in rec.dtype.names:
        v = rec[name]
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, np.ndarray):
            v = v.copy()
        elif isinstance(v, np.generic):
            v = v.item()
        out[name] = v
    return out


# Handles a process inherited through fork: never used nor closed in the child (HDF5 state is not
# fork-safe), only kept referenced so that their destructor does not run there.
_INHERITED: list = []


# ------------------------------------------------------------------------------------ dataset
class PatchDataset:
    """A map-style dataset over one or more patch files.

    Parameters
    ----------
    paths : path or sequence of paths
        Merged patch files, all of one mode (LUNA16 subsets, LDCT parts).
    kind : str, sequence of str, or None
        Which patches (see the module docstring); a sequence concatenates kinds file by file
        (e.g. ``("nodule", "non_nodule")``).  None: ``nodule`` for LUNA16, ``patch`` for LDCT.
    layout : {"tf", "torch"}
        Channel last or first for images and labels.
    rows : mapping, optional
        Only these rows: ``{path: indices}`` or ``{(path, kind): indices}`` (as :class:`Fold` makes);
        files or kinds not in the mapping contribute nothing.

    ``ds[i]`` returns ``(image, label, provenance)``: two numpy arrays in the chosen layout, and
    the patch's provenance row as a dict (bytes decoded to str, vectors as arrays) plus
    ``file``, ``kind`` and ``row`` (its position in that file): everything
    ``python -m ctpatch.explain <file> <row> --kind <kind>`` needs.  Items are in the order
    files, then kinds, then rows.

    No file is held open between construction and the first read; each process (DataLoader
    worker, multiprocessing child) opens its own read-only handles on first use.  Pickling never
    carries a handle.
    """

    def __init__(self, paths, kind=None, layout: str = "tf", rows: Mapping | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"Expected layout in {LAYOUTS}, got {layout!r}")
        self.paths = _as_paths(paths)
        self.layout = layout
        self.segments, self.mode, self.kinds = _segments(self.paths, kind, rows)
        self._starts = [s.start for s in self.segments]
        self._length = sum(len(s.rows) for s in self.segments)
        self._handles: dict | None = None
        self._pid: int | None = None

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
        self._dataset(seg, seg.image).read_direct(image, np.s_[row:row + 1])
        self._dataset(seg, seg.label).read_direct(label, np.s_[row:row + 1])
        return (to_layout(image[0], seg.stored_layout, self.layout, False),
                to_layout(label[0], seg.stored_layout, self.layout, False),
                self._provenance(seg, row))

    def _provenance(self, seg: Segment, row: int) -> dict:
        prov = _record(self._dataset(seg, seg.table)[row])
        prov.update(file=seg.path, kind=seg.kind, row=row)
        return prov

    def provenance(self, index) -> dict:
        """The provenance dict of a position, without reading the patch."""
        return self._provenance(*self.locate(index))

    def close(self) -> None:
        """Close this process's handles (they reopen on the next read)."""
        if self._handles is not None and self._pid == os.getpid():
            for key, h in self._handles.items():
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
        return (f"PatchDataset({len(self)} {'+'.join(self.kinds)} patches from {len(self.paths)} file(s), "
                f"layout={self.layout!r})")


# ------------------------------------------------------------------------------------ bulk loading
class Batch(NamedTuple):
    """Patches read together: images and labels in the requested layout, and their positions
    in the equivalent :class:`PatchDataset` (``dataset.where(i)`` / ``dataset.provenance(i)``)."""

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray


def _shared_array(shape, dtype) -> np.ndarray:
    """A writable array in anonymous shared memory: processes forked afterwards write into it."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.empty(shape, dtype=dtype)
    buf = mmap.mmap(-1, nbytes)
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def _pieces(segments: list[Segment], starts: np.ndarray, index: np.ndarray, offset: int = 0) -> list:
    """Split positions into (segment number, file rows sorted, destination positions) pieces."""
    seg_of = np.searchsorted(starts, index, side="right") - 1
    out = []
    for k in np.unique(seg_of):
        pos = np.flatnonzero(seg_of == k)
        seg = segments[k]
        rows = seg.rows[index[pos] - seg.start]
        order = np.argsort(rows, kind="stable")
        out.append((int(k), rows[order], pos[order] + offset))
    return out


def _runs(rows: np.ndarray, pos: np.ndarray):
    """Maximal runs where both the file rows and the destinations are consecutive: (row0, row1, pos0)."""
    if not len(rows):
        return
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(pos) != 1)) + 1
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
        yield int(rows[a]), int(rows[b - 1]) + 1, int(pos[a])


def _fill(segments, handles: dict, images: np.ndarray, labels: np.ndarray, pieces) -> int:
    """Read pieces into ``images``/``labels`` (stored layout), whole chunks straight into place."""
    n = 0
    for k, rows, pos in pieces:
        seg = segments[k]
        f = handles.get(seg.file_index)
        if f is None:
            f = handles[seg.file_index] = h5py.File(seg.path, "r")
        img = handles.get((seg.file_index, seg.image))
        if img is None:
            img = handles[(seg.file_index, seg.image)] = open_images(f, seg.image)
        lab = f[seg.label]
        for r0, r1, p0 in _runs(rows, pos):
            img.read_direct(images, np.s_[r0:r1], np.s_[p0:p0 + r1 - r0])
            lab.read_direct(labels, np.s_[r0:r1], np.s_[p0:p0 + r1 - r0])
            n += r1 - r0
    return n


# State of a process pool, inherited by its forked workers (the buffers are shared memory).
_POOLS: dict[int, tuple] = {}
_WORKER: dict = {}


def _worker_init(token: int) -> None:
    segments, buffers = _POOLS[token]
    _WORKER.clear()
    _WORKER.update(segments=segments, buffers=buffers, handles={})


def _worker_fill(slot: int, pieces) -> int:
    images, labels = _WORKER["buffers"][slot]
    return _fill(_WORKER["segments"], _WORKER["handles"], images, labels, pieces)


#: at most this many workers by default: decompression scales, the disk and memory bandwidth do not
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """The CPUs this process may use, at most :data:`MAX_DEFAULT_WORKERS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


class _Runner:
    """Runs ``_fill`` tasks on processes (forked, writing into shared buffers) or threads."""

    def __init__(self, segments, buffers, workers: int, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"Expected backend in {BACKENDS}, got {backend!r}")
        if backend == "process" and "fork" not in mp.get_all_start_methods():
            backend = "thread"  # shared anonymous memory needs fork
        self.backend, self.buffers, self.segments = backend, buffers, segments
        if backend == "process":
            self.token = id(self)
            _POOLS[self.token] = (segments, buffers)
            self.pool = mp.get_context("fork").Pool(workers, initializer=_worker_init, initargs=(self.token,))
        else:
            self.local = threading.local()
            self.opened: list = []
            self.lock = threading.Lock()
            self.pool = ThreadPoolExecutor(workers)

    def _thread_fill(self, slot, pieces):
        handles = getattr(self.local, "handles", None)
        if handles is None:
            handles = self.local.handles = {}
            with self.lock:
                self.opened.append(handles)
        images, labels = self.buffers[slot]
        return _fill(self.segments, handles, images, labels, pieces)

    def submit(self, slot: int, pieces):
        if self.backend == "process":
            return self.pool.apply_async(_worker_fill, (slot, pieces))
        return self.pool.submit(self._thread_fill, slot, pieces)

    @staticmethod
    def wait(future) -> int:
        return future.get() if hasattr(future, "get") else future.result()

    def close(self, abort: bool = False) -> None:
        if self.backend == "process":
            if abort:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            _POOLS.pop(self.token, None)
        else:
            self.pool.shutdown(wait=True, cancel_futures=abort)
            for handles in self.opened:
                for f in handles.values():
                    if isinstance(f, h5py.File):  # the others are datasets (or crop readers) of these files
                        f.close()


def _as_dataset(source, kind, layout, rows) -> PatchDataset:
    if isinstance(source, PatchDataset):
        return source
    return PatchDataset(source, kind=kind, layout=layout, rows=rows)


def load_all(source, kind=None, workers: int | None = None, *, layout: str = "tf", rows: Mapping | None = None,
             backend: str = "process", block: int = 64) -> Batch:
    """Every patch of ``source`` (paths, or a :class:`PatchDataset`) in one array, read in parallel.

    ``workers`` processes (default: the usable CPUs) each read blocks of ``block`` whole chunks
    directly into one shared output array (no pickling, no concatenation); ``backend="thread"``
    uses threads instead (h5py serialises most of the work on its lock, so threads gain little).
    ``workers=0`` reads in this process.  Returns a :class:`Batch` in dataset order.

    Processes need the ``fork`` start method (Linux, macOS; elsewhere threads are used): the
    workers are forked after the output is allocated as anonymous shared memory, which is freed
    with the array.  Processes forked later share that memory too (writes are seen by all).
    """
    ds = _as_dataset(source, kind, layout, rows)
    n = len(ds)
    seg0 = ds.segments[0]
    starts = np.asarray(ds._starts)
    tasks = []
    for a in range(0, n, block):
        idx = np.arange(a, min(a + block, n))
        tasks.append(_pieces(ds.segments, starts, idx, offset=a))
    workers = default_workers() if workers is None else int(workers)
    local = workers <= 0 or n == 0 or backend == "thread"
    alloc = np.empty if local else _shared_array  # shared pages cost more to fault in: only when needed
    images = alloc((n, *seg0.image_shape), seg0.image_dtype)
    labels = alloc((n, *seg0.label_shape), seg0.label_dtype)
    if workers <= 0 or n == 0:
        handles: dict = {}
        try:
            for task in tasks:
                _fill(ds.segments, handles, images, labels, task)
        finally:
            for f in handles.values():
                if isinstance(f, h5py.File):
                    f.close()
    else:
        runner = _Runner(ds.segments, [(images, labels)], min(workers, len(tasks)), backend)
        ok = False
        try:
            for fut in [runner.submit(0, t) for t in tasks]:
                runner.wait(fut)
            ok = True
        finally:
            runner.close(abort=not ok)
    return Batch(to_layout(images, seg0.stored_layout, ds.layout, True),
                 to_layout(labels, seg0.stored_layout, ds.layout, True), np.arange(n))


def iter_batches(source, kind=None, batch_size: int = 64, workers: int | None = None, *, layout: str = "tf",
                 rows: Mapping | None = None, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                 drop_last: bool = False, backend: str = "process", prefetch: int | None = None,
                 copy: bool = True) -> Iterator[Batch]:
    """Batches of ``batch_size`` patches, read ahead by ``workers`` processes into shared buffers.

    Order: dataset order, or with ``shuffle`` a permutation drawn from ``keyed_rng(seed, "batches",
    epoch)`` (each batch's rows are read in file order, then placed in the shuffled order).
    ``prefetch`` batches (default ``2 * workers``) are in flight; they take
    ``prefetch * batch_size`` patches of memory.  With ``copy=False`` a batch is a view of a
    shared buffer, valid only until the next batch is requested.  ``workers=0`` reads in this
    process.
    """
    ds = _as_dataset(source, kind, layout, rows)
    if int(batch_size) < 1:
        raise ValueError(f"Expected batch_size >= 1, got {batch_size!r}")
    bs, n = int(batch_size), len(ds)
    order = keyed_rng(seed, "batches", epoch).permutation(n) if shuffle else np.arange(n)
    stop = n - n % bs if drop_last else n
    batches = [order[a:min(a + bs, stop)] for a in range(0, stop, bs)]
    seg0 = ds.segments[0]
    starts = np.asarray(ds._starts)

    def finish(images, labels, idx):
        im = to_layout(images[:len(idx)], seg0.stored_layout, ds.layout, True)
        lb = to_layout(labels[:len(idx)], seg0.stored_layout, ds.layout, True)
        if copy:
            im, lb = np.array(im), np.array(lb)
        return Batch(im, lb, idx)

    workers = default_workers() if workers is None else int(workers)
    if workers <= 0:
        images = np.empty((bs, *seg0.image_shape), seg0.image_dtype)
        labels = np.empty((bs, *seg0.label_shape), seg0.label_dtype)
        handles: dict = {}
        try:
            for idx in batches:
                _fill(ds.segments, handles, images, labels, _pieces(ds.segments, starts, idx))
                yield finish(images, labels, idx)
        finally:
            for f in handles.values():
                if isinstance(f, h5py.File):
                    f.close()
        return
    depth = max(1, min(int(prefetch or 2 * workers), len(batches)))
    alloc = np.empty if backend == "thread" else _shared_array
    buffers = [(alloc((bs, *seg0.image_shape), seg0.image_dtype),
                alloc((bs, *seg0.label_shape), seg0.label_dtype)) for _ in range(depth)]
    runner = _Runner(ds.segments, buffers, workers, backend)
    pending: deque = deque()
    ok = False
    try:
        for b in range(min(depth, len(batches))):
            pending.append(runner.submit(b % depth, _pieces(ds.segments, starts, batches[b])))
        for b, idx in enumerate(batches):
            runner.wait(pending.popleft())
            images, labels = buffers[b % depth]
            yield finish(images, labels, idx)
            nxt = b + depth  # the consumer moved on: this slot is free
            if nxt < len(batches):
                pending.append(runner.submit(nxt % depth, _pieces(ds.segments, starts, batches[nxt])))
        ok = True
    finally:
        runner.close(abort=not ok)


# ------------------------------------------------------------------------------------ folds
@dataclass(frozen=True)
class Fold:
    """Patches of whole subsets (LUNA16) or whole patients (LDCT).

    ``rows`` maps ``(path, kind)`` to the file rows of the fold; ``groups`` names the subsets or
    patients in it.  ``fold.dataset(...)`` is a :class:`PatchDataset` of exactly those rows.
    """

    name: str
    mode: str
    groups: tuple[str, ...]
    rows: Mapping = field(repr=False)

    @property
    def paths(self) -> list[str]:
        return list(dict.fromkeys(p for p, _ in self.rows))

    def __len__(self) -> int:
        return int(sum(len(r) for r in self.rows.values()))

    def dataset(self, kind=None, layout: str = "tf") -> PatchDataset:
        return PatchDataset(self.paths, kind=kind, layout=layout, rows=self.rows)


def _subset_of(f: h5py.File, path: str) -> str:
    sub = f.attrs.get("subset", f.attrs.get("group"))
    if sub is not None:
        return sub.decode() if isinstance(sub, bytes) else str(sub)
    m = re.fullmatch(r"(subset\d+)(?:[._-].*)?", Path(path).stem)
    if m:
        return m.group(1)
    raise ValueError(f"{path}: cannot tell its LUNA16 subset: no 'subset' attribute and the file name is not "
                     f"subsetK.h5")


def _subset_key(name: str):
    m = re.fullmatch(r"subset(\d+)", name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def folds(paths, k: int | None = None, seed: int = 0) -> list[Fold]:
    """Cross-validation folds that never split a scan or a patient.

    LUNA16: one fold per subset (the file's ``subset`` or ``group`` attribute, else its name ``subsetK.h5``);
    with ``k`` the subsets are dealt into ``k`` folds in subset order (subset i -> fold i mod k).
    LDCT: the patients (provenance ``patient``) are put in ``k`` folds (default: one per patient),
    in an order drawn from ``keyed_rng(seed, "folds")``, each to the fold with the fewest
    patches so far.  The result is checked with :func:`check_folds`.
    """
    paths = _as_paths(paths)
    modes: set = set()
    per_group: dict = {}
    for path in paths:
        with h5py.File(path, "r") as f:
            mode = file_mode(f, path)
            modes.add(mode)
            if mode == "luna16":
                sub = _subset_of(f, path)
                for kind in MODE_KINDS[mode]:
                    n = f[KINDS[kind][2]].shape[0]
                    per_group.setdefault(sub, {})[(path, kind)] = np.arange(n, dtype=np.int64)
            else:
                table = f[KINDS["patch"][2]]
                pat = table["patient"].astype(str) if table.shape[0] else np.array([], dtype=str)
                for name in np.unique(pat):
                    per_group.setdefault(str(name), {})[(path, "patch")] = np.flatnonzero(pat == name).astype(np.int64)
    if len(modes) != 1:
        raise ValueError(f"Expected files of one mode, got {sorted(modes)} among {paths}")
    mode = modes.pop()
    groups = sorted(per_group, key=_subset_key) if mode == "luna16" else sorted(per_group)
    if not groups:
        raise ValueError(f"No patches to split in {paths}")
    k = len(groups) if k is None else int(k)
    if not 1 <= k <= len(groups):
        raise ValueError(f"Expected 1 <= k <= {len(groups)} (the {'subsets' if mode == 'luna16' else 'patients'} "
                         f"found), got k={k}")
    members: list[list[str]] = [[] for _ in range(k)]
    if mode == "luna16":
        for i, g in enumerate(groups):
            members[i % k].append(g)
    else:
        sizes = [0] * k
        for g in keyed_rng(seed, "folds").permutation(groups):
            j = min(range(k), key=lambda j: (sizes[j], j))
            members[j].append(str(g))
            sizes[j] += sum(len(r) for r in per_group[str(g)].values())
    out = []
    for j, gs in enumerate(members):
        gs = sorted(gs, key=_subset_key) if mode == "luna16" else sorted(gs)
        rows: dict = {}
        for g in gs:
            for key, r in per_group[g].items():
                rows[key] = np.sort(np.concatenate([rows[key], r])) if key in rows else r
        name = gs[0] if len(gs) == 1 else f"fold{j}"
        out.append(Fold(name, mode, tuple(gs), rows))
    check_folds(out)
    return out


def train_val(fold_list: Sequence[Fold], i: int) -> tuple[Fold, Fold]:
    """(everything but fold ``i``, fold ``i``)."""
    val = fold_list[i]
    rows: dict = {}
    groups: list[str] = []
    for j, f in enumerate(fold_list):
        if j == i:
            continue
        groups += f.groups
        for key, r in f.rows.items():
            rows[key] = np.union1d(rows[key], r) if key in rows else r
    return Fold(f"not-{val.name}", val.mode, tuple(groups), rows), val


def check_folds(fold_list) -> None:
    """Raise ValueError naming the first scan (LUNA16 seriesuid) or patient (LDCT) found in two folds.

    ``fold_list``: :class:`Fold` objects, or a mapping of fold name -> patch files (whole files),
    e.g. ``{"train": [a, b], "val": [c]}``.  The check reads the provenance of the rows of each
    fold, so it holds whatever built the folds.
    """
    if isinstance(fold_list, Mapping):
        built = []
        for name, paths in fold_list.items():
            rows = {}
            for path in _as_paths(paths):
                with h5py.File(path, "r") as f:
                    mode = file_mode(f, path)
                    for kind in MODE_KINDS[mode]:
                        rows[(path, kind)] = np.arange(f[KINDS[kind][2]].shape[0])
            built.append(Fold(str(name), mode, (), rows))
        fold_list = built
    seen: dict[str, tuple[int, str, str, int]] = {}
    for number, fold in enumerate(fold_list):
        for (path, kind), sel in fold.rows.items():
            mode = KINDS[kind][3]
            key, unit = FOLD_UNIT[mode]
            with h5py.File(path, "r") as f:
                ids = f[KINDS[kind][2]][key][...] if len(sel) else np.array([], dtype="S1")
            ids = ids[np.asarray(sel, dtype=np.int64)] if len(sel) else ids
            for name, first in zip(*np.unique(ids, return_index=True)):
                name = name.decode() if isinstance(name, bytes) else str(name)
                row = int(np.asarray(sel)[first])
                prev = seen.get(name)
                if prev is not None and prev[0] != number:
                    raise ValueError(f"{unit} {name} is in two folds: {prev[1]!r} ({prev[2]} row {prev[3]}) and "
                                     f"{fold.name!r} ({path} row {row})")
                seen.setdefault(name, (number, fold.name, path, row))
