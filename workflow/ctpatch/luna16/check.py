"""Pre-flight check of a LUNA16 folder: every header, every data file size, every annotation.

Runs before any conversion so that a missing ``.raw``, a truncated volume, a subset with no
scans, an annotation for an unknown scan or a nodule outside its volume stops the run at once,
listing every problem found, instead of failing hours later.  Writes the scan table
(``scans.tsv``) and a JSON report.

Usage: ``python -m ctpatch.luna16.check --settings-file check.json --subsets subset0 subset1
--scans-out scans.tsv --report-out report.json``

Only folders named ``subset<N>`` are subsets; other ``subset*`` folders (``subset0_old``) are
listed in a warning and otherwise ignored (:func:`ctpatch.luna16.discover.subset_folders`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.io.mhd import ScanError, check_scan
from ctpatch.io.tables import TableError, read_annotations, read_candidates
from ctpatch.luna16.discover import SUBSET_NAME, all_series, not_subsets_warning, subset_folders
from ctpatch.settings import ConfigError, defaults, read_settings
from ctpatch.settings.types import Plausibility, build
from ctpatch.store.atomic import atomic_path, write_json


class InputError(ValueError):
    """One or more unusable inputs; the message lists each with its file."""


def list_scans(root: Path, subset: str) -> list[Path]:
    """The ``.mhd`` files of one subset folder, sorted; InputError naming a missing or empty folder."""
    folder = root / subset
    if not folder.is_dir():
        raise InputError(f"{folder}: subset folder not found")
    scans = sorted(folder.glob("*.mhd"))
    if not scans:
        raise InputError(f"{folder}: subset folder has no .mhd scans")
    return scans


def middle_slice_problems(header, plausibility: Plausibility | None, window) -> str | None:
    """The plausibility problems of a scan's middle slice (ctpatch.luna16.plausible), or None.

    One slice (0.5 MB for LUNA16) shows a header that reads the right bytes the wrong way (a
    signed scan under MET_USHORT, a swapped byte order) before any scan is converted; the
    conversion checks every voxel again.  Compressed (.zraw) scans are left to the conversion.
    """
    from ctpatch.io.mhd import read_slice
    from ctpatch.luna16.plausible import check as check_plausible

    if plausibility is None or not plausibility.enabled:
        return None
    k = header.grid.size[2] // 2
    values = read_slice(header, k)
    if values is None:
        return None
    _, bad = check_plausible(values, window[0], window[1], plausibility)
    if not bad:
        return None
    return (
        f"{header.path}: implausible CT values in its middle slice (z index {k}, ElementType "
        f"{header.element_type}): " + "; ".join(bad) + " -- check the header, or relax luna16.plausibility"
    )


def check(
    root,
    subsets,
    annotations,
    candidates: str | None,
    unknown_series: str,
    duplicates: str,
    plausibility: Plausibility | None,
    window: tuple[float, float] | None,
):
    """Check the inputs; return (scan table, report).  Raises InputError listing every problem.

    ``candidates``: candidates.csv when the negatives come from it, else None; ``unknown_series`` and
    ``duplicates``: ``luna16.unknown_series`` and ``luna16.duplicate_annotations``.  With
    ``plausibility`` (the ``luna16.plausibility`` settings; None: not checked) the middle slice of every
    uncompressed scan is checked too (:func:`middle_slice_problems`; ``window`` is the normalization's
    (hu_min, hu_max)).
    """
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
            implausible = middle_slice_problems(h, plausibility, window)
            if implausible:
                problems.append(implausible)
                continue
            if h.series_uid in headers:  # the same scan in two folds would leak between them
                problems.append(
                    f"{h.path}: series {h.series_uid} is in two subsets: {headers[h.series_uid][1].path} and {h.path}"
                )
                continue
            headers[h.series_uid] = (subset, h)
    try:
        ann = read_annotations(annotations, duplicates)
    except TableError as exc:
        problems.append(str(exc))
        ann = None
    dropped = ann.attrs["dropped_duplicates"] if ann is not None else []
    warnings += [
        f"{annotations}: row {r} is identical to row {first}: dropped (duplicate_annotations: drop)"
        for r, first in dropped
    ]
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
        # one line, not one per row: a root with some subsets and the full annotations.csv is the usual cause
        summary = (
            f"{annotations}: {len(unknown)} annotation row(s) name series with no scan under {root} "
            f"(e.g. {unknown[0].split(': ', 1)[1]}); the subsets holding them are probably not downloaded: "
            f"set luna16.unknown_series: warn to use the annotations of the scans you have"
        )
        (problems if unknown_series == "fail" else warnings).append(summary)
    if ann is not None and not any(n_ann.values()) and not problems:
        problems.append(
            f"{annotations}: no annotation row (only a header): no nodule patches, and so no negatives, would be cut"
            if not len(ann)
            else f"{annotations}: none of its {len(ann)} rows names a scan of subsets {list(subsets)}: "
            f"the patch files would be empty"
        )
    if candidates is not None:
        try:
            read_candidates(candidates)
        except TableError as exc:
            problems.append(str(exc))
    if problems:
        # the first line names the first file at fault; the others follow, one a line
        raise InputError(
            f"{problems[0]}\n  ({len(problems)} problem(s) in the LUNA16 inputs)"
            + "".join(f"\n  {p}" for p in problems[1:])
        )
    for uid, (subset, h) in sorted(headers.items(), key=lambda kv: (kv[1][0], kv[0])):
        g = h.grid
        rows.append(
            {
                "subset": subset,
                "seriesuid": uid,
                "mhd": str(h.path),
                "size_x": g.size[0],
                "size_y": g.size[1],
                "size_z": g.size[2],
                "spacing_x": g.spacing[0],
                "spacing_y": g.spacing[1],
                "spacing_z": g.spacing[2],
                "annotations": n_ann[uid],
            }
        )
    report = {
        "root": str(root),
        "subsets": list(subsets),
        "scans": len(rows),
        "annotations_used": int(sum(n_ann.values())),
        "annotations_in_other_subsets": not_selected,
        "unknown_series": len(unknown),
        "dropped_duplicates": [list(d) for d in dropped],
        "warnings": warnings,
    }
    return pd.DataFrame(rows), report


def main(argv=None) -> int:
    """``python -m ctpatch.luna16.check`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.check", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--settings-file",
        required=True,
        help="settings of scope 'check' (root, annotations, candidates, duplicate policy)",
    )
    ap.add_argument(
        "--run-settings-file",
        help="settings of scope 'run' (unknown_series, plausibility and its window; default: the schema's)",
    )
    ap.add_argument("--subsets", nargs="+", required=True)
    ap.add_argument("--scans-out", required=True)
    ap.add_argument("--report-out", required=True)
    args = ap.parse_args(argv)
    try:
        s = read_settings(args.settings_file, scope="check")
        run = read_settings(args.run_settings_file, scope="run") if args.run_settings_file else defaults("run")
        table, report = check(
            s["root"],
            args.subsets,
            s["annotations"],
            s["candidates"],
            run["unknown_series"],
            s["duplicate_annotations"],
            build(Plausibility, run["plausibility"]),
            (run["normalize"]["hu_min"], run["normalize"]["hu_max"]),
        )
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
