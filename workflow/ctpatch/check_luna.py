"""Pre-flight check of a LUNA16 folder: every header, every data file size, every annotation.

Runs before any conversion so that a missing ``.raw``, a truncated volume, a subset with no
scans, an annotation for an unknown scan or a nodule outside its volume stops the run at once,
listing every problem found, instead of failing hours later.  Writes the scan table
(``scans.tsv``) and a JSON report.

Usage: ``python -m ctpatch.check_luna --settings-file check.json --subsets subset0 subset1
--scans-out scans.tsv --report-out report.json``

Only folders named ``subset<N>`` are subsets; other ``subset*`` folders (``subset0_old``) are
listed in a warning and otherwise ignored (:func:`subset_folders`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.config import ConfigError, read_settings
from ctpatch.io.mhd import ScanError, check_scan
from ctpatch.io.tables import TableError, read_annotations, read_candidates
from ctpatch.store import atomic_path, write_json


class InputError(ValueError):
    """One or more unusable inputs; the message lists each with its file."""


def list_scans(root: Path, subset: str) -> list[Path]:
    folder = root / subset
    if not folder.is_dir():
        raise InputError(f"{folder}: subset folder not found")
    scans = sorted(folder.glob("*.mhd"))
    if not scans:
        raise InputError(f"{folder}: subset folder has no .mhd scans")
    return scans


SUBSET_NAME = re.compile(r"subset[0-9]+")


def subset_folders(root: str | Path) -> tuple[list[str], list[str]]:
    """(the ``subset<N>`` folders of ``root`` sorted by N, other folders whose names start with ``subset``).

    The second list is for a warning: ``subset0_old`` or ``subset_extra`` is not a subset.
    """
    root = Path(root)
    names = sorted(d.name for d in root.glob("subset*") if d.is_dir()) if root.is_dir() else []
    subsets = sorted((n for n in names if SUBSET_NAME.fullmatch(n)), key=lambda n: int(n[len("subset"):]))
    return subsets, [n for n in names if not SUBSET_NAME.fullmatch(n)]


def not_subsets_warning(root: str | Path, others: list[str]) -> str:
    return (f"{root}: ignored folder(s) {', '.join(others)}: only folders named subset<N> (subset0, subset1, ...) "
            f"are LUNA16 subsets")


def all_series(root: Path) -> dict[str, str]:
    """series uid -> subset for every .mhd under any ``subset<N>`` folder of ``root`` (names only)."""
    return {p.stem: s for s in subset_folders(root)[0] for p in sorted((Path(root) / s).glob("*.mhd"))}


def check(root, subsets, annotations, candidates=None, unknown_series="fail", duplicates="fail"):
    """Check the inputs; return (scan table, report).  Raises InputError listing every problem."""
    root = Path(root)
    problems, warnings, rows = [], [], []
    others = subset_folders(root)[1]
    if others:
        warnings.append(not_subsets_warning(root, others))
    for subset in subsets:
        if not SUBSET_NAME.fullmatch(subset):
            problems.append(f"{root / subset}: not a subset folder name (expected subset<N>)")
    subsets = [s for s in subsets if SUBSET_NAME.fullmatch(s)]
    headers = {}
    for subset in subsets:
        try:
            paths = list_scans(root, subset)
        except InputError as exc:
            problems.append(str(exc))
            continue
        for path in paths:
            try:
                h = check_scan(path)
            except ScanError as exc:
                problems.append(str(exc))
                continue
            headers[h.series_uid] = (subset, h)
    try:
        ann = read_annotations(annotations, duplicates)
    except TableError as exc:
        problems.append(str(exc))
        ann = None
    dropped = ann.attrs["dropped_duplicates"] if ann is not None else []
    warnings += [f"{annotations}: row {r} is identical to row {first}: dropped (duplicate_annotations: drop)"
                 for r, first in dropped]
    known_elsewhere = all_series(root)
    n_ann = {uid: 0 for uid in headers}
    unknown, not_selected = [], 0
    if ann is not None:
        for rec in ann.itertuples(index=False):
            uid = rec.seriesuid
            if uid not in headers:
                if uid in known_elsewhere:
                    not_selected += 1
                else:
                    unknown.append(f"{annotations}: row {rec.row}: series {uid} is not among the scans under {root}")
                continue
            grid = headers[uid][1].grid
            idx = grid.world_to_index((rec.coordX, rec.coordY, rec.coordZ))
            if not grid.contains_index(np.rint(idx)):  # the same nearest-voxel rule as make_labels
                problems.append(
                    f"{annotations}: row {rec.row}: nodule centre ({rec.coordX}, {rec.coordY}, {rec.coordZ}) mm "
                    f"is outside the volume of {headers[uid][1].path} (voxel {np.round(idx, 2).tolist()} of size "
                    f"{list(grid.size)}, (x, y, z))"
                )
            n_ann[uid] += 1
    if unknown:
        (problems if unknown_series == "fail" else warnings).extend(unknown)
    if candidates is not None:
        try:
            read_candidates(candidates)
        except TableError as exc:
            problems.append(str(exc))
    if problems:
        # the first line names the first file at fault; the others follow, one a line
        raise InputError(f"{problems[0]}\n  ({len(problems)} problem(s) in the LUNA16 inputs)"
                         + "".join(f"\n  {p}" for p in problems[1:]))
    for uid, (subset, h) in sorted(headers.items(), key=lambda kv: (kv[1][0], kv[0])):
        g = h.grid
        rows.append({"subset": subset, "seriesuid": uid, "mhd": str(h.path),
                     "size_x": g.size[0], "size_y": g.size[1], "size_z": g.size[2],
                     "spacing_x": g.spacing[0], "spacing_y": g.spacing[1], "spacing_z": g.spacing[2],
                     "annotations": n_ann[uid]})
    report = {
        "root": str(root), "subsets": list(subsets), "scans": len(rows),
        "annotations_used": int(sum(n_ann.values())), "annotations_in_other_subsets": not_selected,
        "unknown_series": len(unknown), "dropped_duplicates": [list(d) for d in dropped], "warnings": warnings,
    }
    return pd.DataFrame(rows), report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.check_luna", description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings-file", required=True,
                    help="settings of scope 'check' (root, annotations, candidates, unknown_series)")
    ap.add_argument("--subsets", nargs="+", required=True)
    ap.add_argument("--scans-out", required=True)
    ap.add_argument("--report-out", required=True)
    args = ap.parse_args(argv)
    try:
        s = read_settings(args.settings_file, scope="check")
        table, report = check(s["root"], args.subsets, s["annotations"], s["candidates"], s["unknown_series"],
                              s.get("duplicate_annotations", "fail"))
    except (InputError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    with atomic_path(args.scans_out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json(args.report_out, report)
    print(f"checked {report['scans']} scans, {report['annotations_used']} annotations")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
