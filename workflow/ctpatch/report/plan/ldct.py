"""The LDCT plan: pairs and patches per patient, sizes, memory and times."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ctpatch.io.folders import under
from ctpatch.ldct.discover import ldct_patients
from ctpatch.report.plan.estimate import _round, _totals
from ctpatch.report.plan.inputs import PlanError
from ctpatch.report.plan.measure import COMPRESSIONS, LDCT_DTYPES, _dtype_ok, ldct_sample, measure_startup
from ctpatch.settings.types import Config, LdctPatches, build


def plan_ldct(config: Config, workdir: Path, sample_pairs: int, cores: int) -> dict:
    """The plan of an LDCT config: per patient and in total (see :func:`ctpatch.report.plan.make_plan`)."""
    from ctpatch.io.dicom import pair_slices
    from ctpatch.ldct.job import grid_sizes, multiplier, patch_dtype
    from ctpatch.ldct.pairing import PairingError, select_random_n, slice_files
    from ctpatch.ldct.units import unit_for
    from ctpatch.ldct.verify import expected_cut
    from ctpatch.settings import ldct_patch_settings

    t0 = time.perf_counter()
    inp = config.ldct
    settings = build(LdctPatches, ldct_patch_settings(asdict(config)))  # what the extraction is handed
    root = under(inp.root, workdir)
    patients = ldct_patients(config, workdir)
    warnings: list[str] = []
    groups: dict[str, dict] = {}
    selected_pairs = []
    max_pixels = 0
    for patient in patients:
        pdir = root / patient
        try:
            ins, tgs = slice_files(pdir / inp.input_dir), slice_files(pdir / inp.target_dir)
            pairs, problems = pair_slices(ins, tgs, by=inp.pair_by, on_error=inp.on_error)
        except (PairingError, ValueError) as exc:
            warnings.append(f"patient {patient}: {exc}")
            continue
        warnings += [f"patient {patient}: {m}" for m in problems]
        sel = select_random_n(patient, len(pairs), int(inp.random_n), int(config.seed))
        chosen = [p for p, s in zip(pairs, sel) if s]
        cut = sum(expected_cut(p.input.rows, p.input.cols, settings) for p in chosen)
        max_pixels = max([max_pixels] + [p.input.rows * p.input.cols for p in chosen])
        groups[patient] = {"pairs": len(pairs), "selected_pairs": len(chosen), "patches_cut": int(cut)}
        selected_pairs += [(patient, p) for p in chosen]
    if not groups:
        raise PlanError(f"ldct: no patient with slice pairs under {root}")
    t_headers = time.perf_counter() - t0
    scale, lr_edge, edge, _ = grid_sizes(settings)
    pixels = lr_edge * lr_edge + edge * edge  # input + target pixels of one patch (SR: LR input, HR target)
    out_s = settings.output
    mult = multiplier(settings)

    smp = ldct_sample(settings, selected_pairs, sample_pairs, config.extract.buffer_patches) if sample_pairs else None
    start = measure_startup(("extract_ldct",))
    ext = tab = start["extract_ldct"]  # pair_slices and verify import a subset of it
    keep = 1.0 if not settings.air_threshold.enabled else (smp["keep_rate"] if smp else math.nan)
    width = max(len(p.input.path) for _, p in selected_pairs) if selected_pairs else 1
    prov = patch_dtype(max(len(p) for p in groups), width, unit_for(settings).fields).itemsize

    def per_patch(dtype: str, comp: str) -> float:
        raw = pixels * np.dtype(dtype).itemsize
        if comp == "none":
            return raw + (smp["chunk_overhead_bytes_per_patch"] if smp else 0)
        if smp is None:
            return math.nan
        st = (
            smp["stored_bytes_per_patch"]
            if (dtype, comp) == (out_s.dtype, out_s.compression)
            else smp["alternatives"].get(f"{dtype}/{comp}")
        )
        return math.nan if st is None else st["input"] + st["target"] + smp["chunk_overhead_bytes_per_patch"]

    dtypes = [d for d in LDCT_DTYPES if _dtype_ok(settings, d)]
    for g in groups.values():
        kept = g["patches_cut"] * keep
        g["patches"] = {"patch": _round(kept * mult)}
        g["patches_exact"] = not settings.air_threshold.enabled
        g["raw_bytes"] = _round(g["patches"]["patch"] * pixels * np.dtype(out_s.dtype).itemsize)
        g["file_bytes"] = {
            f"{d}/{c}": _round(g["patches"]["patch"] * (per_patch(d, c) + prov)) for d in dtypes for c in COMPRESSIONS
        }
        g["estimated_file_bytes"] = g["file_bytes"][f"{out_s.dtype}/{out_s.compression}"]
    total = _totals(groups)
    patch_b = edge * edge * 4
    buf = int(config.extract.buffer_patches)
    factors = 1.0 + (sum(f * f for f in settings.ds_augment.factors) if settings.ds_augment.enabled else 0)
    # a rank holds one pair: raw input and target (float32), normalized copies, downscaled copies of
    # both and of the raw target, plus the writer's buffers (2 datasets, one stacked copy)
    pair_b = max_pixels * 4 * (2 + 2 * factors + factors)
    memory = {
        "startup": {k: v["rss_bytes"] for k, v in start.items()},
        "extract_patches_rank": ext["rss_bytes"] + pair_b + buf * 3 * patch_b * mult,
        "pair_bytes": pair_b,
    }
    times = None
    if smp:
        tasks = int(config.extract.tasks)
        n_pairs = total["selected_pairs"]
        # each step is ONE job over all patients (one process; the extraction one MPI world of `tasks` ranks)
        # extraction: the sample ran the workflow's extract (counting pass if any, cut, compress, one write);
        # verify: the Fletcher32 scan of every stored chunk (the values come from the recorded statistics) and
        # the sampled pairs recomputed (at most SAMPLE_PAIR_SHARE of them, at least one per part), patient after patient
        from ctpatch.ldct.verify import SAMPLE_PAIR_SHARE

        verify = tab["seconds"] + sum(
            g["patches"]["patch"] * smp["verify_per_patch"]
            + min(g["selected_pairs"], max(int(out_s.nsplit), math.ceil(SAMPLE_PAIR_SHARE * g["selected_pairs"])))
            * smp["seconds_per_pair"]
            for g in groups.values()
        )
        cpu = {
            "pair_slices": tab["seconds"] + t_headers,
            "extract_patches": ext["seconds"] * tasks + n_pairs * smp["seconds_per_pair"],
            "verify_patches": float(verify),
        }
        wall = {
            "pair_slices": cpu["pair_slices"],
            "extract_patches": cpu["extract_patches"] / max(1, min(tasks, cores)),
            "verify_patches": cpu["verify_patches"],
        }
        times = {
            "cores": cores,
            "tasks": tasks,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "total_wall_seconds": float(sum(wall.values())),
            "job_start_seconds": {k: v["seconds"] for k, v in start.items()},
        }
    return {
        "mode": "ldct",
        "root": str(root),
        "groups": groups,
        "total": total,
        "settings": {
            "patch": asdict(settings.patch),
            "edge": edge,
            "input_edge": lr_edge,
            "scale": scale,
            "multiplier": mult,
            "output": asdict(out_s),
            "air_threshold": asdict(settings.air_threshold),
            "random_n": inp.random_n,
        },
        "sample": smp,
        "memory": memory,
        "time": times,
        "intermediate_bytes": {},
        "peak_disk_bytes": total["estimated_file_bytes"],
        "warnings": warnings,
        "seconds": {"headers": t_headers},
    }
