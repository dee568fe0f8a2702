"""Cost of the plausibility check of one converted scan (ctpatch.luna16.plausible.hu_figures).

Prints the median seconds of 5 runs on a LUNA16-sized int16 volume (512 x 512 x 300, 157 MB) for
the slab-wise figures used by ctpatch and for whole-array comparisons, and their ratio.

Usage: ``PYTHONPATH=workflow python benchmarks/plausibility.py``
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ctpatch.luna16.plausible import hu_figures


def whole_array(hu, hu_min=-1000.0, hu_max=400.0, air_hu=-500.0):
    return (
        np.count_nonzero(hu < air_hu),
        np.count_nonzero(hu <= hu_min),
        np.count_nonzero(hu >= hu_max),
        hu.min(),
        hu.max(),
    )


def median_seconds(fn, *args, runs=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    hu = np.random.default_rng(0).integers(-1100, 500, size=(300, 512, 512), dtype=np.int16)
    slabs = median_seconds(hu_figures, hu, -1000.0, 400.0, -500.0)
    whole = median_seconds(whole_array, hu)
    print(f"volume 512x512x300 int16 ({hu.nbytes / 1e6:.0f} MB), medians of 5")
    print(f"hu_figures (slabs of 8 slices): {slabs:.3f} s")
    print(f"whole-array comparisons:        {whole:.3f} s")
    print(f"ratio whole / slabs:            {whole / slabs:.2f}")


if __name__ == "__main__":
    main()
