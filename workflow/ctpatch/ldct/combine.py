"""The LDCT combined file: every patient's patches in one file (or ``nsplit`` files), without a second write.

The reference program wrote one file for all patients (split into ``nsplit`` files over the
whole set, shuffled across patients when asked); ctpatch writes one file per patient.  This
step makes the reference's form from the per-patient files as **HDF5 virtual datasets**: the
datasets ``input`` and ``target`` of a combined part are maps onto rows of the per-patient
files (source paths relative to the combined file, so the results folder can move as a
whole), and no patch is written twice.  The provenance tables, a few MB, are real datasets:

* ``provenance/patch``: the source rows' provenance, in the part's order;
* ``provenance/source``: per row, ``source`` (index into the file attribute ``sources``) and
  ``row`` (row in that source file);
* ``provenance/pair``: every source's pair table, concatenated (pair_index counts per patient).

Order: the sources in the given (patient) order, each in its own file's order; with
``shuffle``, a permutation of all rows keyed by (seed, "combine", output names), so patients
are mixed.  Then split into ``len(outputs)`` parts (``numpy.array_split``).

Reading speed (``python benchmarks/combined.py``, figures in ``benchmarks/README.md``): in source
order a part maps one run of consecutive rows per source and reads whole or by slices about as fast
as a plain file; shuffled across patients every row is its own mapping, which HDF5 resolves on every
read, several times slower.  For that case ``how="copy"``.

Plain h5py reads virtual datasets (HDF5 >= 1.10); the per-patient files must stay beside.
``how="copy"`` (setting ``output.combined: copy``) writes real datasets instead, copying the
per-patient chunks as compressed bytes (one more write of the compressed data, no recompression):
for shuffled combined files read by slices.

Usage: ``python -m ctpatch.ldct.combine --sources A.h5 B.h5 ... --out all.h5 [all.part1.h5 ...]
--seed 0 --shuffle yes|no --report-out R.json``
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

import ctpatch
from ctpatch.core.rng import keyed_rng
from ctpatch.store.atomic import atomic_path, write_json
from ctpatch.store.codecs import codec_of, create_patch_dataset
from ctpatch.store.h5 import h5py
from ctpatch.store.writer import copy_chunks, write_table

DATASETS = ("input", "target")
#: how the combined parts hold the patches: maps onto the per-patient files, or copies of their chunks
HOW = ("virtual", "copy")
SOURCE_DTYPE = np.dtype([("source", "<i4"), ("row", "<i8")])
#: rows compared byte for byte between the combined parts and their sources, per part
CHECK_ROWS = 64


class CombineError(ValueError):
    """Per-patient files that cannot be combined; the message names the file."""


def combined_order(counts: list[int], n_parts: int, seed: int, shuffle: bool, names) -> list[np.ndarray]:
    """Per part, the (source, row) pairs of its rows, as an int64 array of shape (n, 2).

    Examples
    --------
    >>> [p.tolist() for p in combined_order([2, 1], 2, 0, False, ["a.h5"])]
    [[[0, 0], [0, 1]], [[1, 0]]]
    """
    total = int(sum(counts))
    pairs = (
        np.stack(
            [
                np.repeat(np.arange(len(counts)), counts),
                np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, np.int64),
            ],
            axis=1,
        ).astype(np.int64)
        if total
        else np.zeros((0, 2), np.int64)
    )
    if shuffle and total > 1:
        pairs = pairs[keyed_rng(seed, "combine", *names).permutation(total)]
    return [pairs[idx] for idx in np.array_split(np.arange(total), n_parts)]


def runs(pairs: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Maximal runs of consecutive rows of one source: (part start, source, source start, length).

    >>> runs(np.array([[0, 0], [0, 1], [1, 5], [0, 2]]))
    [(0, 0, 0, 2), (2, 1, 5, 1), (3, 0, 2, 1)]
    """
    if not len(pairs):
        return []
    brk = np.flatnonzero((pairs[1:, 0] != pairs[:-1, 0]) | (pairs[1:, 1] != pairs[:-1, 1] + 1)) + 1
    starts = np.r_[0, brk]
    ends = np.r_[brk, len(pairs)]
    return [(int(a), int(pairs[a, 0]), int(pairs[a, 1]), int(b - a)) for a, b in zip(starts, ends)]


def _check_sources(srcs, paths) -> None:
    ref = srcs[0]
    for path, f in zip(paths, srcs):
        for name in (*DATASETS, "provenance/patch", "provenance/pair"):
            if name not in f:
                raise CombineError(f"{path}: dataset {name} missing: not an LDCT patch file")
        for name in DATASETS:
            if (f[name].shape[1:], f[name].dtype) != (ref[name].shape[1:], ref[name].dtype):
                raise CombineError(
                    f"{path}: {name} patches {f[name].shape[1:]} {f[name].dtype} differ from "
                    f"{paths[0]}'s {ref[name].shape[1:]} {ref[name].dtype}: one run's files only"
                )
        if f["provenance/patch"].dtype != ref["provenance/patch"].dtype:
            raise CombineError(f"{path}: provenance table differs from {paths[0]}'s (another run's settings?)")
        if f.attrs.get("settings") != ref.attrs.get("settings"):
            raise CombineError(f"{path}: made with other settings than {paths[0]}")
        if f["input"].shape[0] != f["provenance/patch"].shape[0]:
            raise CombineError(
                f"{path}: {f['input'].shape[0]} patches but {f['provenance/patch'].shape[0]} provenance rows"
            )


def _fill(dtype) -> float | int:
    """The fill value of a virtual dataset: what a missing source reads as."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.floating):
        return np.nan
    info = np.iinfo(dt)
    return int(info.min) if info.min < 0 else int(info.max)


def combine(sources, outputs, seed: int, shuffle: bool, how: str) -> dict:
    """Write the combined part files ``outputs`` over the per-patient files ``sources``; return counts.

    ``how="virtual"``: ``input``/``target`` are virtual datasets (no patch written twice);
    ``how="copy"``: real datasets, the per-patient chunks copied as compressed bytes (one more
    write of the compressed data; reads as fast as any plain file, in any order).
    """
    if how not in HOW:
        raise CombineError(f"expected how in {HOW}, got {how!r}")
    sources = [Path(s) for s in sources]
    outputs = [Path(o) for o in outputs]
    if not sources:
        raise CombineError("expected at least one per-patient patch file, got none")
    for s in sources:
        if not s.is_file():
            raise CombineError(f"{s}: per-patient patch file not found")
    with ExitStack() as stack:
        srcs = [stack.enter_context(h5py.File(s, "r")) for s in sources]
        _check_sources(srcs, sources)
        counts = [f["input"].shape[0] for f in srcs]
        provs = [f["provenance/patch"][...] for f in srcs]
        pair_table = np.concatenate([f["provenance/pair"][...] for f in srcs])
        offsets = np.cumsum([0, *counts])
        every = np.concatenate(provs)
        parts = combined_order(counts, len(outputs), seed, shuffle, [o.name for o in outputs])
        ref = srcs[0]
        mappings = []
        for out, pairs in zip(outputs, parts):
            rel = [os.path.relpath(s.resolve(), out.resolve().parent) for s in sources]
            with atomic_path(out) as tmp, h5py.File(tmp, "w") as dst:
                spans = runs(pairs)
                mappings.append(len(spans) if how == "virtual" else 0)
                for name in DATASETS if how == "copy" else ():
                    ds = create_patch_dataset(dst, name, ref[name].shape[1:], ref[name].dtype, codec_of(ref[name]))
                    ds.resize(len(pairs), axis=0)
                    for k in np.unique(pairs[:, 0]):  # one call per source
                        at = np.flatnonzero(pairs[:, 0] == k)
                        copy_chunks(srcs[k][name], ds, pairs[at, 1], dst_rows=at)
                    for key, value in ref[name].attrs.items():
                        ds.attrs[key] = value
                for name in DATASETS if how == "virtual" else ():
                    shape = ref[name].shape[1:]
                    layout = h5py.VirtualLayout(shape=(len(pairs), *shape), dtype=ref[name].dtype)
                    vsrc = [h5py.VirtualSource(r, name, shape=(c, *shape)) for r, c in zip(rel, counts)]
                    for start, k, row, n in spans:
                        layout[start : start + n] = vsrc[k][row : row + n]
                    # a missing source must not read as data: NaN (floats, which no patch holds), or the
                    # dtype's extreme value; readers ask for the sources first (store.reading)
                    ds = dst.create_virtual_dataset(name, layout, fillvalue=_fill(ref[name].dtype))
                    for key, value in ref[name].attrs.items():
                        ds.attrs[key] = value
                write_table(dst, "provenance/patch", every[offsets[pairs[:, 0]] + pairs[:, 1]])
                src = np.zeros(len(pairs), SOURCE_DTYPE)
                src["source"], src["row"] = pairs[:, 0], pairs[:, 1]
                write_table(dst, "provenance/source", src)
                write_table(dst, "provenance/pair", pair_table)
                for key, value in ref.attrs.items():
                    if key not in ("group", "part", "parts", "shuffled"):
                        dst.attrs[key] = value
                dst.attrs.update(
                    group="combined",
                    part=outputs.index(out),
                    parts=len(outputs),
                    shuffled=bool(shuffle),
                    combined=how,
                    sources=[str(r) for r in rel],
                    ctpatch_version=ctpatch.__version__,
                )
    return {
        "patches": int(sum(counts)),
        "per_source": dict(zip(map(str, sources), map(int, counts))),
        "per_part": [int(len(p)) for p in parts],
        "mappings_per_part": mappings,
    }


def check_combined(outputs, sources, rows: int = CHECK_ROWS) -> list[str]:
    """Failures (empty: ok): every source row in exactly one part, provenance equal to the source's,
    and up to ``rows`` rows per part (spread over the part) equal byte for byte to their source rows."""
    fails: list[str] = []
    sources = [str(s) for s in sources]
    with ExitStack() as stack:
        srcs = [stack.enter_context(h5py.File(s, "r")) for s in sources]
        seen = [np.zeros(f["input"].shape[0], np.int64) for f in srcs]
        every = np.concatenate([f["provenance/patch"][...] for f in srcs])
        offsets = np.cumsum([0, *(f["provenance/patch"].shape[0] for f in srcs)])
        for out in outputs:
            f = stack.enter_context(h5py.File(out, "r"))
            src = f["provenance/source"][...]
            if np.any((src["source"] < 0) | (src["source"] >= len(srcs))):
                fails.append(f"{out}: provenance/source names a source outside {sources}")
                continue
            sizes = offsets[src["source"] + 1] - offsets[src["source"]]
            if len(src) and np.any((src["row"] < 0) | (src["row"] >= sizes)):
                fails.append(
                    f"{out}: provenance/source names rows past the end of their source (a source file "
                    "was rewritten after combining?)"
                )
                continue
            for k in range(len(srcs)):
                np.add.at(seen[k], src["row"][src["source"] == k], 1)
            prov = f["provenance/patch"][...]
            if prov.tobytes() != every[offsets[src["source"]] + src["row"]].tobytes():
                fails.append(f"{out}: provenance/patch differs from its source rows")
            for i in np.unique(np.linspace(0, len(src) - 1, min(rows, len(src))).astype(int)) if len(src) else []:
                for name in DATASETS:
                    a = f[name][int(i)]
                    b = srcs[int(src["source"][i])][name][int(src["row"][i])]
                    if a.tobytes() != b.tobytes():
                        fails.append(
                            f"{out}: {name} row {int(i)} differs from {sources[int(src['source'][i])]} "
                            f"row {int(src['row'][i])}"
                        )
        for k, s in enumerate(seen):
            if np.any(s != 1):
                fails.append(
                    f"{sources[k]}: {int((s == 0).sum())} rows missing from the combined parts, "
                    f"{int((s > 1).sum())} there more than once"
                )
    return fails


def main(argv=None) -> int:
    """``python -m ctpatch.ldct.combine`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.ldct.combine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", nargs="+", required=True, help="the per-patient patch files, in patient order")
    ap.add_argument("--out", nargs="+", required=True, help="the combined part files (nsplit = their number)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--shuffle", choices=["yes", "no"], default="no")
    ap.add_argument("--how", choices=HOW, required=True, help="output.combined")
    ap.add_argument("--report-out", required=True)
    args = ap.parse_args(argv)
    try:
        counts = combine(args.sources, args.out, args.seed, args.shuffle == "yes", args.how)
    except CombineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    fails = check_combined(args.out, args.sources)
    write_json(
        args.report_out, {**counts, "files": args.out, "sources": args.sources, "ok": not fails, "failures": fails}
    )
    if fails:
        print("combined files failed their check:\n  " + "\n  ".join(fails), file=sys.stderr)
        return 1
    print(
        f"combined {counts['patches']} patches of {len(args.sources)} files into {', '.join(args.out)} "
        f"({counts['mappings_per_part']} virtual mappings per part)"
    )
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
