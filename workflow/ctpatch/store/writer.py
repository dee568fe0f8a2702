"""The final patch files, written once: ranks compress chunks, one writer places them in canonical order.

pip's h5py has no MPI-IO, so one process (MPI rank 0) writes the files.  The others do the
expensive part, cutting and compressing, and send the compressed chunks:

* :class:`ChunkEncoder` compresses patches into the exact bytes HDF5 stores for a one-patch chunk
  (the codec's filter, then Fletcher32), through a small dataset in an in-memory HDF5 file with
  the same filter pipeline as the final dataset (checked);
* :class:`BlockSink` implements the patch-sink protocol (:class:`ctpatch.store.sink.PatchSink`) on top
  of it: a block of patches becomes a :class:`Block` (compressed chunks per dataset, each tagged
  with its place in the job's output order, and the provenance rows);
* :class:`PatchFileWriter` receives the blocks **in canonical order** (units in order, patches in
  the job's order) and writes each chunk with ``write_direct_chunk`` at its final row: the row the
  seeded shuffle (and the split into ``nsplit`` parts) gives its canonical index.  Patch datasets
  are created at their final size when the counts are known (LUNA16 always; LDCT after a counting
  pass when it shuffles or splits) and grown block by block otherwise.

Since the writer makes the same HDF5 calls in the same order whatever the number of ranks, the
files are byte-identical for any rank count (tested for 1, 2 and 3).  The shuffle is the one the
former merge step applied (``keyed_rng(seed, "shuffle", mode, table, *file names)``), so the
decoded datasets are those of earlier versions.

Files are written under temporary names and renamed when complete (:func:`ctpatch.store.atomic.atomic_path`);
temporary files of killed runs are removed when the writer starts (:func:`ctpatch.store.atomic.clean_stale`).
"""

from __future__ import annotations

import errno as errnos
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import ctpatch
from ctpatch.core.rng import keyed_rng
from ctpatch.store.atomic import clean_stale, temp_name
from ctpatch.store.codecs import _describe, _pipeline, create_patch_dataset
from ctpatch.store.h5 import h5py


@dataclass(frozen=True)
class Specs:
    """What a job writes.

    ``datasets``: patch dataset name -> (patch shape, dtype), in creation order; ``tables``:
    provenance table -> numpy dtype; ``groups``: table -> the patch datasets aligned with it (row i
    of the table describes row i of each); a table without datasets (LDCT's per-pair summary) goes
    whole, unshuffled, to every part.  ``unshuffled``: tables kept in canonical order even when
    shuffling.  ``attrs``: extra attributes per dataset.  ``one_file``: the datasets cannot be split
    into parts.  ``finish``: called with each open file after its provenance tables are written and
    before its attributes (e.g. a dataset derived from the provenance).
    """

    datasets: dict
    tables: dict
    groups: dict
    compression: str
    unshuffled: tuple = ()
    attrs: dict = field(default_factory=dict)
    one_file: bool = False
    finish: Callable[[h5py.File], None] | None = None

    def table_of(self, name: str) -> str:
        for table, names in self.groups.items():
            if name in names:
                return table
        raise KeyError(f"dataset {name!r} belongs to no provenance table")


@dataclass
class Block:
    """One block of a job's output: ``chunks[name]`` = list of (tag, filter mask, bytes), ``rows[table]``
    = provenance rows; a tag is the number of rows added before the chunk (its place in the output)."""

    chunks: dict
    rows: dict
    index: int = -1


class ChunkEncoder:
    """Compress patches into stored chunk bytes, with the filter pipeline the final datasets get."""

    _RESET_BYTES = 256 << 20  # recreate the in-memory file beyond this size (rewritten chunks leave free space)

    def __init__(self, specs: Specs, rows: int):
        self.specs, self.rows = specs, max(1, int(rows))
        self._open()

    def _open(self) -> None:
        self.h5 = h5py.File(f"ctpatch-encoder-{id(self)}", "w", driver="core", backing_store=False)
        self.ds = {
            name: create_patch_dataset(self.h5, name, shape, dtype, self.specs.compression, rows=self.rows)
            for name, (shape, dtype) in self.specs.datasets.items()
        }

    def pipeline(self, name: str) -> tuple:
        return _pipeline(self.ds[name])

    def describe(self, name: str) -> str:
        return _describe(self.ds[name])

    def encode(self, name: str, stack: np.ndarray) -> list[tuple[int, bytes]]:
        """(filter mask, stored bytes) of each patch of ``stack`` ((k, *patch shape), the dataset dtype)."""
        k = len(stack)
        if k > self.rows:
            raise ValueError(f"Expected at most {self.rows} patches per call, got {k}")
        dsid = self.ds[name].id
        tail = (0,) * (stack.ndim - 1)
        fspace = dsid.get_space()
        fspace.select_hyperslab((0, *tail), stack.shape)
        dsid.write(h5py.h5s.create_simple(stack.shape), fspace, np.ascontiguousarray(stack))
        out = [dsid.read_direct_chunk((i, *tail)) for i in range(k)]
        if self.h5.id.get_filesize() > self._RESET_BYTES:
            self.close()
            self._open()
        return out

    def close(self) -> None:
        self.h5.close()


class BlockSink:
    """A :class:`ctpatch.store.sink.PatchSink` that compresses ``buffer`` patches at a time into a :class:`Block`."""

    def __init__(self, encoder: ChunkEncoder, buffer: int = 8):
        specs = encoder.specs
        self.encoder = encoder
        self.buffer = min(int(buffer), encoder.rows)
        self._stage = {n: np.empty((self.buffer, *shape), dtype=dtype) for n, (shape, dtype) in specs.datasets.items()}
        self._tags: dict[str, list[int]] = {n: [] for n in specs.datasets}
        self._chunks: dict[str, list] = {n: [] for n in specs.datasets}
        self._rows: dict[str, list] = {t: [] for t in specs.tables}
        self._items = 0

    def slot(self, name: str) -> np.ndarray:
        return self._stage[name][len(self._tags[name])]

    def commit(self, name: str) -> None:
        self._tags[name].append(self._items)
        if len(self._tags[name]) >= self.buffer:
            self._flush(name)

    def add(self, name: str, patch) -> None:
        self.slot(name)[...] = patch
        self.commit(name)

    def add_row(self, table: str, row) -> None:
        self._rows[table].append(row)
        self._items += 1

    def _flush(self, name: str) -> None:
        tags = self._tags[name]
        if tags:
            encoded = self.encoder.encode(name, self._stage[name][: len(tags)])
            self._chunks[name].extend((t, m, b) for t, (m, b) in zip(tags, encoded))
            tags.clear()

    def take(self, index: int = -1) -> Block:
        """The block so far (everything flushed); the sink starts a new one."""
        for name in self._tags:
            self._flush(name)
        block = Block(self._chunks, self._rows, index)
        self._chunks = {n: [] for n in self._chunks}
        self._rows = {t: [] for t in self._rows}
        self._items = 0
        return block


def positions(n: int, parts: int, shuffle: bool, seed: int, mode: str, table: str, names) -> tuple[np.ndarray, list]:
    """Part and row of each canonical row ``0..n-1`` of ``table``, and each part's canonical rows in file order.

    The order is ``keyed_rng(seed, "shuffle", mode, table, *names).permutation(n)`` (``names``: the
    output file names) or ``0..n-1`` unshuffled, split into ``parts`` consecutive pieces.

    >>> where, order = positions(5, 2, False, 0, "ldct", "patch", ["a.h5", "b.h5"])
    >>> where.tolist(), [o.tolist() for o in order]
    ([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]], [[0, 1, 2], [3, 4]])
    """
    order = keyed_rng(seed, "shuffle", mode, table, *names).permutation(n) if shuffle and n > 1 else np.arange(n)
    split = np.array_split(order, parts)
    where = np.zeros((n, 2), dtype=np.int64)
    for p, rows in enumerate(split):
        where[rows, 0] = p
        where[rows, 1] = np.arange(len(rows))
    return where, split


#: provenance rows per chunk: tables are read whole or in runs, and each chunk carries its checksum
TABLE_CHUNK = 4096


def write_table(f: h5py.File, name: str, rows: np.ndarray) -> h5py.Dataset:
    """A provenance table, chunked with HDF5's Fletcher32 checksum like the patches: a changed byte fails
    every read of its chunk (h5py, any HDF5 tool, ctpatch's verification) instead of giving a wrong value."""
    return f.create_dataset(
        name, data=rows, chunks=(max(1, min(len(rows), TABLE_CHUNK)),), maxshape=(None,), fletcher32=True
    )


def write_failed(exc: OSError, path: Path) -> OSError:
    """One line for a failed write (HDF5's message spans lines and names the temp file): the output, the
    system's reason and, for a full disk, what is free."""
    code = exc.errno if isinstance(exc.errno, int) else None
    reason = os.strerror(code) if code else str(exc).splitlines()[0]
    line = f"{path}: writing failed: {reason}"
    if code in (errnos.ENOSPC, errnos.EFBIG, errnos.EDQUOT):
        try:
            line += f" ({shutil.disk_usage(path.parent).free / 1e9:.2f} GB free in {path.parent})"
        except OSError:
            pass
    return OSError(code, line) if code else OSError(line)


class PatchFileWriter:
    """Writes the final file(s) of one group from :class:`Block` s received in canonical order.

    ``totals``: rows per table when known (then datasets are created at their final size and may
    be shuffled or split); ``None``: appended in canonical order (one part, no shuffle).  ``attrs``:
    file attributes (each part also gets ``ctpatch_version``, ``part``, ``parts``, ``shuffled``).
    """

    def __init__(
        self,
        outputs,
        specs: Specs,
        mode: str,
        seed: int,
        shuffle: bool,
        totals: dict | None,
        attrs: dict | None = None,
        encoder: ChunkEncoder | None = None,
    ):
        self.outputs = [Path(o) for o in outputs]
        if len(set(o.resolve() for o in self.outputs)) != len(self.outputs):
            raise ValueError(f"Expected distinct output files, got {[str(o) for o in self.outputs]}")
        if totals is None and (shuffle or len(self.outputs) > 1):
            raise ValueError("shuffling or splitting needs the row counts before writing")
        if specs.one_file and len(self.outputs) != 1:
            raise ValueError(f"these datasets are written to one file, got {len(self.outputs)}")
        self.specs, self.mode, self.seed, self.shuffle, self.totals = specs, mode, int(seed), bool(shuffle), totals
        self.attrs = dict(attrs or {})
        names = [o.name for o in self.outputs]
        self.where, self.order = {}, {}
        for table in specs.tables:
            if totals is not None:
                mixed = self.shuffle and bool(specs.groups.get(table)) and table not in specs.unshuffled
                self.where[table], self.order[table] = positions(
                    totals[table], len(self.outputs), mixed, self.seed, mode, table, names
                )
        self.count = {name: 0 for name in specs.datasets}
        self.rows: dict[str, list] = {t: [] for t in specs.tables}
        self._ids: dict = {}
        self.files: list[h5py.File] = []
        self.tmps = []
        for out in self.outputs:
            out.parent.mkdir(parents=True, exist_ok=True)
            for stale in clean_stale(out):
                print(f"removed {stale}, left by a killed run", flush=True)
        try:
            for p, out in enumerate(self.outputs):
                self.tmps.append(temp_name(out))
                f = h5py.File(self.tmps[-1], "w")
                self.files.append(f)
                for name, (shape, dtype) in specs.datasets.items():
                    table = specs.table_of(name)
                    rows = len(self.order[table][p]) if totals is not None else 0
                    ds = create_patch_dataset(f, name, shape, dtype, specs.compression, rows=rows)
                    for k, v in specs.attrs.get(name, {}).items():
                        ds.attrs[k] = v
                    if encoder is not None and _pipeline(ds) != encoder.pipeline(name):
                        raise ValueError(
                            f"Expected the encoder's filter pipeline in the output, got "
                            f"{_describe(ds)} and {encoder.describe(name)}"
                        )
        except BaseException:
            self.abort()
            raise

    def write(self, block: Block) -> None:
        """Place the block's chunks at their final rows (in the block's output order) and keep its rows."""
        order = {n: i for i, n in enumerate(self.specs.datasets)}
        records = sorted(
            (
                (tag, order[name], j, name, mask, data)
                for name, chunks in block.chunks.items()
                for j, (tag, mask, data) in enumerate(chunks)
            ),
            key=lambda r: r[:3],
        )
        if self.totals is None:  # appending: grow each dataset by the block's patches
            for name, chunks in block.chunks.items():
                if chunks:
                    ds = self.files[0][name]
                    ds.resize(self.count[name] + len(chunks), axis=0)
        try:
            self._write(records)
        except OSError as exc:
            raise write_failed(exc, self.outputs[0]) from None
        for table, rows in block.rows.items():
            self.rows[table].extend(rows)

    def _write(self, records) -> None:
        # the datasets' low-level ids, looked up once: h5py's File[name] is slow, once per chunk otherwise
        ids = self._ids
        for _, _, _, name, mask, data in records:
            c = self.count[name]
            table = self.specs.table_of(name)
            if self.totals is None:
                p, r = 0, c
            else:
                if c >= len(self.where[table]):
                    raise ValueError(
                        f"{name}: more patches than the {len(self.where[table])} counted for table {table!r}"
                    )
                p, r = self.where[table][c]
            key = (p, name)
            if key not in ids:
                ds = self.files[p][name]
                ids[key] = (ds.id, (0,) * (ds.ndim - 1))
            dsid, tail = ids[key]
            dsid.write_direct_chunk((int(r), *tail), data, mask)
            self.count[name] = c + 1

    def close(self) -> dict:
        """Check the counts, write provenance and attributes, rename the files; return rows per table."""
        try:
            counts = {t: len(r) for t, r in self.rows.items()}
            for name in self.specs.datasets:
                table = self.specs.table_of(name)
                if self.count[name] != counts[table]:
                    raise ValueError(f"{name}: {self.count[name]} patches but {counts[table]} rows in table {table!r}")
            if self.totals is not None and any(counts[t] != self.totals[t] for t in counts):
                raise ValueError(f"expected {self.totals} rows per table (counted before writing), got {counts}")
            tables = {
                t: np.array(rows, dtype=self.specs.tables[t]) if rows else np.zeros(0, self.specs.tables[t])
                for t, rows in self.rows.items()
            }
            for p, f in enumerate(self.files):
                for table, prov in tables.items():
                    if self.specs.groups.get(table) and self.totals is not None:
                        prov = prov[self.order[table][p]]  # a summary (no datasets) goes whole to every part
                    write_table(f, f"provenance/{table}", prov)
                if self.specs.finish is not None:
                    self.specs.finish(f)
                for k, v in self.attrs.items():
                    f.attrs[k] = v
                f.attrs["ctpatch_version"] = ctpatch.__version__
                f.attrs["part"] = p
                f.attrs["parts"] = len(self.files)
                f.attrs["shuffled"] = self.shuffle
            for f in self.files:
                f.close()
            for tmp, out in zip(self.tmps, self.outputs):
                tmp.replace(out)
        except OSError as exc:
            self.abort()
            raise write_failed(exc, self.outputs[0]) from None
        except BaseException:
            self.abort()
            raise
        return counts

    def abort(self) -> None:
        """Close and remove the temporary files (best effort: a full disk may fail the close too)."""
        for f in self.files:
            try:
                f.close()
            except Exception:  # noqa: BLE001 (the first error is the one reported)
                pass
        for tmp in self.tmps:
            tmp.unlink(missing_ok=True)
        self.files, self.tmps = [], []


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
    patch per chunk with the same filters (checked once per call: copy many rows per call); nothing is
    decompressed.  ``dst`` must already be large enough.
    """
    _check_chunk_copy(src, dst)
    tail = (0,) * (src.ndim - 1)
    if dst_rows is None:
        dst_rows = range(int(dst_start), int(dst_start) + len(src_rows))
    for row, dst_row in zip(src_rows, dst_rows):
        mask, data = src.id.read_direct_chunk((int(row), *tail))
        dst.id.write_direct_chunk((int(dst_row), *tail), data, mask)
