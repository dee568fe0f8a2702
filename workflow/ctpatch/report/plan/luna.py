"""The LUNA16 plan: counts per subset, sizes, memory and times."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.report.plan.estimate import _round, _totals, luna_memory, luna_times
from ctpatch.report.plan.inputs import _nodule_rows, luna_inputs
from ctpatch.report.plan.measure import COMPRESSIONS, LUNA_DTYPES, luna_sample, measure_startup


def plan_luna(config: dict, workdir: Path, sample: int, cores: int, budget: float = 2.5) -> dict:
    """The plan of a LUNA16 config: per subset and in total (see :func:`ctpatch.report.plan.make_plan`)."""
    from ctpatch.core.bricks import brick_grid, crop_edge
    from ctpatch.core.nodules import expected_counts, label_edge, patch_offsets
    from ctpatch.luna16.job import PROV_NEGATIVE, PROV_NODULE
    from ctpatch.luna16.layouts import PROV_BRICK, PROV_CROP

    t0 = time.perf_counter()
    luna = config["luna16"]
    patch, neg, out_s, rs = luna["patch"], luna["negatives"], luna["output"], luna["resample"]
    scans, ann, warnings, root = luna_inputs(config, workdir)
    t_headers = time.perf_counter() - t0
    size, lab = int(patch["size"]), label_edge(patch)
    n_off = len(patch_offsets(patch))
    img_raw = size**3 * np.dtype(out_s["dtype"]).itemsize
    lab_raw = lab**3 * 2 * 4
    brick = int(out_s["brick"])

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
        nodule_patches, negatives = expected_counts(table, uids, n_off, neg)
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

    smp = luna_sample(config, scans, ann, workdir, sample, budget) if sample else None
    start = measure_startup(("convert", "extract_luna"))
    start["tables"] = start["extract_luna"]  # make_labels and verify import a subset of it

    def per_patch_bytes(kind: str, dtype: str, comp: str) -> float:
        lab_name = "label_" + kind
        if smp is None:
            return (size**3 * np.dtype(dtype).itemsize + lab_raw) if comp == "none" else math.nan
        if comp == "none":
            return size**3 * np.dtype(dtype).itemsize + lab_raw + smp["chunk_overhead_bytes_per_patch"]
        if dtype == out_s["dtype"] and comp == out_s["compression"]:
            st = smp["stored_bytes_per_patch"]
        else:
            st = smp["alternatives"][f"{dtype}/{comp}"]
        return st[kind] + st[lab_name] + smp["chunk_overhead_bytes_per_patch"]

    def nodule_image_bytes(dtype: str, comp: str) -> float:
        """The nodule image's share of :func:`per_patch_bytes`."""
        if comp == "none" or smp is None:
            return size**3 * np.dtype(dtype).itemsize if comp == "none" else math.nan
        st = (
            smp["stored_bytes_per_patch"]
            if (dtype, comp) == (out_s["dtype"], out_s["compression"])
            else smp["alternatives"][f"{dtype}/{comp}"]
        )
        return st["nodule"]

    def volume_voxel_bytes(dtype: str, comp: str) -> float:
        """Stored bytes per volume voxel: the negatives' (drawn across the whole volume) per voxel."""
        if comp == "none" or smp is None:
            return np.dtype(dtype).itemsize if comp == "none" else math.nan
        st = (
            smp["stored_bytes_per_patch"]
            if (dtype, comp) == (out_s["dtype"], out_s["compression"])
            else smp["alternatives"][f"{dtype}/{comp}"]
        )
        return st["non_nodule"] / size**3

    prov_bytes = {"nodule": PROV_NODULE.itemsize, "non_nodule": PROV_NEGATIVE.itemsize}
    dtypes = LUNA_DTYPES if out_s["dtype"] == "float64" else LUNA_DTYPES[:2]
    # crops layout: per nodule one crop of edge C instead of its patches' images, estimated as
    # (C / P)³ patches (crops compress like patches), plus a 16-byte view row per nodule patch
    crops = out_s["layout"] == "crops"
    # volumes layout: no image patch; the scans' voxels in bricks, stored like the negatives' voxels
    volumes = out_s["layout"] == "volumes"
    edge = crop_edge(size, patch_offsets(patch))
    for g in groups.values():
        n = g["patches"]
        g["raw_bytes"] = int(sum(n[k] * (img_raw + lab_raw) for k in n))
        g["file_bytes"] = {
            f"{d}/{c}": sum(n[k] * (per_patch_bytes(k, d, c) + prov_bytes[k]) for k in n)
            for d in dtypes
            for c in COMPRESSIONS
        }
        if crops:
            g["raw_bytes"] += int(g["nodules"] * img_raw * (edge / size) ** 3 - n["nodule"] * img_raw)
            for d in dtypes:
                for c in COMPRESSIONS:
                    img = nodule_image_bytes(d, c)
                    g["file_bytes"][f"{d}/{c}"] += (
                        g["nodules"] * img * (edge / size) ** 3
                        - n["nodule"] * img
                        + n["nodule"] * 16
                        + g["nodules"] * PROV_CROP.itemsize
                    )
        if volumes:
            g["raw_bytes"] += int(g["brick_voxels"] * np.dtype(out_s["dtype"]).itemsize - sum(n.values()) * img_raw)
            for d in dtypes:
                for c in COMPRESSIONS:
                    if c == "none" or smp is None:
                        img = {k: size**3 * np.dtype(d).itemsize if c == "none" else math.nan for k in n}
                    else:
                        st = (
                            smp["stored_bytes_per_patch"]
                            if (d, c) == (out_s["dtype"], out_s["compression"])
                            else smp["alternatives"][f"{d}/{c}"]
                        )
                        img = {k: st[k] for k in n}
                    overhead = smp["chunk_overhead_bytes_per_patch"] / 2 if smp is not None else 0.0
                    g["file_bytes"][f"{d}/{c}"] += (
                        g["brick_voxels"] * volume_voxel_bytes(d, c)
                        + g["bricks"] * (overhead + PROV_BRICK.itemsize)
                        - sum(n[k] * (img[k] + overhead) for k in n)
                    )
        g["file_bytes"] = {k: _round(v) for k, v in g["file_bytes"].items()}
        g["estimated_file_bytes"] = g["file_bytes"][f"{out_s['dtype']}/{out_s['compression']}"]

    total = _totals(groups)
    biggest = max(scans, key=lambda s: s.out_voxels)
    memory = luna_memory(config, biggest, max(scans, key=lambda s: s.in_voxels), start, size, lab_raw)
    times = luna_times(config, groups, scans, scan_patches, smp, start, cores) if smp else None
    # the files besides the patches (which are written once: no shards, no merged copy)
    intermediate = {"volumes": total["out_voxels"] * 4, "masks": total["out_voxels"]}
    if luna["root"] == "demo":
        intermediate["demo_scans"] = total["in_voxels"] * 2
    return {
        "mode": "luna16",
        "root": root,
        "demo": luna["root"] == "demo",
        "groups": groups,
        "total": total,
        "settings": {
            "patch": patch,
            "patches_per_nodule": n_off,
            "negatives": neg,
            "output": out_s,
            "resample": rs,
            "tasks": config["extract"]["tasks"],
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
