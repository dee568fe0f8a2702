"""Pre-flight plan of a run: counts, output sizes, memory and time, from headers and tables only.

Per LUNA16 subset or LDCT patient and in total: scans or slice pairs, nodules, patches by kind,
the output size for the configured dtype and compression and for the alternatives, the disk the
other files take (LUNA16: converted volumes and masks; the patches are written once, so the peak
disk is one copy of them plus those), the peak memory of each kind of job (one MPI rank of the
extraction included) and an estimated time.

Counts come from the same functions the extraction uses (``expected_counts``,
``negatives_per_scan``; ``expected_cut`` and the random_n selection for LDCT), so they are exact
-- except LDCT patches behind an air threshold, which depend on pixels and are estimated from
the sample.  Per scan, only its ``.mhd`` header is read (and its ``.raw`` size checked with one
``stat``); per LDCT slice only the DICOM header.  Demo data (``luna16.root: demo``) is planned
with :func:`ctpatch.luna16.demo.plan_scans`, without voxels.

Sizes and times are measured on a small sample, never guessed:

* LUNA16: the smallest scan with a nodule is read (or synthesized, for the demo); ``--sample``
  patches (half at its nodules' shifts, half negatives as the strategy draws them) are resampled
  by the workflow's own steps (:func:`ctpatch.report.plan.measure.luna_sample`): the scan is converted,
  labelled and cut by the extraction's job, the patches compressed by its chunk encoder and written
  once by its single writer, then compressed with every other dtype and filter; verification is
  timed as it works: the Fletcher32 scan of every stored chunk and every label read, plus a
  regenerated sample (a scan load and a cut per sampled patch, both measured).  Each step is timed;
  time per voxel or per patch is scaled by the planned voxels and patches.
* LDCT: two slice pairs (of different patients) are extracted with the workflow's
  ``extract.extract`` on one rank (counting pass if any, the final part files written once); the
  air-threshold keep rate, compressed sizes, time per pair and the time of verification's
  Fletcher32 scan of every stored chunk (``verify.check_chunks``; the values come from the
  statistics the extraction records) come from them.
* The start-up time and memory of a fresh Python process of each kind of job is measured.

Memory per job is computed from the largest volume or slice with the layout of each step
(e.g. convert: int16 input + float32 resampled, plus double B-spline coefficients of the input
for ``bspline``; an extraction rank: the float32 volume and bool mask of its largest scan, plus the
patch buffers) on top of the measured footprint of a Python process with ctpatch imported.

Usage: ``python -m ctpatch.report.plan --configfile config.yaml [more.yaml ...] [--json out.json]
[--text out.txt] [--workdir DIR] [--cores N] [--sample N | --no-sample]``.  The workflow's rule
passes ``--settings-file`` (scope ``plan``: the validated config with defaults, ``--configfile``
and ``--config``, :mod:`ctpatch.settings`) instead of ``--configfile``.

Modules: :mod:`~ctpatch.report.plan.inputs` (scans from headers, annotations), :mod:`~ctpatch.report.plan.measure`
(the sample measurements), :mod:`~ctpatch.report.plan.estimate` (memory and time from them),
:mod:`~ctpatch.report.plan.luna` and :mod:`~ctpatch.report.plan.ldct` (one plan per mode), :mod:`~ctpatch.report.plan.text`
(the printed table) and :mod:`~ctpatch.report.plan.cli` (the command line).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ctpatch.report.plan.ldct import plan_ldct
from ctpatch.report.plan.luna import plan_luna
from ctpatch.settings.types import Config, build


def make_plan(config: dict, workdir=".", sample: int = 24, cores: int | None = None) -> dict:
    """The plan of ``config`` (validated, defaults filled) as a JSON-ready dict.

    ``sample``: LUNA16 patches to measure (0: none; LDCT measures 2 pairs); ``cores``: for the
    wall-time estimate.
    """
    t = time.perf_counter()
    workdir = Path(workdir)
    if not cores:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = int(cores)
    typed = build(Config, config)
    if typed.mode == "luna16":
        plan = plan_luna(typed, workdir, int(sample), cores)
    else:
        plan = plan_ldct(typed, workdir, 2 if sample else 0, cores)
    plan["seconds"]["plan"] = time.perf_counter() - t
    return plan


__all__ = ["make_plan"]
