"""Writing outputs safely: temp-then-rename, and HDF5 patch shards with one patch per chunk.

pip's h5py has no MPI-IO, so every MPI rank writes its own shard file and one process merges
them.  Chunks are exactly one patch: reading one patch decompresses one patch, and merging can
copy the compressed chunk bytes as they are (:func:`copy_chunks`) instead of decompressing and
compressing again.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

COMPRESSION = {"lzf": {"compression": "lzf"}, "gzip": {"compression": "gzip", "compression_opts": 1}, "none": {}}


@contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    A crash or kill inside the block leaves at most a ``*.tmp`` file, never something that looks
    finished.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically (sorted keys, so equal data gives equal bytes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Expected JSON-serialisable data, got {type(value).__name__}")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary name."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def create_patch_dataset(group: h5py.Group, name: str, patch_shape, dtype, compression: str = "lzf") -> h5py.Dataset:
    """An empty, growable dataset of patches, chunked one patch per chunk."""
    if compression not in COMPRESSION:
        raise ValueError(f"Expected compression in {sorted(COMPRESSION)}, got {compression!r}")
    patch_shape = tuple(int(n) for n in patch_shape)
    return group.create_dataset(
        name, shape=(0, *patch_shape), maxshape=(None, *patch_shape), dtype=dtype,
        chunks=(1, *patch_shape), **COMPRESSION[compression],
    )


class ShardWriter:
    """Appends patches to growable datasets, holding at most ``buffer`` patches per dataset.

    ``specs`` maps dataset name -> (patch shape, dtype); ``tables`` maps a provenance table
    name -> numpy structured dtype.  Rows of a table are appended with :meth:`add_row`.
    The file is written under a temporary name and renamed by :meth:`close`.
    """

    def __init__(self, path, specs: dict, tables: dict, compression: str = "lzf", buffer: int = 8, attrs=None):
        self.final = Path(path)
        self._ctx = atomic_path(self.final)
        tmp = self._ctx.__enter__()
        self.h5 = h5py.File(tmp, "w")
        for key, value in (attrs or {}).items():
            self.h5.attrs[key] = value
        self.datasets = {n: create_patch_dataset(self.h5, n, s, d, compression) for n, (s, d) in specs.items()}
        self.tables = {n: self.h5.create_dataset(f"provenance/{n}", shape=(0,), maxshape=(None,), dtype=dt,
                                                 chunks=(1024,)) for n, dt in tables.items()}
        self.buffer = int(buffer)
        self._pending = {n: [] for n in self.datasets}
        # one reusable write buffer per dataset: no fresh multi-megabyte array (and its page faults) per flush
        self._stage = {n: np.empty((self.buffer, *ds.shape[1:]), dtype=ds.dtype) for n, ds in self.datasets.items()}
        self._written = {n: 0 for n in self.datasets}
        self._rows = {n: [] for n in self.tables}

    def add(self, name: str, patch: np.ndarray) -> None:
        self._pending[name].append(patch)
        if len(self._pending[name]) >= self.buffer:
            self._flush(name)

    def slot(self, name: str) -> np.ndarray:
        """The next patch of ``name`` as a writable view of the write buffer; fill it, then :meth:`commit`.

        Saves the copy :meth:`add` makes.  The data are those of the view when the buffer is
        written (when it is full, or on :meth:`close`).
        """
        return self._stage[name][len(self._pending[name])]

    def commit(self, name: str) -> None:
        """Count the patch filled in through :meth:`slot`, as :meth:`add` would."""
        self._pending[name].append(None)  # None: the patch is already in the write buffer
        if len(self._pending[name]) >= self.buffer:
            self._flush(name)

    def add_row(self, table: str, row: tuple) -> None:
        self._rows[table].append(row)
        if len(self._rows[table]) >= 1024:
            self._flush_rows(table)

    def _flush(self, name: str) -> None:
        pending = self._pending[name]
        if pending:
            k = len(pending)
            stage = self._stage[name][:k]
            for i, patch in enumerate(pending):
                if patch is not None:
                    stage[i] = patch  # cast to the dataset dtype as astype would
            # ``ds.resize`` + ``ds[n:] = stage`` through the low-level calls they make (same file bytes),
            # without h5py's per-call selection and shape checks: that overhead is most of the cost of
            # writing small patches
            n, shape, dsid = self._written[name], stage.shape[1:], self.datasets[name].id
            dsid.set_extent((n + k, *shape))
            fspace = dsid.get_space()
            fspace.select_hyperslab((n, *(0,) * len(shape)), stage.shape)
            dsid.write(h5py.h5s.create_simple(stage.shape), fspace, stage)
            self._written[name] = n + k
            pending.clear()

    def _flush_rows(self, table: str) -> None:
        rows = self._rows[table]
        if rows:
            ds = self.tables[table]
            n = ds.shape[0]
            ds.resize(n + len(rows), axis=0)
            ds[n:] = np.array(rows, dtype=ds.dtype)
            rows.clear()

    def close(self) -> None:
        for name in self.datasets:
            self._flush(name)
        for table in self.tables:
            self._flush_rows(table)
        self.h5.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self.h5.close()
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


_CHECKED: dict[tuple[int, int], int] = {}  # (src, dst) object hashes -> rank, for pairs already checked


def _checked_rank(src: h5py.Dataset, dst: h5py.Dataset) -> int:
    """Check that raw chunks of ``src`` can go to ``dst``; return the rank.

    The checks cost ~80 µs on freshly opened datasets (the merge opens them per patch), more
    than copying a small chunk, so each (src, dst) pair is checked once.  h5py identifies an
    HDF5 object by (file serial number, address); HDF5 never reuses a serial number within a
    process, and a dataset's chunks, filters and dtype cannot change, so a pair checked stays valid.
    """
    key = (hash(src.id), hash(dst.id))
    rank = _CHECKED.get(key)
    if rank is None:
        if src.chunks != dst.chunks or src.chunks[0] != 1:
            raise ValueError(f"Expected equal one-patch chunks, got {src.chunks} and {dst.chunks}")
        if src.compression != dst.compression or src.dtype != dst.dtype:
            raise ValueError(f"Expected equal filters and dtypes, got {src.compression}/{src.dtype} and {dst.compression}/{dst.dtype}")
        if len(_CHECKED) >= 4096:
            _CHECKED.clear()
        _CHECKED[key] = rank = src.ndim
    return rank


def copy_chunks(src: h5py.Dataset, dst: h5py.Dataset, src_rows, dst_start: int = 0) -> None:
    """Copy whole-patch chunks ``src[src_rows[i]] -> dst[dst_start + i]`` as compressed bytes.

    Both datasets must be chunked one patch per chunk with the same filters; nothing is
    decompressed.  ``dst`` must already be large enough.
    """
    tail = (0,) * (_checked_rank(src, dst) - 1)
    for i, row in enumerate(src_rows):
        mask, data = src.id.read_direct_chunk((int(row), *tail))
        dst.id.write_direct_chunk((dst_start + i, *tail), data, mask)
