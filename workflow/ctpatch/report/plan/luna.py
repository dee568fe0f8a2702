"""The LUNA16 plan: counts per subset, sizes, memory and times."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.report.plan.estimate import _round, _totals, luna_memory, luna_times
from ctpatch.report.plan.inputs import _nodule_rows, luna_inputs
from ctpatch.report.plan.measure import COMPRESSIONS, LUNA_DTYPES, luna_sample, measure_startup
from ctpatch.settings.types import Config


def plan_luna(config: Config, workdir: Path, sample: int, cores: int) -> dict:
    """The plan of a LUNA16 config: per subset and in total (see :func:`ctpatch.report.plan.make_plan`)."""
    from ctpatch.core.bricks import brick_grid, crop_edge
    from ctpatch.core.nodules import expected_counts, label_edge
    from ctpatch.core.shifts import shift_offsets
    from ctpatch.luna16.job import PROV_NEGATIVE, PROV_NODULE
    from ctpatch.luna16.layouts import PlanSizes, layout_for

    t0 = time.perf_counter()
    luna = config.luna16
    patch, neg, out_s, rs = luna.patch, luna.negatives, luna.output, luna.resample
    scans, ann, warnings, root = luna_inputs(config, workdir)
    t_headers = time.perf_counter() - t0
    size, lab = patch.size, label_edge(patch.size, patch.label_pool)
    offsets = shift_offsets(patch.stride, patch.shifts_per_side, patch.directions)
    n_off = len(offsets)
    img_raw = size**3 * np.dtype(out_s.dtype).itemsize
    lab_raw = lab**3 * 2 * 4
    brick = out_s.brick

    world = ann[["coordX", "coordY", "coordZ"]].to_numpy(float)
    ann_by_uid = {uid: world[rows] for uid, rows in ann.groupby("seriesuid").indices.items()}
    groups: dict[str, dict] = {}
    scan_patches: dict[str, int] = {}  # per scan: its nodule patches + negatives (the extraction unit's work)
    per_scan = []
    for s in scans:
        nod, outside = _nodule_rows(ann_by_uid, s)
        if outside:
            warnings.append(
                f"scan {s.uid} ({s.subset}): {outside} annotation(s) outside the converted volume: "
                f"make_labels will stop"
            )
        per_scan.append((s, nod))
    for sub in dict.fromkeys(s.subset for s in scans):
        members = [(s, nod) for s, nod in per_scan if s.subset == sub]
        uids = [s.uid for s, _ in members]
        table = pd.DataFrame({"seriesuid": [s.uid for s, nod in members for _ in range(nod)]})
        nodule_patches, negatives = expected_counts(table, uids, n_off, neg.ratio, neg.scans)
        scan_patches.update({uid: nodule_patches[uid] + negatives[uid] for uid in uids})
        biggest = max(members, key=lambda m: m[0].out_voxels)[0]
        groups[sub] = {
            "scans": len(members),
            "nodules": int(sum(nod for _, nod in members)),
            "patches": {"nodule": int(sum(nodule_patches.values())), "non_nodule": int(sum(negatives.values()))},
            "in_voxels": int(sum(s.in_voxels for s, _ in members)),
            "out_voxels": int(sum(s.out_voxels for s, _ in members)),
            "largest_scan": biggest.uid,
            "largest_out_voxels": biggest.out_voxels,
            # volumes layout: the scans' voxels in whole bricks, and the bricks
            "brick_voxels": int(sum(np.prod(brick_grid(s.out.size, brick)) for s, _ in members) * brick**3),
            "bricks": int(sum(np.prod(brick_grid(s.out.size, brick)) for s, _ in members)),
        }

    smp = luna_sample(config, scans, ann, workdir, sample) if sample else None
    start = measure_startup(("convert", "extract_luna"))
    start["tables"] = start["extract_luna"]  # make_labels and verify import a subset of it

    def per_patch_bytes(kind: str, dtype: str, comp: str) -> float:
        lab_name = "label_" + kind
        if smp is None:
            return (size**3 * np.dtype(dtype).itemsize + lab_raw) if comp == "none" else math.nan
        if comp == "none":
            return size**3 * np.dtype(dtype).itemsize + lab_raw + smp["chunk_overhead_bytes_per_patch"]
        if dtype == out_s.dtype and comp == out_s.compression:
            st = smp["stored_bytes_per_patch"]
        else:
            st = smp["alternatives"][f"{dtype}/{comp}"]
        return st[kind] + st[lab_name] + smp["chunk_overhead_bytes_per_patch"]

    def image_bytes(kind: str, dtype: str, comp: str) -> float:
        """The image's share of :func:`per_patch_bytes` (kind ``voxel``: one volume voxel's)."""
        if comp == "none" or smp is None:
            voxels = 1 if kind == "voxel" else size**3
            return voxels * np.dtype(dtype).itemsize if comp == "none" else math.nan
        st = (
            smp["stored_bytes_per_patch"]
            if (dtype, comp) == (out_s.dtype, out_s.compression)
            else smp["alternatives"][f"{dtype}/{comp}"]
        )
        if kind == "voxel":  # the volumes layout's stored bytes per voxel
            if smp.get("volume_bytes_per_voxel"):  # measured on the sample scan's own bricks
                return smp["volume_bytes_per_voxel"][f"{dtype}/{comp}"]
            return st["non_nodule"] / size**3  # else the negatives' (drawn across the whole volume)
        return st[kind]

    prov_bytes = {"nodule": PROV_NODULE.itemsize, "non_nodule": PROV_NEGATIVE.itemsize}
    dtypes = LUNA_DTYPES if out_s.dtype == "float64" else LUNA_DTYPES[:2]
    layout = layout_for(out_s.layout)  # the groups are estimated for the full layout, then for this one
    overhead = smp["chunk_overhead_bytes_per_patch"] / 2 if smp is not None else 0.0  # per box: image half
    sizes = PlanSizes(size, crop_edge(size, offsets), np.dtype(out_s.dtype).itemsize, img_raw, overhead)
    combos = [(d, c) for d in dtypes for c in COMPRESSIONS]
    for g in groups.values():
        n = g["patches"]
        g["raw_bytes"] = int(sum(n[k] * (img_raw + lab_raw) for k in n))
        g["file_bytes"] = {
            f"{d}/{c}": sum(n[k] * (per_patch_bytes(k, d, c) + prov_bytes[k]) for k in n)
            for d in dtypes
            for c in COMPRESSIONS
        }
        layout.plan(g, sizes, image_bytes, combos)
        g["file_bytes"] = {k: _round(v) for k, v in g["file_bytes"].items()}
        g["estimated_file_bytes"] = g["file_bytes"][f"{out_s.dtype}/{out_s.compression}"]

    total = _totals(groups)
    biggest = max(scans, key=lambda s: s.out_voxels)
    memory = luna_memory(config, biggest, max(scans, key=lambda s: s.in_voxels), start, size, lab_raw)
    times = luna_times(config, groups, scans, scan_patches, smp, start, cores) if smp else None
    # the files besides the patches (which are written once: no shards, no merged copy)
    intermediate = {"volumes": total["out_voxels"] * 4, "masks": total["out_voxels"]}
    if luna.root == "demo":
        intermediate["demo_scans"] = total["in_voxels"] * 2
    return {
        "mode": "luna16",
        "root": root,
        "demo": luna.root == "demo",
        "groups": groups,
        "total": total,
        "settings": {
            "patch": asdict(patch),
            "patches_per_nodule": n_off,
            "negatives": asdict(neg),
            "output": asdict(out_s),
            "resample": asdict(rs),
            "tasks": config.extract.tasks,
        },
        "sample": smp,
        "memory": memory,
        "time": times,
        "intermediate_bytes": intermediate,
        "peak_disk_bytes": _round(total["estimated_file_bytes"] + sum(intermediate.values())),
        "largest_scan": {
            "uid": biggest.uid,
            "subset": biggest.subset,
            "size": list(biggest.grid.size),
            "converted_size": list(biggest.out.size),
        },
        "warnings": warnings,
        "seconds": {"headers": t_headers},
    }
