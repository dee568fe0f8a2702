"""Reading patch files: ctpatch.readers against the reference's loader; prints medians and ratios.

The reference loaded a patch file in slices of 64 patches with a pool of 32 processes, each
returning its slice to the parent (pickled through a pipe), then concatenated them.  Measured here,
each run reading every image and label of the given kinds of every file, page cache warm:

* ``reference``      -- ``Pool(32).map`` over 64-patch slices, then ``np.concatenate`` (pool start included)
* ``load_all[proc]`` -- ``ctpatch.readers.load_all``: forked workers read whole chunks straight into one shared array
* ``load_all[thr]``  -- the same with threads (h5py serialises on its lock)
* ``sequential``     -- ``load_all(workers=0)``: one process, whole chunks into place
* shuffled reads (training order), per patch: ``PatchDataset[i]`` in one process vs ``iter_batches(shuffle=True)``

Methods are run interleaved (run 1 of each, run 2 of each, ...) so that a busy machine disturbs
them alike.  Usage::

    python benchmarks/reader.py [FILE.h5 ...] [--runs 5] [--workers N] [--ref-procs 32]

Without files, the small LUNA16 demo workflow is run into a temporary folder first (~30 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import h5py
import numpy as np

from ctpatch.readers import KINDS, PatchDataset, default_workers, iter_batches, load_all

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = (
    "demo: {subsets: 2, scans_per_subset: 1, size_xy: 192, slices: [70, 90], nodules_per_scan: [1, 2]}\n"
    "luna16: {resample: {interpolator: linear}}\n"
)


def demo_files(folder: Path) -> list[str]:
    (folder / "config").mkdir(parents=True, exist_ok=True)
    (folder / "config" / "config.yaml").write_text(DEMO_CONFIG)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(folder),
            "--cores",
            "2",
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    return sorted(str(p) for p in (folder / "results" / "luna16" / "patches").glob("*.h5"))


def cpu_seconds() -> float:
    """User + system CPU of this process, its threads and its finished child processes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------- the reference's way
def _ref_slice(args):
    path, name, a = args
    with h5py.File(path, "r") as f:
        return f[name][a : a + 64]


def reference_load(files, kinds, procs: int):
    out = {}
    with Pool(procs) as pool:
        for kind in kinds:
            for name in KINDS[kind][:2]:
                jobs = []
                for path in files:
                    with h5py.File(path, "r") as f:
                        jobs += [(path, name, a) for a in range(0, f[name].shape[0], 64)]
                out[name] = np.concatenate(pool.map(_ref_slice, jobs))
    return out


# ---------------------------------------------------------------- ours
def ours_load(files, kinds, workers: int, backend: str):
    return {kind: load_all(files, kind, workers, backend=backend) for kind in kinds}


def shuffled_single(files, kind, n: int):
    ds = PatchDataset(files, kind)
    order = np.random.default_rng(0).permutation(len(ds))[:n]
    for i in order:
        ds[int(i)]
    ds.close()


def shuffled_batches(files, kind, n: int, workers: int):
    seen = 0
    for b in iter_batches(files, kind, 64, workers, shuffle=True, seed=0, copy=False):
        seen += len(b.index)
        if seen >= n:
            break


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--ref-procs", type=int, default=32)
    ap.add_argument("--kinds", nargs="+", default=None, help="default: every kind of the files' mode")
    args = ap.parse_args(argv)
    if args.runs < 5:
        ap.error("--runs: at least 5 runs for a median")
    tmp = None
    files = args.files
    if not files:
        tmp = tempfile.TemporaryDirectory(prefix="ctpatch-bench-")
        print("no files given: running the demo workflow ...", flush=True)
        files = demo_files(Path(tmp.name))
    first = PatchDataset(files)
    kinds = args.kinds or (["nodule", "non_nodule"] if first.mode == "luna16" else ["patch"])
    sets = {k: PatchDataset(files, k) for k in kinds}
    n_patches = sum(len(d) for d in sets.values())
    nbytes = sum(
        len(d)
        * (
            int(np.prod(d.image_shape)) * d.segments[0].image_dtype.itemsize
            + int(np.prod(d.label_shape)) * d.segments[0].label_dtype.itemsize
        )
        for d in sets.values()
    )
    print(
        f"{len(files)} file(s), kinds {kinds}: {n_patches} patches; {args.workers} workers, reference "
        f"{args.ref_procs} processes; {args.runs} runs each, interleaved",
        flush=True,
    )

    # check once that every method returns the same arrays
    ref = reference_load(files, kinds, args.ref_procs)
    for backend in ("process", "thread"):
        got = ours_load(files, kinds, args.workers, backend)
        for kind in kinds:
            assert np.array_equal(got[kind].images, ref[KINDS[kind][0]]), f"{backend}: {kind} images differ"
            assert np.array_equal(got[kind].labels, ref[KINDS[kind][1]]), f"{backend}: {kind} labels differ"
    del ref, got

    shuffled_n = min(512, len(PatchDataset(files, kinds[-1])))
    load0 = f"{os.getloadavg()[0]:.2f}"
    methods = {
        "reference": lambda: reference_load(files, kinds, args.ref_procs),
        "load_all[proc]": lambda: ours_load(files, kinds, args.workers, "process"),
        "load_all[thr]": lambda: ours_load(files, kinds, args.workers, "thread"),
        "sequential": lambda: ours_load(files, kinds, 0, "process"),
        "shuffled PatchDataset[i]": lambda: shuffled_single(files, kinds[-1], shuffled_n),
        "shuffled iter_batches": lambda: shuffled_batches(files, kinds[-1], shuffled_n, args.workers),
    }
    times: dict[str, list[float]] = {m: [] for m in methods}
    cpus: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.runs):
        for name, fn in methods.items():
            c, t = cpu_seconds(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
            cpus[name].append(cpu_seconds() - c)
    med = {m: statistics.median(v) for m, v in times.items()}
    mb = nbytes / 2**20
    print(f"\nload average before/after: {load0} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"\n{'method':<26} {'median s':>9} {'MiB/s':>8} {'patches/s':>10} {'CPU s':>7}   runs (s)")
    for name, t in med.items():
        count = shuffled_n if name.startswith("shuffled") else n_patches
        size = mb * count / n_patches
        print(
            f"{name:<26} {t:9.3f} {size / t:8.0f} {count / t:10.0f} {statistics.median(cpus[name]):7.2f}   "
            + " ".join(f"{x:.2f}" for x in times[name])
        )
    print(f"\nratio reference / load_all[proc]: {med['reference'] / med['load_all[proc]']:.2f}x")
    print(f"ratio load_all[thr] / load_all[proc]: {med['load_all[thr]'] / med['load_all[proc]']:.2f}x")
    print(f"ratio sequential / load_all[proc]: {med['sequential'] / med['load_all[proc]']:.2f}x")
    print(
        f"ratio shuffled PatchDataset[i] / iter_batches: "
        f"{med['shuffled PatchDataset[i]'] / med['shuffled iter_batches']:.2f}x"
    )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
