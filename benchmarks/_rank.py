"""One MPI rank of ``python -m ctpatch.<mode>.extract``, timed by stage, reporting its own peak RSS.

Run as ``mpiexec -n N python benchmarks/_rank.py --stats-dir D -- --mode MODE <ctpatch.MODE.extract arguments>``.
The extraction runs unchanged; the functions of ``ctpatch.luna16.job`` (and of its layouts) that load, cut,
label and write are wrapped with ``time.perf_counter`` accumulators (about 1 µs per call, a few ms per scan).
At the end each rank writes ``D/rankNNNN.json``: stage seconds, patches, and
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` — the peak resident set of that rank's process
(anonymous memory plus the file pages it mapped; the page cache it only read or wrote is not in it).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _timed(owner, name, bucket, acc):
    fn = getattr(owner, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[bucket] = acc.get(bucket, 0.0) + time.perf_counter() - t

    setattr(owner, name, wrapper)


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    stats_dir = Path(argv[argv.index("--stats-dir") + 1])
    rest = argv[split + 1 :]
    from ctpatch.luna16 import job as extract_luna
    from ctpatch.luna16.layouts import base as layout_base
    from ctpatch.luna16.layouts import crops as layout_crops
    from ctpatch.store import writer as patchfile

    acc: dict[str, float] = {}
    _timed(extract_luna, "load_xyz", "load", acc)  # read the converted volume and mask
    _timed(layout_base, "cut_image_xyz", "cut", acc)  # image patches (stored as the layout says)
    _timed(layout_crops, "cut_image_xyz", "cut", acc)  # crops layout: the nodules' crops
    _timed(extract_luna, "crop_mask_xyz", "label", acc)  # label crops ...
    _timed(extract_luna, "label_patch", "label", acc)  # ... pooled one-hot
    _timed(patchfile.ChunkEncoder, "encode", "compress", acc)  # HDF5 filters (codec + Fletcher32), in memory
    _timed(patchfile.PatchFileWriter, "write", "write", acc)  # rank 0: chunks to their final rows
    _timed(patchfile.PatchFileWriter, "close", "write", acc)  # rank 0: provenance, attributes, rename
    # (LDCT mode: only "compress"/"write" are split out; the rest is reading, augmenting and cutting)
    mode = rest[rest.index("--mode") + 1] if "--mode" in rest else "luna16"
    if "--mode" in rest:  # ours: the extraction's entry point is per mode
        i = rest.index("--mode")
        rest = rest[:i] + rest[i + 2 :]
    if mode == "ldct":
        from ctpatch.ldct import extract as entry
        from ctpatch.ldct import job as mod

        counts = {"pairs": 0, "patches": 0, "cut": 0, "kept": 0}

        def tally(c):
            counts["pairs"] += 1
            counts["patches"] += c["written"]
            counts["cut"] += c["cut"]
            counts["kept"] += c["kept"]
    else:
        from ctpatch.luna16 import extract as entry

        mod = extract_luna
        counts = {"nodule_patches": 0, "negatives": 0, "scans": 0}

        def tally(c):
            counts["nodule_patches"] += c["nodule_patches"]
            counts["negatives"] += c["negatives"]
            counts["scans"] += "nodules" in c  # a whole scan

    run_unit = mod.Job.run

    def counted(self, unit, w, start=0, stop=None):
        c = run_unit(self, unit, w, start, stop)
        tally(c)
        return c

    mod.Job.run = counted
    from mpi4py import MPI

    t0 = time.perf_counter()
    code = 0
    try:
        code = entry.main(rest) or 0
    finally:
        wall = time.perf_counter() - t0
        rank = MPI.COMM_WORLD.Get_rank()
        stats = {
            "rank": rank,
            "seconds": wall,
            "stages": acc,
            **counts,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        stats_dir.mkdir(parents=True, exist_ok=True)
        (stats_dir / f"rank{rank:04d}.json").write_text(json.dumps(stats))
    sys.exit(code)


if __name__ == "__main__":
    main()
