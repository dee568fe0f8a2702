"""Writing outputs safely: temp-then-rename, the patch-sink protocol, and HDF5 patch datasets.

Chunks are exactly one patch: reading one patch decompresses one patch, and compressed chunk
bytes can be moved as they are (:func:`copy_chunks`, ``write_direct_chunk``).  pip's h5py has no
MPI-IO: the extraction's ranks compress chunks in memory and one writer places them in the final
files (:mod:`ctpatch.patchfile`).

Every patch dataset carries HDF5's Fletcher32 checksum as the last filter of its pipeline (after
the codec), so every reader (h5py, any HDF5 tool) checks each chunk it reads and a changed byte
fails the read; :func:`chunk_checksum_ok` checks a stored chunk without decompressing it.

The **patch-sink protocol** (:class:`PatchSink`) is how the extraction jobs hand over what they
cut: :class:`ShardWriter` (a whole file), :class:`ctpatch.patchfile.BlockSink` (compressed chunks
for the single writer) and the in-memory collectors of ``verify`` and ``explain`` implement it.

Codecs (:data:`COMPRESSION`): ``blosc2-zstd`` (the default: zstd level 1 after a byte shuffle,
through the Blosc2 filter of ``hdf5plugin``), ``blosc2-lz4``, ``lzf``, ``gzip`` (level 1) and
``none``.  Each patch dataset records its codec name in the attribute ``codec`` (:func:`codec_of`).

Length (~470 lines): every way ctpatch writes a file is here (temp-then-rename, the codecs with
their checksums, the patch-sink protocol and its two sinks), so that the writer, the extraction and
the tests share one definition of a stored patch.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

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
BLOSC_OVERRIDES = (
    "BLOSC_CLEVEL",
    "BLOSC_COMPRESSOR",
    "BLOSC_TYPESIZE",
    "BLOSC_BLOCKSIZE",
    "BLOSC_SPLITMODE",
    "BLOSC_DELTA",
)


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


class PatchSink(Protocol):
    """Where an extraction job puts its patches and provenance rows (the patch-sink protocol).

    A job (``extract_luna.Job``, ``extract_ldct.Job``) calls, per patch and in its canonical order:

    * ``slot(name)`` -> a writable array of the dataset's patch shape and dtype, which the job fills
      in place, then ``commit(name)``; or ``add(name, patch)`` with an array cast to the dataset's
      dtype (as ``astype`` would).  ``name`` is one of the job's datasets (``Job.specs()``).
    * ``add_row(table, row)`` with a tuple of the provenance table's dtype, after the patches the
      row describes.

    Implementations may keep the array of a ``slot`` until the next call for that dataset, so a job
    never holds on to it.  Nothing else is required (no flush, no close): the owner of the sink
    finishes it.
    """

    def slot(self, name: str) -> np.ndarray: ...

    def commit(self, name: str) -> None: ...

    def add(self, name: str, patch: np.ndarray) -> None: ...

    def add_row(self, table: str, row: tuple) -> None: ...


class MemorySink:
    """A :class:`PatchSink` keeping everything in memory, cast to the datasets' dtypes (for re-running a
    few patches: ``verify``, tests).  ``datasets``: name -> (patch shape, dtype), as ``Job.specs().datasets``.

    ``patches[name]`` lists the patches in order, ``rows[table]`` the provenance rows.
    """

    def __init__(self, datasets: dict):
        self.datasets = {n: (tuple(shape), np.dtype(dt)) for n, (shape, dt) in datasets.items()}
        self.patches: dict[str, list] = {n: [] for n in self.datasets}
        self.rows: dict[str, list] = {}

    def slot(self, name: str) -> np.ndarray:
        shape, dtype = self.datasets[name]
        self._slot = np.empty(shape, dtype=dtype)
        return self._slot

    def commit(self, name: str) -> None:
        self.patches[name].append(self._slot)

    def add(self, name: str, patch) -> None:
        shape, dtype = self.datasets[name]
        self.patches[name].append(np.asarray(patch).astype(dtype, copy=True).reshape(shape))

    def add_row(self, table: str, row) -> None:
        self.rows.setdefault(table, []).append(row)


def temp_name(final: str | Path) -> Path:
    """The temporary name :func:`atomic_path` writes ``final`` under (hidden, this process's id)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def clean_stale(final: str | Path) -> list[Path]:
    """Remove temporary files of ``final`` left by killed processes (``.<name>.<pid>.tmp`` whose
    process no longer runs); return what was removed.  A kill -9 skips every ``finally``: the next
    run cleans up here."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.glob(f".{final.name}.*.tmp"):
        pid = p.name[len(final.name) + 2 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue  # a running process is writing it
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


@contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    A crash inside the block leaves nothing; a kill -9 leaves at most a hidden ``.<name>.<pid>.tmp``
    file, never something that looks finished; the next write of ``final`` removes it
    (:func:`clean_stale`), whichever step it belongs to.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the output folder: {exc.strerror}", exc.filename) from None
    clean_stale(final)
    tmp = temp_name(final)
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


def create_patch_dataset(
    group: h5py.Group, name: str, patch_shape, dtype, compression: str = DEFAULT_CODEC, rows: int = 0
) -> h5py.Dataset:
    """A growable dataset of ``rows`` patches (unwritten), chunked one patch per chunk, the codec's filter
    then Fletcher32; its codec name in attribute ``codec``."""
    if compression not in COMPRESSION:
        raise ValueError(f"Expected compression in {sorted(COMPRESSION)}, got {compression!r}")
    if compression.startswith("blosc2") and (bad := _blosc_env_problems()):
        raise ValueError(
            f"Expected BLOSC_NTHREADS=1 and none of {', '.join(BLOSC_OVERRIDES)} in the environment "
            f"when writing {compression}, got {', '.join(bad)}: c-blosc2 would override the codec's "
            f"parameters or write bytes that differ from run to run"
        )
    patch_shape = tuple(int(n) for n in patch_shape)
    ds = group.create_dataset(
        name,
        shape=(int(rows), *patch_shape),
        maxshape=(None, *patch_shape),
        dtype=dtype,
        chunks=(1, *patch_shape),
        fletcher32=True,
        **COMPRESSION[compression],
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
    raise ValueError(
        f"Expected a 'codec' attribute or an lzf, gzip (level 1) or unfiltered dataset, got "
        f"{_describe(ds)} without a 'codec' attribute"
    )


_FLETCHER_BLOCK = 4096  # 16-bit words per row of the block sums in :func:`fletcher32_mod`


def fletcher32_mod(data: bytes) -> tuple[int, int]:
    """HDF5's Fletcher32 sums of ``data`` (big-endian 16-bit words, an odd last byte padded), mod 65535.

    HDF5 stores ``sum2 << 16 | sum1`` (little-endian) after the chunk's bytes; it reduces the sums
    only partially, so the stored halves are compared modulo 65535.  Computed with block sums
    instead of the serial loop (~1.5 GB/s on one core): ``sum1 = Σ w_i``, ``sum2 = Σ (n - i) w_i``;
    the words are read in native little-endian order, since ``256 · w_le ≡ w_be (mod 65535)``.

    >>> fletcher32_mod(b"abcde")
    (10695, 20464)
    """
    n2 = len(data) // 2
    w = np.frombuffer(data, "<u2", count=n2)
    n = n2 + len(data) % 2
    m = _FLETCHER_BLOCK
    full = (n2 // m) * m
    s1 = s2 = 0
    if full:
        blocks = w[:full].reshape(-1, m)
        acc = np.uint32 if len(blocks) < 65536 else np.uint64  # no overflow: a sum of < 65536 words of < 65536
        per_block = blocks.sum(axis=1, dtype=acc).astype(np.uint64)
        per_column = blocks.sum(axis=0, dtype=acc).astype(np.uint64)
        first = (n - np.arange(len(per_block), dtype=np.uint64) * m) % 65535
        s1 += int(per_block.sum())
        s2 += int(np.dot(first, per_block % 65535)) - int(np.dot(np.arange(m, dtype=np.uint64), per_column % 65535))
    rest = w[full:].astype(np.uint64)
    if len(data) % 2:
        rest = np.append(rest, np.uint64(data[-1]))
    if len(rest):
        s1 += int(rest.sum())
        s2 += int(np.dot(np.arange(len(rest), 0, -1, dtype=np.uint64), rest))
    return s1 * 256 % 65535, s2 * 256 % 65535


#: chunks up to this size (bytes) are checked many at a time by :func:`fletcher32_ok_many`
SMALL_CHUNK = 1 << 16


def fletcher32_ok_many(buf: np.ndarray, offsets, sizes) -> np.ndarray:
    """Whether each stored chunk ``buf[offset : offset + size]`` (checksum included, each at most
    :data:`SMALL_CHUNK` bytes and at least 4) matches its Fletcher32 checksum; ``buf`` is a uint8 array
    (a memory-mapped file).  The same sums as :func:`fletcher32_mod`, for many small chunks at once:
    a batch of chunks is copied as rows of a matrix (a strided view of the file gives each chunk's
    16-bit words), the bytes past each chunk's end zeroed, and one float64 product with the columns
    ``1`` and ``i`` gives every row's ``Σ w_i`` and ``Σ i·w_i`` (exact: below 2^53 for chunks of this
    size); ``sum2 = n·Σ w_i - Σ i·w_i``.  Per chunk in numpy this costs ~20 µs, here ~1 µs per 5 KB.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any(sizes < 4) or np.any(sizes > SMALL_CHUNK) or np.any(offsets + sizes > len(buf)):
        raise ValueError(
            f"Expected chunks of 4..{SMALL_CHUNK} bytes inside the buffer, got sizes {sizes.min()}..{sizes.max()}"
        )
    length = sizes - 4  # the checked bytes; the checksum follows them
    n2 = length // 2
    s1 = np.zeros(len(sizes), dtype=np.int64)
    sw = np.zeros(len(sizes), dtype=np.int64)
    for parity in (0, 1):  # 16-bit words of chunks at even and at odd byte offsets
        words = np.frombuffer(buf, "<u2", count=(len(buf) - parity) // 2, offset=parity)
        sel = np.flatnonzero(offsets % 2 == parity)
        sel = sel[np.argsort(n2[sel], kind="stable")]  # similar sizes share a batch: little padding
        start = 0
        while start < len(sel):
            width = max(1, int(n2[sel[min(len(sel), start + 64) - 1]]))
            rows = max(1, (1 << 21) // (8 * width))  # ~2 MB of float64 per batch
            batch = sel[start : start + rows]
            width = max(1, int(n2[batch].max()))
            first = (offsets[batch] - parity) // 2
            fits = first + width <= len(words)  # a chunk near the end of the file: its own row
            cols = np.arange(width)
            weights = np.stack([np.ones(width), cols.astype(np.float64)], axis=1)
            view = sliding_window_view(words, width)
            m = view[first[fits]].astype(np.float64)
            m[cols[None, :] >= n2[batch[fits]][:, None]] = 0.0
            r = m @ weights
            s1[batch[fits]], sw[batch[fits]] = r[:, 0].astype(np.int64), r[:, 1].astype(np.int64)
            for k in batch[~fits]:
                w = words[first[batch == k][0] : first[batch == k][0] + n2[k]].astype(np.int64)
                s1[k], sw[k] = int(w.sum()), int(np.dot(np.arange(len(w), dtype=np.int64), w))
            start += len(batch)
    odd = length % 2 == 1
    s2 = (n2 + odd) * s1 - sw
    tail = buf[offsets[odd] + length[odd] - 1].astype(np.int64)  # an odd last byte: one more word
    s1[odd] += tail
    s2[odd] += tail
    stored = buf[(offsets + length)[:, None] + np.arange(4)].astype(np.int64) << np.array([0, 8, 16, 24])
    stored = stored.sum(axis=1)
    return (s1 * 256 % 65535 == (stored & 0xFFFF) % 65535) & (s2 % 65535 * 256 % 65535 == (stored >> 16) % 65535)


def chunk_checksum_ok(raw) -> bool:
    """Whether a stored chunk of a Fletcher32 dataset (bytes or a memoryview, as ``read_direct_chunk``
    returns it) matches its checksum."""
    if len(raw) < 4:
        return False
    stored = int.from_bytes(bytes(raw[-4:]), "little")
    return fletcher32_mod(raw[:-4]) == ((stored & 0xFFFF) % 65535, (stored >> 16) % 65535)


def has_fletcher32(ds: h5py.Dataset) -> bool:
    """True when Fletcher32 is the last filter of the dataset's pipeline (the checksum covers the stored bytes)."""
    pipeline = _pipeline(ds)
    return bool(pipeline) and pipeline[-1][0] == h5py.h5z.FILTER_FLETCHER32


class ShardWriter:
    """Appends patches to growable datasets, holding at most ``buffer`` patches per dataset.

    ``specs`` maps dataset name -> (patch shape, dtype); ``tables`` maps a provenance table
    name -> numpy structured dtype.  Rows of a table are appended with :meth:`add_row`.
    The file is written under a temporary name and renamed by :meth:`close`.
    """

    def __init__(self, path, specs: dict, tables: dict, compression: str = DEFAULT_CODEC, buffer: int = 8, attrs=None):
        self.final = Path(path)
        self._ctx = atomic_path(self.final)
        tmp = self._ctx.__enter__()
        self.h5 = h5py.File(tmp, "w")
        for key, value in (attrs or {}).items():
            self.h5.attrs[key] = value
        self.datasets = {n: create_patch_dataset(self.h5, n, s, d, compression) for n, (s, d) in specs.items()}
        self.tables = {
            n: self.h5.create_dataset(f"provenance/{n}", shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
            for n, dt in tables.items()
        }
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
        raise ValueError(
            f"Expected the same filter pipeline in both datasets (raw chunks are copied as they "
            f"are), got {_describe(src)} and {_describe(dst)}"
        )


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
