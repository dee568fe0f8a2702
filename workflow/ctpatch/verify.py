"""Verify merged patch files and write a JSON report; exit non-zero when anything is wrong.

LUNA16: counts against the nodule table (``len(shifts)`` patches per nodule, negatives per the
settings), shapes and dtypes, NaN/inf, value range, one-hot labels, every nodule label patch
holding a nodule voxel, every negative's recorded overlap flag agreeing with its label, and
negatives drawn to avoid nodules holding none.  Patches are read one chunk at a time.

Usage: ``python -m ctpatch.verify --mode luna16 --patches X.h5 --nodules T.tsv --settings-file patches.json --report-out R.json``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np
import pandas as pd

from ctpatch.config import ConfigError, read_settings
from ctpatch.crop_reader import has_images, images, is_crops
from ctpatch.h5 import h5py
from ctpatch.layout import crop_edge, shift_margin
from ctpatch.luna import expected_counts, label_edge, patch_offsets
from ctpatch.store import write_json


def _scan_patches(ds: h5py.Dataset, block: int = 64):
    for i in range(0, ds.shape[0], block):
        yield i, ds[i : i + block]


def verify_luna(patches_path, nodules_path, settings: dict, scans: list[str]) -> dict:
    """Check one merged LUNA16 subset file; return the report (``ok`` false on any failure)."""
    fails: list[str] = []
    patch, neg, out = settings["patch"], settings["negatives"], settings["output"]
    p = int(patch["size"])
    lab = label_edge(patch)
    offsets = patch_offsets(patch)
    table = pd.read_csv(nodules_path, sep="\t", dtype={"seriesuid": str})
    nodule_patches, negatives = expected_counts(table, scans, len(offsets), neg)
    lo = -settings["normalize"]["center"] if settings["normalize"]["clip"] else -np.inf
    hi = 1 - settings["normalize"]["center"] if settings["normalize"]["clip"] else np.inf
    report: dict = {"file": str(patches_path), "nodules": int(len(table)), "shifts_per_nodule": len(offsets)}
    with h5py.File(patches_path, "r") as f:
        data = {}  # name -> the dataset (crops layout: nodule patches cut from their crops), opened once
        for name, shape, dtype in (("nodule", (p, p, p, 1), out["dtype"]), ("label_nodule", (lab, lab, lab, 2), "float32"),
                                   ("non_nodule", (p, p, p, 1), out["dtype"]), ("label_non_nodule", (lab, lab, lab, 2), "float32")):
            if not has_images(f, name):
                fails.append(f"dataset {name} missing")
                continue
            ds = data[name] = images(f, name)
            if ds.shape[1:] != shape:
                fails.append(f"{name}: expected patch shape {shape}, got {ds.shape[1:]}")
            if ds.dtype != np.dtype(dtype):
                fails.append(f"{name}: expected dtype {dtype}, got {ds.dtype}")
        if fails:
            return {**report, "ok": False, "failures": fails}
        n_nod, n_neg = data["nodule"].shape[0], data["non_nodule"].shape[0]
        exp_nod, exp_neg = sum(nodule_patches.values()), sum(negatives.values())
        report.update(nodule_patches=n_nod, expected_nodule_patches=exp_nod, negatives=n_neg, expected_negatives=exp_neg)
        if n_nod != exp_nod:
            fails.append(f"nodule patches: expected {exp_nod} ({len(offsets)} x {len(table)} nodules), got {n_nod}")
        if n_neg != exp_neg:
            fails.append(f"negatives: expected {exp_neg}, got {n_neg}")
        for name, n in (("nodule", n_nod), ("label_nodule", n_nod), ("non_nodule", n_neg), ("label_non_nodule", n_neg)):
            if data[name].shape[0] != n:
                fails.append(f"{name}: {data[name].shape[0]} rows, expected {n}")
        prov_n, prov_k = f["provenance/nodule"][...], f["provenance/non_nodule"][...]
        if len(prov_n) != n_nod or len(prov_k) != n_neg:
            fails.append(f"provenance rows {len(prov_n)}/{len(prov_k)} do not match patches {n_nod}/{n_neg}")
        if is_crops(f):
            fails += _check_crops(f, prov_n, offsets, p, len(table))
            report["layout"] = "crops"
            report["nodule_crops"] = int(f["nodule_crop"].shape[0])
        per_nodule = Counter(zip(prov_n["seriesuid"].astype(str), prov_n["nodule_index"]))
        bad = [k for k, c in per_nodule.items() if c != len(offsets)]
        if bad or len(per_nodule) != len(table):
            fails.append(f"{len(bad)} nodules without exactly {len(offsets)} patches; {len(per_nodule)} of {len(table)} nodules present")
        for group, img, labname in (("nodule", "nodule", "label_nodule"), ("negative", "non_nodule", "label_non_nodule")):
            nan = 0
            vmin, vmax = np.inf, -np.inf
            for _, block in _scan_patches(data[img]):
                nan += int((~np.isfinite(block)).sum())
                if block.size:
                    vmin, vmax = min(vmin, float(np.nanmin(block))), max(vmax, float(np.nanmax(block)))
            if nan:
                fails.append(f"{img}: {nan} NaN/inf values")
            if vmin < lo - 1e-3 or vmax > hi + 1e-3:
                fails.append(f"{img}: values [{vmin:.4f}, {vmax:.4f}] outside the normalized range [{lo}, {hi}]")
            positive = np.zeros(f[labname].shape[0], dtype=bool)
            for i, block in _scan_patches(f[labname]):
                if not np.all(block.sum(-1) == 1.0):
                    fails.append(f"{labname}: patches {i}..{i + len(block) - 1} are not one-hot")
                positive[i : i + len(block)] = block[..., 1].reshape(len(block), -1).max(axis=1) > 0
            report[f"{group}_value_range"] = [vmin, vmax] if np.isfinite(vmin) else None
            if group == "nodule":
                missing = int((~positive).sum())
                report["nodule_patches_without_nodule_voxel"] = missing
                if missing:
                    fails.append(f"{missing} nodule label patches hold no nodule voxel")
            else:
                touches = prov_k["touches_nodule"]
                if np.any(touches != positive):
                    fails.append(f"{int((touches != positive).sum())} negatives whose touches_nodule flag disagrees with the label")
                avoid = np.isin(prov_k["source"], [b"avoid_nodules", b"fill"])
                report["negatives_touching_nodules"] = int(positive.sum())
                report["negatives_by_source"] = {k.decode(): int(v) for k, v in zip(*np.unique(prov_k["source"], return_counts=True))}
                if np.any(positive & avoid):
                    fails.append(f"{int((positive & avoid).sum())} negatives drawn to avoid nodules hold a nodule voxel")
    report["ok"] = not fails
    report["failures"] = fails
    return report


def _check_crops(f: h5py.File, prov: np.ndarray, offsets, p: int, nodules: int) -> list[str]:
    """Crops layout: one crop per nodule of the expected edge, each nodule patch where its shift puts it."""
    fails = []
    crops, view, table = f["nodule_crop"], f["nodule_view"][...], f["provenance/nodule_crop"][...]
    edge = crop_edge(p, offsets)
    if crops.shape[1:] != (edge,) * 3 + (1,):
        fails.append(f"nodule_crop: expected crops of shape {(edge,) * 3 + (1,)}, got {crops.shape[1:]}")
    if crops.shape[0] != nodules or len(table) != nodules:
        fails.append(f"nodule_crop: expected {nodules} crops (one per nodule), got {crops.shape[0]} "
                     f"(provenance rows {len(table)})")
    if view.shape != (len(prov), 4):
        return fails + [f"nodule_view: expected shape {(len(prov), 4)}, got {view.shape}"]
    if len(prov) and len(table):
        if view[:, 0].min() < 0 or view[:, 0].max() >= len(table):
            return fails + ["nodule_view: crop rows outside the crop table"]
        crop = table[view[:, 0]]
        same = (crop["scan_index"] == prov["scan_index"]) & (crop["nodule_index"] == prov["nodule_index"])
        if not np.all(same):
            fails.append(f"nodule_view: {int((~same).sum())} nodule patches point to another nodule's crop")
        expected = shift_margin(offsets) + prov["shift"]  # where the shift puts the patch inside the crop
        off = ~np.all(view[:, 1:] == expected, axis=1)
        if np.any(off):
            fails.append(f"nodule_view: {int(off.sum())} nodule patches not at margin + shift inside their crop")
    return fails


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["luna16", "ldct"], required=True)
    ap.add_argument("--patches", nargs="+", required=True)
    ap.add_argument("--nodules", help="LUNA16: the subset's nodule table")
    ap.add_argument("--scans", nargs="*", default=[], help="LUNA16: the subset's series uids")
    ap.add_argument("--pairs", help="LDCT: the patient's pair table")
    ap.add_argument("--settings-file", required=True, help="settings of scope 'patches'")
    ap.add_argument("--report-out", required=True)
    args = ap.parse_args(argv)
    try:
        settings = read_settings(args.settings_file, scope="patches")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.mode == "luna16":
        report = verify_luna(args.patches[0], args.nodules, settings, args.scans)
    else:
        from ctpatch.verify_ldct import verify_ldct

        report = verify_ldct(args.patches, args.pairs, settings)
    write_json(args.report_out, report)
    if not report["ok"]:
        print("verification failed:\n  " + "\n  ".join(report["failures"]), file=sys.stderr)
        return 1
    print(f"verified {', '.join(map(str, args.patches))}: ok")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
