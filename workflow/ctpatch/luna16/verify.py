"""Verify patch files and write a JSON report; exit non-zero when anything is wrong.

Both modes: every stored chunk of every patch dataset is checked against its Fletcher32 checksum
(:func:`check_chunks`: the stored bytes, not decompressed), so a changed byte anywhere
fails verification naming the file, dataset and row (and any read of that chunk fails in HDF5);
a seeded random sample of patches from **every** file (and part) is regenerated from the
extraction's inputs with the recorded settings and compared voxel for voxel, with its provenance
row.  The checksums say the bytes are the ones written, the sample that what was written is what
the code makes of the inputs; together they replace reading every voxel again.

LUNA16: counts against the nodule table (``len(shifts)`` patches per nodule, negatives per the
settings), shapes and dtypes, provenance, every label read (one-hot, every nodule label patch
holding a nodule voxel, every negative's recorded overlap flag agreeing with its label,
negatives drawn to avoid nodules holding none), the crops layout's views, the volumes layout's
bricks (every scan's grid of bricks in order, of the recorded edge, the volumes' sizes those of the
converted scans), and the value range of the sampled images (cut from the bricks in the volumes
layout, so the regenerated sample checks them voxel for voxel).  LDCT: see :mod:`ctpatch.ldct.verify`.

Every report also says what a reader outside ctpatch needs (``reader``, from the files'
codecs, :func:`ctpatch.store.reading.reader_needs`), and the command prints it.

Usage: ``python -m ctpatch.luna16.verify --patches X.h5 --nodules T.tsv --settings-file patches.json
--sidecars volumes/*.json --masks-dir labels/masks [--candidates candidates.csv] --report-out R.json``
(the extraction's inputs, as ``ctpatch.luna16.extract`` takes them: given, a sample is regenerated).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.nodules import expected_counts, label_edge
from ctpatch.core.shifts import shift_offsets
from ctpatch.luna16.job import Job
from ctpatch.luna16.layouts import has_images, images, layout_of
from ctpatch.settings import ConfigError, luna16_job, read_settings
from ctpatch.settings.types import LunaPatches
from ctpatch.store.h5 import h5py
from ctpatch.store.identity import differences, digest
from ctpatch.store.sink import MemorySink
from ctpatch.store.verify import SAMPLE, check_chunks, finish_report, read_blocks, read_table, sample_rows


def verify_luna(
    patches_path,
    nodules_path,
    settings: LunaPatches | Mapping,
    scans: list[str],
    inputs: dict | None = None,
    sample: int = SAMPLE,
) -> dict:
    """Check one LUNA16 subset file; return the report (``ok`` false on any failure).

    ``inputs``: the extraction's inputs (:class:`ctpatch.luna16.job.Job`'s), from which ``sample``
    patches of each kind are regenerated; ``None`` skips the regenerated sample.
    """
    fails: list[str] = []
    settings = luna16_job(settings)
    patch, neg, out = settings.patch, settings.negatives, settings.output
    p = patch.size
    lab = label_edge(patch.size, patch.label_pool)
    offsets = shift_offsets(patch.stride, patch.shifts_per_side, patch.directions)
    table = pd.read_csv(nodules_path, sep="\t", dtype={"seriesuid": str})
    nodule_patches, negatives = expected_counts(table, scans, len(offsets), neg.ratio, neg.scans)
    norm = settings.normalize
    lo = -norm.center if norm.clip else -np.inf
    hi = 1 - norm.center if norm.clip else np.inf
    report: dict = {
        "file": str(patches_path),
        "settings_digest": digest(asdict(settings)),  # the settings it was checked against
        "nodules": int(len(table)),
        "shifts_per_nodule": len(offsets),
    }
    with h5py.File(patches_path, "r") as f:
        # what made the file: this run's settings and inputs (checked first, reported with the rest)
        identity = Job(settings, inputs).inputs_identity() if inputs is not None else None
        made = differences(f.attrs, asdict(settings), identity, str(patches_path))
        layout = layout_of(f)
        data = {}  # name -> the dataset (crops layout: nodule patches cut from their crops), opened once
        for name, shape, dtype in (
            ("nodule", (p, p, p, 1), out.dtype),
            ("label_nodule", (lab, lab, lab, 2), "float32"),
            ("non_nodule", (p, p, p, 1), out.dtype),
            ("label_non_nodule", (lab, lab, lab, 2), "float32"),
        ):
            if not has_images(f, name):
                fails.append(f"dataset {name} missing")
                continue
            ds = data[name] = images(f, name)
            if ds.shape[1:] != shape:
                fails.append(f"{name}: expected patch shape {shape}, got {ds.shape[1:]}")
            if ds.dtype != np.dtype(dtype):
                fails.append(f"{name}: expected dtype {dtype}, got {ds.dtype}")
        if fails:
            return {**report, "ok": False, "failures": made + fails}
        n_nod, n_neg = data["nodule"].shape[0], data["non_nodule"].shape[0]
        exp_nod, exp_neg = sum(nodule_patches.values()), sum(negatives.values())
        report.update(
            nodule_patches=n_nod, expected_nodule_patches=exp_nod, negatives=n_neg, expected_negatives=exp_neg
        )
        if n_nod != exp_nod:
            fails.append(f"nodule patches: expected {exp_nod} ({len(offsets)} x {len(table)} nodules), got {n_nod}")
        if n_neg != exp_neg:
            fails.append(f"negatives: expected {exp_neg}, got {n_neg}")
        for name, n in (("nodule", n_nod), ("label_nodule", n_nod), ("non_nodule", n_neg), ("label_non_nodule", n_neg)):
            if data[name].shape[0] != n:
                fails.append(f"{name}: {data[name].shape[0]} rows, expected {n}")
        prov_n, prov_k = read_table(f, "provenance/nodule"), read_table(f, "provenance/non_nodule")
        if len(prov_n) != n_nod or len(prov_k) != n_neg:
            fails.append(f"provenance rows {len(prov_n)}/{len(prov_k)} do not match patches {n_nod}/{n_neg}")
        own_fails, entries = layout.check(f, settings, scans, inputs, (prov_n, prov_k), len(table))
        fails += own_fails
        report.update(entries)
        per_nodule = Counter(zip(prov_n["seriesuid"].astype(str), prov_n["nodule_index"]))
        bad = [k for k, c in per_nodule.items() if c != len(offsets)]
        if bad or len(per_nodule) != len(table):
            fails.append(
                f"{len(bad)} nodules without exactly {len(offsets)} patches; {len(per_nodule)} of {len(table)} nodules present"
            )
        for name in (*layout.image_datasets, "label_nodule", "label_non_nodule"):
            fails += check_chunks(f[name])
        if fails:  # corrupt chunks: reading them would only fail again
            return {**report, "ok": False, "failures": made + fails}
        for group, labname in (("nodule", "label_nodule"), ("negative", "label_non_nodule")):
            positive = np.zeros(f[labname].shape[0], dtype=bool)
            for i, block in read_blocks(f[labname]):
                if not np.all(block.sum(-1) == 1.0):
                    fails.append(f"{labname}: patches {i}..{i + len(block) - 1} are not one-hot")
                positive[i : i + len(block)] = block[..., 1].reshape(len(block), -1).max(axis=1) > 0
            if group == "nodule":
                missing = int((~positive).sum())
                report["nodule_patches_without_nodule_voxel"] = missing
                if missing:
                    fails.append(f"{missing} nodule label patches hold no nodule voxel")
            else:
                touches = prov_k["touches_nodule"]
                if np.any(touches != positive):
                    fails.append(
                        f"{int((touches != positive).sum())} negatives whose touches_nodule flag disagrees with the label"
                    )
                avoid = np.isin(prov_k["source"], [b"avoid_nodules", b"fill"])
                report["negatives_touching_nodules"] = int(positive.sum())
                report["negatives_by_source"] = {
                    k.decode(): int(v) for k, v in zip(*np.unique(prov_k["source"], return_counts=True))
                }
                if np.any(positive & avoid):
                    fails.append(
                        f"{int((positive & avoid).sum())} negatives drawn to avoid nodules hold a nodule voxel"
                    )
        if inputs is not None and not fails:
            fails += _check_luna_sample(f, data, settings, inputs, sample, (lo, hi), report)
    report["ok"] = not (made or fails)
    report["failures"] = made + fails
    return report


def _check_luna_sample(
    f: h5py.File, data: dict, settings: LunaPatches, inputs: dict, sample: int, bounds, report: dict
) -> list[str]:
    """Regenerate ``sample`` nodule and non-nodule patches of the file and compare them voxel for voxel."""

    fails = []
    job = Job(replace(settings, output=replace(settings.output, layout="full")), inputs)  # crops: compare patches
    units = job.units()
    names = {"nodule": ("nodule", "label_nodule"), "non_nodule": ("non_nodule", "label_non_nodule")}
    name = Path(f.filename).name
    wanted = []  # (scan index, item, kind, row)
    for kind in ("nodule", "non_nodule"):
        prov = f[f"provenance/{kind}"]
        for row in sample_rows(prov.shape[0], sample, settings.seed, name, kind):
            rec = prov[int(row)]
            scan = int(rec["scan_index"])
            if not 0 <= scan < len(units) or units[scan].key != rec["seriesuid"].decode():
                fails.append(
                    f"{kind} row {row}: scan {rec['seriesuid'].decode()} (scan_index {scan}) is not among the inputs"
                )
                continue
            item = int(rec["patch_index"]) + (job.nodule_patches[units[scan].key] if kind == "non_nodule" else 0)
            wanted.append((scan, item, kind, int(row)))
    lo, hi = bounds
    checked = 0
    for scan, item, kind, row in sorted(wanted):
        sink = MemorySink(job.specs().datasets)
        job.run(units[scan], sink, item, item + 1)
        img_name, lab_name = names[kind]
        stored_img, stored_lab = data[img_name][row], f[lab_name][row]
        regen_row = np.array(sink.rows[kind], dtype=f[f"provenance/{kind}"].dtype)[0]
        if not np.array_equal(stored_img, sink.patches[img_name][0]) or not np.array_equal(
            stored_lab, sink.patches[lab_name][0]
        ):
            diff = float(np.max(np.abs(stored_img.astype(np.float64) - sink.patches[img_name][0])))
            fails.append(
                f"{f.filename}: {img_name} row {row}: differs from its regeneration (largest difference {diff:.6g})"
            )
        if regen_row.tobytes() != f[f"provenance/{kind}"][row].tobytes():
            fails.append(f"{f.filename}: provenance/{kind} row {row}: differs from its regeneration")
        vmin, vmax = float(np.min(stored_img)), float(np.max(stored_img))
        if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmin < lo - 1e-3 or vmax > hi + 1e-3:
            fails.append(
                f"{f.filename}: {img_name} row {row}: values [{vmin:.4f}, {vmax:.4f}] outside the "
                f"normalized range [{lo}, {hi}]"
            )
        checked += 1
    report["sample_patches"] = checked
    report["sample_rows"] = {k: [r for _, _, kk, r in sorted(wanted) if kk == k] for k in names}
    return fails


def main(argv=None) -> int:
    from ctpatch.luna16.job import add_input_arguments, input_paths

    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", nargs="+", required=True)
    ap.add_argument("--nodules", required=True, help="the subset's nodule table")
    ap.add_argument("--scans", nargs="*", default=None, help="the subset's series uids (default: the sidecars')")
    ap.add_argument("--settings-file", required=True, help="settings of scope 'patches'")
    add_input_arguments(ap, required=False)
    ap.add_argument("--sample", type=int, default=SAMPLE, help="patches per file and kind regenerated and compared")
    ap.add_argument("--report-out", required=True)
    args = ap.parse_args(argv)
    if (args.sidecars is None) != (args.masks_dir is None):
        ap.error("--sidecars and --masks-dir: expected both (a sample is regenerated from them) or neither")
    inputs = input_paths(args) if args.sidecars else None
    scans = args.scans if args.scans is not None else [Path(p).stem for p in args.sidecars or []]
    try:
        settings = read_settings(args.settings_file, scope="patches")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        report = verify_luna(args.patches[0], args.nodules, settings, scans, inputs, args.sample)
    except (OSError, ValueError) as exc:  # e.g. a corrupt chunk of a small dataset, read whole
        report = {"files": args.patches, "ok": False, "failures": [str(exc)]}
    return finish_report(report, args.patches, args.report_out)


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
