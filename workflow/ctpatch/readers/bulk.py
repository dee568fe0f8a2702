"""Bulk reading: whole batches of patches read by a pool of processes (or threads) into shared memory.

:func:`load_all` reads every patch of a :class:`~ctpatch.readers.dataset.PatchDataset` (or of files) into
one array; :func:`iter_batches` yields batches, read ahead.  Workers read whole chunks straight
into their place in anonymous shared memory: no pickling of patches, no concatenation.  Rows are
read in file order; crops-layout files decode each crop of a block once.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Mapping, NamedTuple

import numpy as np

from ctpatch.core.rng import keyed_rng
from ctpatch.luna16.layouts import images as open_images
from ctpatch.readers.contract import to_layout
from ctpatch.readers.dataset import PatchDataset
from ctpatch.readers.selection import Segment
from ctpatch.store.h5 import h5py

BACKENDS = ("process", "thread")


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
            img.read_direct(images, np.s_[r0:r1], np.s_[p0 : p0 + r1 - r0])
            lab.read_direct(labels, np.s_[r0:r1], np.s_[p0 : p0 + r1 - r0])
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
        """Start filling buffer ``slot`` with ``pieces`` on the pool; returns a future."""
        if self.backend == "process":
            return self.pool.apply_async(_worker_fill, (slot, pieces))
        return self.pool.submit(self._thread_fill, slot, pieces)

    @staticmethod
    def wait(future) -> int:
        """The result of a :meth:`submit` future, for either backend."""
        return future.get() if hasattr(future, "get") else future.result()

    def close(self, abort: bool = False) -> None:
        """Stop the pool: wait for its work, or end it at once with ``abort``."""
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


def load_all(
    source,
    kind=None,
    workers: int | None = None,
    *,
    layout: str | None = None,
    rows: Mapping | None = None,
    backend: str = "process",
    block: int = 64,
) -> Batch:
    """Every patch of ``source`` (paths, or a :class:`PatchDataset`) in one array, read in parallel.

    ``workers`` processes (default: the usable CPUs) each read blocks of ``block`` whole chunks
    directly into one shared output array (no pickling, no concatenation); ``backend="thread"``
    uses threads instead (h5py serialises most of the work on its lock, so threads gain little).
    ``workers=0`` reads in this process.  Returns a :class:`Batch` in dataset order.  ``layout``
    None is the layout the files store (a dataset given as ``source`` keeps its own;
    its ``items`` and ``transform`` do not apply to batches).

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
    return Batch(
        to_layout(images, seg0.stored_layout, ds.layout, True),
        to_layout(labels, seg0.stored_layout, ds.layout, True),
        np.arange(n),
    )


def iter_batches(
    source,
    kind=None,
    batch_size: int = 64,
    workers: int | None = None,
    *,
    layout: str | None = None,
    rows: Mapping | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    backend: str = "process",
    prefetch: int | None = None,
    copy: bool = True,
) -> Iterator[Batch]:
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
    batches = [order[a : min(a + bs, stop)] for a in range(0, stop, bs)]
    seg0 = ds.segments[0]
    starts = np.asarray(ds._starts)

    def finish(images, labels, idx):
        im = to_layout(images[: len(idx)], seg0.stored_layout, ds.layout, True)
        lb = to_layout(labels[: len(idx)], seg0.stored_layout, ds.layout, True)
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
    buffers = [
        (alloc((bs, *seg0.image_shape), seg0.image_dtype), alloc((bs, *seg0.label_shape), seg0.label_dtype))
        for _ in range(depth)
    ]
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
