"""REFERENCE-STYLE BASELINE (not ctpatch): the LDCT flow with the reference program's data handling.

Written here from SPEC §2 for the benchmark only.  Run under MPI:
``mpiexec -n N python benchmarks/reference_baseline_ldct.py --out X.h5 --pairs T1.tsv T2.tsv ...``

What makes it "reference-style" is the data flow, not the numerics (which are ctpatch's own
functions, so both sides do the same arithmetic per patch):

* pairs split as contiguous blocks, the last ``N mod ranks`` pairs dropped (as the reference did);
* each rank grows its input and target arrays with ``np.append`` once per slice pair;
* every rank's arrays are gathered into rank 0's memory (``comm.gather``), which concatenates
  them and writes one HDF5 file at the end (lzf, h5py's automatic chunks; the reference program itself
  wrote uncompressed, contiguous datasets: README, "Differences from the reference programs").

Prints one JSON line from rank 0: counts, seconds and every rank's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import h5py
import numpy as np
import pandas as pd
from mpi4py import MPI

from ctpatch.core.augment import dose_blend, downscale_copies, draw_blend_factor, passes_air_threshold, rot_flip
from ctpatch.core.grid import cut_patch, grid_corners
from ctpatch.io.dicom import read_pixels

EDGE, PADDING = 55, 8  # p55


def pair_patches(ld, fd, rng):
    ins, tgs = [], []
    for (_, a_img), (_, b_img) in zip(downscale_copies(ld, [0.8, 0.6]), downscale_copies(fd, [0.8, 0.6])):
        fa, fb = a_img.min(), b_img.min()
        for r, c in grid_corners(b_img.shape, EDGE, PADDING):
            b = cut_patch(b_img, (int(r), int(c)), EDGE, fb)
            if not passes_air_threshold(b, 200.0, 0.10, 100.0):
                continue
            a = cut_patch(a_img, (int(r), int(c)), EDGE, fa)
            variants = [(a, b)] + [(x, y) for x, y, _ in rot_flip(a, b, rng)]
            f = draw_blend_factor(rng, 0.5, 1.2)
            variants += [dose_blend(x, y, f) for x, y in variants]
            for x, y in variants:
                ins.append(x[None].astype(np.float16))
                tgs.append(y[None].astype(np.float16))
    return np.array(ins), np.array(tgs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", nargs="+", required=True)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    t0 = time.perf_counter()
    table = pd.concat([pd.read_csv(p, sep="\t") for p in a.pairs], ignore_index=True)
    table = table[table["selected"].astype(bool)] if "selected" in table else table
    per_rank = len(table) // size  # the reference dropped len % size pairs
    mine = table.iloc[rank * per_rank : (rank + 1) * per_rank]
    rng = np.random.default_rng(rank)
    inputs = np.empty((0, 1, EDGE, EDGE), np.float16)
    targets = np.empty((0, 1, EDGE, EDGE), np.float16)
    for row in mine.itertuples():
        ins, tgs = pair_patches(read_pixels(row.input_path), read_pixels(row.target_path), rng)
        if len(ins):
            inputs = np.append(inputs, ins, axis=0)
            targets = np.append(targets, tgs, axis=0)
    all_in = comm.gather(inputs, root=0)
    all_tg = comm.gather(targets, root=0)
    del inputs, targets
    if rank == 0:
        x, y = np.concatenate(all_in), np.concatenate(all_tg)
        del all_in, all_tg
        with h5py.File(a.out, "w") as f:
            f.create_dataset("input", data=x, compression="lzf")
            f.create_dataset("target", data=y, compression="lzf")
        n = len(x)
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, root=0)
    if rank == 0:
        print(
            json.dumps(
                {
                    "pairs": per_rank * size,
                    "dropped": len(table) - per_rank * size,
                    "patches": n,
                    "seconds": time.perf_counter() - t0,
                    "max_rss_ranks": rss,
                }
            )
        )


if __name__ == "__main__":
    main()
