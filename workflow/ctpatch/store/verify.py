"""What the verification of every patch file shares: the stored chunks checked against their
checksums, blocks read with the failing row named, the seeded sample of rows, and the report.

The checksums say the bytes are the ones written; each mode's verification (:mod:`ctpatch.luna16.verify`,
:mod:`ctpatch.ldct.verify`) regenerates a sample from the inputs to say that what was written is
what the code makes of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ctpatch.core.rng import keyed_rng
from ctpatch.store.atomic import write_json
from ctpatch.store.checksums import SMALL_CHUNK, chunk_checksum_ok, fletcher32_ok_many, has_fletcher32
from ctpatch.store.h5 import h5py
from ctpatch.store.reading import file_codecs, reader_needs

#: patches per file and kind regenerated and compared voxel for voxel
SAMPLE = 4


def check_chunks(ds: h5py.Dataset, limit: int = 5, threads: int = 2) -> list[str]:
    """Failures of the stored chunks of a one-patch-per-chunk dataset: missing, filters skipped, or not
    matching their Fletcher32 checksum.  The stored bytes are checked where they lie (the file memory-mapped,
    chunk places from ``chunk_iter``): nothing is decompressed.  Chunks up to ``store.SMALL_CHUNK`` bytes are
    summed many at a time (:func:`ctpatch.store.checksums.fletcher32_ok_many`); ``threads`` threads share the larger
    ones (the sums release the GIL)."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    where = f"{ds.file.filename}:{ds.name}"
    if not has_fletcher32(ds):
        return [f"{where}: no Fletcher32 checksum filter (every patch dataset ctpatch writes has one)"]
    n = ds.shape[0]
    places = np.full((n, 3), -1, dtype=np.int64)  # row -> filter mask, byte offset, size
    found: list = []
    ds.id.chunk_iter(lambda info: found.append((info.chunk_offset[0], info.filter_mask, info.byte_offset, info.size)))
    if found:
        found = np.array(found, dtype=np.int64)
        found = found[(found[:, 0] >= 0) & (found[:, 0] < n)]
        places[found[:, 0]] = found[:, 1:]
    bad = [f"row {r}: chunk missing" for r in np.flatnonzero(places[:, 2] < 0)[:limit]]
    bad += [f"row {r}: filters skipped (mask {places[r, 0]})" for r in np.flatnonzero(places[:, 0] > 0)[:limit]]
    rows = np.flatnonzero((places[:, 2] >= 4) & (places[:, 0] == 0))
    wrong = []
    if len(rows):
        with open(ds.file.filename, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            small = rows[places[rows, 2] <= SMALL_CHUNK]  # many at a time (LDCT's patches are ~5 KB)
            rows = rows[places[rows, 2] > SMALL_CHUNK]
            if len(small):
                ok = fletcher32_ok_many(np.frombuffer(mm, np.uint8), places[small, 1], places[small, 2])
                wrong = [int(r) for r in small[~ok]]
            view = memoryview(mm)
            try:

                def check(part):
                    return [
                        int(r) for r in part if not chunk_checksum_ok(view[places[r, 1] : places[r, 1] + places[r, 2]])
                    ]

                parts = np.array_split(rows, max(1, min(int(threads), len(rows)) * 4))
                with ThreadPoolExecutor(max(1, int(threads))) as pool:
                    wrong = sorted(wrong + [r for part in pool.map(check, parts) for r in part if len(part)])
            finally:
                view.release()
        bad += [f"row {r}: stored bytes do not match their Fletcher32 checksum" for r in wrong]
    if not bad:
        return []
    return [f"{where}: {len(bad)} corrupt chunk(s): " + "; ".join(bad[:limit]) + (" ..." if len(bad) > limit else "")]


def read_blocks(ds, block: int = 64):
    """Yield (start, patches) blocks of ``ds``; a failed read (e.g. a checksum) raises ``OSError`` naming the row."""
    for i in range(0, ds.shape[0], block):
        try:
            yield i, ds[i : i + block]
        except OSError:
            for r in range(i, min(i + block, ds.shape[0])):
                try:
                    ds[r]
                except OSError as exc:
                    raise OSError(f"{ds.file.filename}:{ds.name} row {r}: {exc}") from None
            raise


def sample_rows(n: int, k: int, seed: int, *keys) -> np.ndarray:
    """``min(n, k)`` distinct rows of ``n``, sorted, drawn by ``keyed_rng(seed, "verify", *keys)``."""
    return np.sort(keyed_rng(seed, "verify", *keys).choice(n, size=min(n, int(k)), replace=False))


def finish_report(report: dict, patches, report_out) -> int:
    """Add what a reader outside ctpatch needs (``codecs``, ``reader``) to ``report``, write it as JSON
    to ``report_out``, print the outcome; return the exit status (1 when not ``ok``)."""
    codecs = sorted({c for p in patches if Path(p).is_file() for c in file_codecs(p)})
    report["codecs"] = codecs
    report["reader"] = reader_needs(codecs)
    write_json(report_out, report)
    if not report["ok"]:
        first, *rest = report["failures"] or ["(no failure recorded)"]
        print(f"error: verification failed: {first}" + "".join(f"\n  {f}" for f in rest), file=sys.stderr)
        return 1
    print(f"verified {', '.join(map(str, patches))}: ok")
    print(f"reading these files: {report['reader']}")
    return 0


def read_table(f: h5py.File, name: str):
    """A provenance table read whole; a chunk whose checksum fails (or any failed read) raises ``OSError``
    naming the file and the table (HDF5's own message names neither)."""
    try:
        return f[name][...]
    except OSError as exc:
        raise OSError(
            f"{f.filename}:{name}: cannot be read ({exc}): a stored byte changed, its checksum fails"
        ) from None
