"""The LUNA16 demo data sets the tests generate: one definition per size, named by what it is for.

Each is the ``demo`` section of a config (:func:`ctpatch.luna16.demo.write_dataset` or the workflow's
demo rule); a test that needs a variant writes it as an override of one of these.
"""

from __future__ import annotations

#: fault cases and everything that stops before the patches: two subsets of one tiny scan each
#: (headers, tables and conversions take milliseconds; the scans are smaller than a patch)
TINY_DEMO = {
    "subsets": 2,
    "scans_per_subset": 1,
    "size_xy": 48,
    "slices": [16, 18],
    "nodules_per_scan": [1, 2],
    "candidates_per_scan": 3,
    "edge_nodule_every": 0,
    "spacing_z": [1.0, 1.0],
}
#: the seed the tiny data set is written with
TINY_SEED = 7

#: workflow runs: two subsets of one scan each; the full 512-wide LUNA16 geometry is not needed to test
#: the wiring, but the scans stay larger than a 68³ patch on every axis so that an axis swap would show
SMALL_DEMO = {
    "subsets": 2,
    "scans_per_subset": 1,
    "size_xy": 192,
    "slices": [70, 90],
    "nodules_per_scan": [1, 2],
    "candidates_per_scan": 10,
}

#: the patch files of the reader, explain and plan tests (tests/unit/_patchfiles.py): the small demo
#: with one nodule per scan, which keeps the extraction at ~450 patches of 68³
READER_DEMO = {**SMALL_DEMO, "nodules_per_scan": [1, 1]}

#: the demo generator's own tests: several scans per subset, nodule diameters in a set range
GENERATOR_DEMO = {
    "subsets": 2,
    "scans_per_subset": 2,
    "size_xy": 160,
    "slices": [40, 50],
    "diameter_mm": [5.0, 10.0],
    "candidates_per_scan": 5,
}

#: the extraction's tests: one scan with two nodules, one of them at the volume's edge
EXTRACT_DEMO = {
    "subsets": 1,
    "scans_per_subset": 1,
    "size_xy": 128,
    "slices": [60, 70],
    "nodules_per_scan": [2, 2],
    "edge_nodule_every": 1,
    "candidates_per_scan": 10,
    "diameter_mm": [5.0, 12.0],
}

#: the resampling-truth tests (plans only, no voxels): two scans of a realistic in-plane size
RESAMPLE_DEMO = {"subsets": 1, "scans_per_subset": 2, "size_xy": 256, "slices": [60, 70]}

#: the plan's memory estimate against a measured conversion: one scan large enough for its arrays to
#: dominate the process's memory
MEMORY_DEMO = {"subsets": 1, "scans_per_subset": 1, "size_xy": 384, "slices": [120, 120], "nodules_per_scan": [1, 1]}
