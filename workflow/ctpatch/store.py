"""Writing outputs safely: temp-then-rename, and HDF5 patch shards with one patch per chunk.

pip's h5py has no MPI-IO, so every MPI rank writes its own shard file and one process merges
them.  Chunks are exactly one patch: reading one patch decompresses one patch, and merging can
copy the compressed chunk bytes as they are (:func:`copy_chunks`) instead of decompressing and
compressing again.

Codecs (:data:`COMPRESSION`): ``blosc2-zstd`` (the default: zstd level 1 after a byte shuffle,
through the Blosc2 filter of ``hdf5plugin``), ``blosc2-lz4``, ``lzf``, ``gzip`` (level 1) and
``none``.  Each patch dataset records its codec name in the attribute ``codec`` (:func:`codec_of`).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ctpatch.config import key_schema
from ctpatch.h5 import h5py, hdf5plugin

#: codec name -> ``create_dataset`` keywords.  Blosc2 comes from ``hdf5plugin`` (imported by
#: ``ctpatch/__init__.py``, which registers the filter); ``filters=SHUFFLE`` is Blosc2's byte shuffle.
COMPRESSION = {
    "blosc2-zstd": dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.SHUFFLE)),
    "blosc2-lz4": dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)),
    "lzf": {"compression": "lzf"},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "none": {},
}
#: the default codec of the patch datasets: the schema's (both modes share it)
DEFAULT_CODEC = key_schema("luna16.output.compression")["default"]

#: c-blosc2 reads these at every compression and lets them override the parameters the dataset was
#: created with (measured with hdf5plugin 7.1: each changed the bytes written; ``BLOSC_TYPESIZE=8``
#: wrote chunks that failed to read back).
BLOSC_OVERRIDES = ("BLOSC_CLEVEL", "BLOSC_COMPRESSOR", "BLOSC_TYPESIZE", "BLOSC_BLOCKSIZE", "BLOSC_SPLITMODE",
                   "BLOSC_DELTA")


def _blosc_env_problems() -> list[str]:
    """Environment settings under which Blosc2 would not write the codec's reproducible bytes.

    Besides :data:`BLOSC_OVERRIDES`: more than one Blosc thread (``BLOSC_NTHREADS``, which
    ``ctpatch/__init__`` sets to 1 unless already set): the same data then gave different bytes
    from run to run (measured with 2 and 4 threads; with 1 thread the bytes are the same).
    """
    bad = [f"{k}={os.environ[k]}" for k in BLOSC_OVERRIDES if k in os.environ]
    threads = os.environ.get("BLOSC_NTHREADS")
    try:
        one = int(threads) == 1
    except (TypeError, ValueError):
        one = False
    if not one:
        bad.append(f"BLOSC_NTHREADS={threads}" if threads is not None else "BLOSC_NTHREADS unset")
    return bad


@contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    A crash or kill inside the block leaves at most a ``*.tmp`` file, never something that looks
    finished.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the output folder: {exc.strerror}", exc.filename) from None
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        if exc.filename is None:  # a failed write (disk full) names no file: name the output and the free space
            try:
                free = f"; {shutil.disk_usage(final.parent).free} bytes free on its disk"
            except OSError:
                free = ""
            raise OSError(exc.errno, f"cannot write: {exc.strerror or exc}{free}", str(final)) from exc
        raise
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


def create_patch_dataset(group: h5py.Group, name: str, patch_shape, dtype,
                         compression: str = DEFAULT_CODEC) -> h5py.Dataset:
    """An empty, growable dataset of patches, chunked one patch per chunk, its codec name in attribute ``codec``."""
    if compression not in COMPRESSION:
        raise ValueError(f"Expected compression in {sorted(COMPRESSION)}, got {compression!r}")
    if compression.startswith("blosc2") and (bad := _blosc_env_problems()):
        raise ValueError(f"Expected BLOSC_NTHREADS=1 and none of {', '.join(BLOSC_OVERRIDES)} in the environment "
                         f"when writing {compression}, got {', '.join(bad)}: c-blosc2 would override the codec's "
                         f"parameters or write bytes that differ from run to run")
    patch_shape = tuple(int(n) for n in patch_shape)
    ds = group.create_dataset(
        name, shape=(0, *patch_shape), maxshape=(None, *patch_shape), dtype=dtype,
        chunks=(1, *patch_shape), **COMPRESSION[compression],
    )
    ds.attrs["codec"] = compression
    return ds


def _pipeline(ds: h5py.Dataset) -> tuple:
    """The dataset's filter pipeline as (filter id, flags, parameters) per filter, in order."""
    plist = ds.id.get_create_plist()
    return tuple(tuple(plist.get_filter(i)[:3]) for i in range(plist.get_nfilters()))


def _describe(ds: h5py.Dataset) -> str:
    """``file:dataset`` with its filters (name and parameters), for error messages."""
    plist = ds.id.get_create_plist()
    filters = []
    for i in range(plist.get_nfilters()):
        fid, _, params, fname = plist.get_filter(i)
        filters.append(f"{fname.decode(errors='replace') or fid}{params}")
    return f"{ds.file.filename}:{ds.name} (filters: {', '.join(filters) or 'none'})"


def codec_of(ds: h5py.Dataset) -> str:
    """The codec name (a key of :data:`COMPRESSION`) of a patch dataset.

    The ``codec`` attribute when present; for files written before it existed, ``lzf``, ``gzip``
    (level 1) or ``none`` read from the filter pipeline.  Anything else raises ``ValueError``
    naming the file and dataset.
    """
    codec = ds.attrs.get("codec")
    if codec is not None:
        return codec.decode() if isinstance(codec, bytes) else str(codec)
    pipeline = _pipeline(ds)
    if not pipeline:
        return "none"
    if len(pipeline) == 1 and ds.compression == "lzf":
        return "lzf"
    if len(pipeline) == 1 and ds.compression == "gzip" and ds.compression_opts == 1:
        return "gzip"
    raise ValueError(f"Expected a 'codec' attribute or an lzf, gzip (level 1) or unfiltered dataset, got "
                     f"{_describe(ds)} without a 'codec' attribute")


class ShardWriter:
    """Appends patches to growable datasets, holding at most ``buffer`` patches per dataset.

    ``specs`` maps dataset name -> (patch shape, dtype); ``tables`` maps a provenance table
    name -> numpy structured dtype.  Rows of a table are appended with :meth:`add_row`.
    The file is written under a temporary name and renamed by :meth:`close`.
    """

    def __init__(self, path, specs: dict, tables: dict, compression: str = DEFAULT_CODEC, buffer: int = 8,
                 attrs=None):
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


def _check_chunk_copy(src: h5py.Dataset, dst: h5py.Dataset) -> None:
    """Raise unless raw chunks of ``src`` can go to ``dst`` as they are."""
    if src.chunks != dst.chunks or src.chunks[0] != 1:
        raise ValueError(f"Expected equal one-patch chunks, got {src.chunks} and {dst.chunks}")
    if src.dtype != dst.dtype:
        raise ValueError(f"Expected equal dtypes, got {src.dtype} and {dst.dtype}")
    # the pipelines themselves, not ``ds.compression`` (h5py names no plugin filter: "unknown" for every one)
    if _pipeline(src) != _pipeline(dst):
        raise ValueError(f"Expected the same filter pipeline in both datasets (raw chunks are copied as they "
                         f"are), got {_describe(src)} and {_describe(dst)}")


def copy_chunks(src: h5py.Dataset, dst: h5py.Dataset, src_rows, dst_start: int = 0, dst_rows=None) -> None:
    """Copy whole-patch chunks ``src[src_rows[i]] -> dst[dst_rows[i]]`` as compressed bytes.

    ``dst_rows`` defaults to ``dst_start, dst_start + 1, ...``.  Both datasets must be chunked one
    patch per chunk with the same filters (checked once per call, ~80 µs: copy many rows per
    call); nothing is decompressed.  ``dst`` must already be large enough.
    """
    _check_chunk_copy(src, dst)
    tail = (0,) * (src.ndim - 1)
    if dst_rows is None:
        dst_rows = range(int(dst_start), int(dst_start) + len(src_rows))
    for row, dst_row in zip(src_rows, dst_rows):
        mask, data = src.id.read_direct_chunk((int(row), *tail))
        dst.id.write_direct_chunk((int(dst_row), *tail), data, mask)
