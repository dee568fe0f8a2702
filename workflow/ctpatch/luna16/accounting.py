"""Nodule accounting: every row of annotations.csv -> its patches, or the reason it has none.

A researcher's first question about a LUNA16 patch set is "did all my nodules make it?".  This
step answers it row by row: ``patched`` (with the number of patches found in the subset's file
and the number expected), ``subset not processed`` (the scan lies in a subset folder the config
left out), or ``unknown series`` (no scan of that uid under the root: only possible with
``unknown_series: warn``), or ``duplicate of row N`` (an identical row dropped by
``duplicate_annotations: drop``).  Anything else is a failure of the run.  Column ``overlaps``
lists the rows of the same scan whose annotation spheres overlap this one (their patches share
voxels: they are not independent samples).

Usage: ``python -m ctpatch.luna16.accounting --annotations A.csv --settings-file patches.json --nodules T1.tsv ...
--patches P1.h5 ... --out accounting.tsv --summary-out summary.json``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from ctpatch.core.nodules import patches_per_nodule
from ctpatch.io.tables import TableError, overlapping_nodules, read_annotations, read_csv_rows
from ctpatch.luna16.discover import all_series
from ctpatch.settings import ConfigError, read_settings
from ctpatch.store.atomic import atomic_path, write_json
from ctpatch.store.h5 import h5py


def account(annotations, root, nodule_tables, patch_files, per_nodule: int, duplicates: str = "fail") -> pd.DataFrame:
    """One row per annotation with its status and patch counts."""
    kept = read_annotations(annotations, duplicates)
    dropped = dict(kept.attrs["dropped_duplicates"])
    overlaps = overlapping_nodules(kept)
    ann = read_csv_rows(annotations) if dropped else kept
    everywhere = all_series(Path(root))
    placed = pd.concat([pd.read_csv(t, sep="\t", dtype={"seriesuid": str}) for t in nodule_tables], ignore_index=True)
    by_row = {int(r.annotation_row): r for r in placed.itertuples(index=False)}
    found: Counter = Counter()
    for path in patch_files:
        with h5py.File(path, "r") as f:
            prov = f["provenance/nodule"]
            for i in range(0, prov.shape[0], 65536):
                block = prov[i : i + 65536]
                found.update(zip(block["seriesuid"].astype(str), block["annotation_row"].tolist()))
    rows = []
    for rec in ann.itertuples(index=False):
        uid, row = rec.seriesuid, int(rec.row)
        out = {
            "annotation_row": row,
            "seriesuid": uid,
            "coordX": rec.coordX,
            "coordY": rec.coordY,
            "coordZ": rec.coordZ,
            "diameter_mm": rec.diameter_mm,
            "subset": everywhere.get(uid, ""),
            "nodule_index": -1,
            "voxel_xyz": "",
            "patches": 0,
            "expected": 0,
            "overlaps": " ".join(map(str, overlaps.get(row, []))),
        }
        if row in dropped:
            out["status"] = f"duplicate of row {dropped[row]}"
        elif row in by_row:
            n = by_row[row]
            out.update(
                status="patched",
                nodule_index=int(n.nodule_index),
                expected=per_nodule,
                voxel_xyz=f"{n.voxel_x} {n.voxel_y} {n.voxel_z}",
                patches=found[(uid, row)],
            )
            if out["patches"] != per_nodule:
                out["status"] = f"MISSING PATCHES ({out['patches']} of {per_nodule})"
        elif uid in everywhere:
            out["status"] = "subset not processed"
        else:
            out["status"] = "unknown series"
        rows.append(out)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """``python -m ctpatch.luna16.accounting`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.accounting", description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--settings-file", required=True, help="settings of scope 'patches' (root, patch shifts)")
    ap.add_argument("--nodules", nargs="+", required=True, help="the processed subsets' nodule tables")
    ap.add_argument("--patches", nargs="+", required=True, help="the processed subsets' patch files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary-out", required=True)
    args = ap.parse_args(argv)
    try:
        s = read_settings(args.settings_file, scope="patches")
        table = account(
            args.annotations,
            s["root"],
            args.nodules,
            args.patches,
            patches_per_nodule(s["patch"]),
            s.get("duplicate_annotations", "fail"),
        )
    except (ConfigError, TableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {
        "annotations": len(table),
        "by_status": table["status"].value_counts().to_dict(),
        "patches": int(table["patches"].sum()),
        "overlapping_nodules": int((table["overlaps"] != "").sum()),
    }
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json(args.summary_out, summary)
    print(f"nodule accounting: {summary['by_status']}")
    bad = table["status"].str.startswith("MISSING")
    if bad.any():
        print(
            f"error: {int(bad.sum())} annotations lack patches: rows {table['annotation_row'][bad].tolist()[:10]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
