"""Estimates from the measurements: memory per job, wall time per step (makespan over the cores), totals."""

from __future__ import annotations

import math

import numpy as np

from ctpatch.report.plan.inputs import Scan


def _round(x: float) -> float:
    return float(x) if math.isnan(x) else int(round(x))


def _totals(groups: dict) -> dict:
    total: dict = {}
    for g in groups.values():
        for k, v in g.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("largest"):
                total[k] = total.get(k, 0) + v
            elif isinstance(v, dict):
                d = total.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
    return total


def luna_memory(config, biggest: Scan, widest: Scan, start: dict, size: int, lab_raw: int) -> dict:
    """Peak bytes of one process of each step (the largest scan decides) on top of its measured start-up RSS."""
    rs = config.luna16.resample
    img_raw = size**3 * np.dtype(config.luna16.output.dtype).itemsize
    buf = int(config.extract.buffer_patches)
    in_b = widest.in_voxels * widest.element_bytes
    coef = widest.in_voxels * 8 if rs.enabled and rs.interpolator == "bspline" else 0
    out32 = biggest.out_voxels * 4
    convert = start["convert"]["rss_bytes"] + max(in_b + coef + widest.out_voxels * 4, 2 * out32)
    labels = start["tables"]["rss_bytes"] + biggest.out_voxels
    # the sink: up to `buf` pending patches per dataset (4 datasets) and a write buffer of as many;
    # cutting: the crop, its transposed copy and the cast.  The volume (float32) and mask (bool) of the
    # scan are held in memory (x, y, z).
    buffers = 2 * buf * (2 * img_raw + 2 * lab_raw) + 3 * img_raw
    volume = biggest.out_voxels * 5
    # verify: label blocks of 64 patches, and the regenerated sample's Job holding a scan's volume and mask
    # (the checksum scan reads the stored chunks through a read-only memory map: page cache, no copies)
    verify = start["tables"]["rss_bytes"] + 64 * lab_raw + volume + 2 * img_raw
    return {
        "startup": {k: v["rss_bytes"] for k, v in start.items() if k != "tables"},
        "convert_mhd": convert,
        "bspline_coefficients": coef,
        "make_labels": labels,
        "extract_patches_rank": start["extract_luna"]["rss_bytes"] + buffers + volume,
        "extract_patches_rank_buffers": buffers,
        "extract_patches_rank_volume": volume,
        "verify_patches": verify,
    }


def _makespan(durations, slots: int) -> float:
    """Wall time of independent jobs on ``slots`` parallel slots, longest first to the least loaded."""
    from ctpatch.engine.blocks import assign

    slots = max(1, min(int(slots), len(durations)))
    return max((sum(durations[i] for i in part) for part in assign(list(durations), slots)), default=0.0)


def luna_times(config, groups, scans, scan_patches: dict, smp, start, cores: int) -> dict:
    """CPU and wall seconds of each step, scaled from the sample; the extraction as the workflow
    splits it: one job per subset with ``tasks`` ranks, scans dealt to ranks by ``extract.assign``,
    the ranks cutting and compressing and rank 0 also writing every chunk once (serially); verify
    as it now works: the checksum scan of every chunk, every label read, a regenerated sample."""
    from ctpatch.engine.blocks import assign
    from ctpatch.store.verify import SAMPLE

    s = smp["seconds"]
    tasks = int(config.extract.tasks)
    job = start["tables"]["seconds"]
    job_convert, job_extract = start["convert"]["seconds"], start["extract_luna"]["seconds"]
    read_rate = s["read"] / max(1, _sample_scan(scans, smp).in_voxels)
    cpu = {}
    per_scan = [
        job_convert
        + read_rate * sc.in_voxels
        + (s["resample_per_voxel"] + s["normalize_per_voxel"] + 4 * s["write_per_byte"]) * sc.out_voxels
        for sc in scans
    ]
    if config.luna16.root == "demo":
        synth = (s["synthesize"] + s["write_scan"]) / max(1, _sample_scan(scans, smp).in_voxels)
        cpu["make_demo_luna16"] = job + synth * sum(sc.in_voxels for sc in scans)
    cpu["convert_mhd"] = float(sum(per_scan))
    lab_rate = s["labels"] / max(1, _sample_scan(scans, smp).out_voxels)
    cpu["make_labels"] = job * len(groups) + lab_rate * sum(sc.out_voxels for sc in scans)
    t_patch = s["cut_per_patch"] + s["compress_per_patch"]
    n_patches = {g: sum(v["patches"].values()) for g, v in groups.items()}
    # one unit per scan: load its float32 volume and bool mask, cut and compress its patches
    load = {sc.uid: s["load_per_byte"] * 5 * sc.out_voxels for sc in scans}
    unit = {sc.uid: load[sc.uid] + scan_patches[sc.uid] * t_patch for sc in scans}
    extract_wall, verify_cpu = [], []
    cpu["extract_patches"] = 0.0
    for g in groups:
        uids = [sc.uid for sc in scans if sc.subset == g]
        costs = [unit[u] for u in uids]
        ranks = assign([1.0 + scan_patches[u] for u in uids], tasks)  # the workflow's assignment
        write = n_patches[g] * s["write_per_patch"]  # rank 0 writes every chunk of the subset
        extract_wall.append(job_extract + max(sum(costs[i] for i in r) for r in ranks) + write)
        cpu["extract_patches"] += job_extract * tasks + sum(costs) + write
        # verify: Fletcher32 of every stored chunk, every label patch read, and SAMPLE patches of each kind
        # regenerated (each sampled scan loaded once, at the group's mean load, one patch cut per row)
        kinds = groups[g]["patches"]
        regen = sum(min(SAMPLE, n) for n in kinds.values())
        loads = min(regen, len(uids)) * sum(load[u] for u in uids) / max(1, len(uids))
        verify_cpu.append(
            job
            + s["verify_checksum_per_file"]
            + n_patches[g] * (s["verify_checksum_per_patch"] + s["verify_read_labels_per_patch"])
            + loads
            + regen * s["cut_per_patch"]
        )
    cpu["verify_patches"] = float(sum(verify_cpu))
    wall = {}
    if "make_demo_luna16" in cpu:
        wall["make_demo_luna16"] = cpu["make_demo_luna16"]
    wall["convert_mhd"] = _makespan(per_scan, cores)
    wall["make_labels"] = cpu["make_labels"] / max(1, min(cores, len(groups)))
    wall["extract_patches"] = _makespan(extract_wall, max(1, cores // max(1, min(tasks, cores))))
    wall["verify_patches"] = _makespan(verify_cpu, cores)
    return {
        "cores": cores,
        "tasks": tasks,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "total_wall_seconds": float(sum(wall.values())),
        "job_start_seconds": {k: v["seconds"] for k, v in start.items()},
    }


def _sample_scan(scans, smp) -> Scan:
    return next(s for s in scans if s.uid == smp["scan"])


# ---------------------------------------------------------------------------------------- LDCT
