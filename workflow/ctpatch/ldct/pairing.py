"""The slice-pair table of one LDCT patient (SPEC section 2, "Input" and step 7 ``random_n``).

Reads the DICOM headers (never the pixels) of the patient's input (low-dose) and target
(full-dose) folders, pairs them with :func:`ctpatch.io.dicom.pair_slices` and writes

* a TSV table, one row per pair, in slice order (ascending z; see ``pair_slices``) with the
  columns :data:`TABLE_COLUMNS`:

  ==============  ==========================================================================
  ``patient``     the patient folder's name (e.g. ``L096``)
  ``pair_index``  0, 1, ... in slice order (within this patient)
  ``input_path``  the low-dose file (absolute path, symbolic links kept)
  ``target_path`` the full-dose file (absolute path)
  ``slice_z``     z of ImagePositionPatient in mm (empty when the slices carry none)
  ``instance``    InstanceNumber of the input slice (empty when absent)
  ``rows``        image rows (the partners agree: ``pair_slices`` checks it)
  ``cols``        image columns
  ``selected``    ``True`` for the pairs the extraction uses (``random_n``)
  ==============  ==========================================================================

* a JSON report: the counts (files per folder, pairs, problems, selected), the options and the
  problems (dropped slices and why, with their file names) when ``--on-error drop``.

``random_n`` (reference: 7): ``N > 0`` selects ``N`` pairs of this patient uniformly without
replacement with ``keyed_rng(seed, patient, "random_n")``; ``N = 0`` or ``N >= `` the number of
pairs selects all.  The selection depends on the seed, the patient name and the number of
pairs only, so it is reproducible and independent of the file system's listing order.

Every regular, non-hidden file of the two folders is taken as a slice; a file that is not
DICOM is a problem like any other (``on_error: fail`` stops, ``drop`` reports and skips it).
Errors (a missing folder, pairing problems with ``fail``, no pair left) exit with status 1 and
a message naming the files; nothing is written then.  Both outputs are written through a
temporary name and renamed when complete.

Usage: ``python -m ctpatch.ldct.pairing --patient-dir data/L096 --settings-file pairs.json
--table-out L096.pairs.tsv --report-out L096.pairs.json`` (a settings file of scope ``pairs``,
:mod:`ctpatch.settings`: ``input_dir``, ``target_dir``, ``pair_by``, ``on_error``, ``random_n``, ``seed``).
Several patients in one process: ``--patient-dir data/L096 data/L143 --table-out L096.tsv L143.tsv
--report-out L096.json L143.json`` (one table and report per patient, in the same order, named after
it); every patient is paired even after one failed, so one run names every bad patient.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.rng import keyed_rng
from ctpatch.io.dicom import SlicePair, pair_slices
from ctpatch.settings import ConfigError, read_settings
from ctpatch.store.atomic import atomic_path, write_json
from ctpatch.store.identity import file_digest

TABLE_COLUMNS = [
    "patient",
    "pair_index",
    "input_path",
    "target_path",
    "slice_z",
    "instance",
    "rows",
    "cols",
    "selected",
    "input_series",
    "target_series",
    "input_sha256",
    "target_sha256",
]


class PairingError(ValueError):
    """Slices that cannot be paired; the message names the folders and files."""


def slice_files(folder: Path) -> list[Path]:
    """The regular, non-hidden files of ``folder``, sorted by name."""
    if not folder.is_dir():
        raise PairingError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise PairingError(f"{folder}: no slice files")
    return files


def select_random_n(patient: str, count: int, n: int, seed: int) -> np.ndarray:
    """Boolean mask of the pairs used: ``n`` of ``count`` drawn with ``keyed_rng(seed, patient, "random_n")``.

    ``n = 0`` or ``n >= count`` selects all.

    >>> int(select_random_n("L096", 10, 3, 0).sum()), bool(select_random_n("L096", 4, 0, 0).all())
    (3, True)
    """
    if n < 0:
        raise ValueError(f"Expected random_n >= 0, got random_n={n!r}")
    mask = np.ones(count, dtype=bool)
    if 0 < n < count:
        mask[:] = False
        mask[keyed_rng(seed, patient, "random_n").choice(count, size=n, replace=False)] = True
    return mask


def pair_table(patient: str, pairs: list[SlicePair], selected: np.ndarray) -> pd.DataFrame:
    """The pair table (columns :data:`TABLE_COLUMNS`) of one patient's pairs, in the given order; each pair
    with its two series uids and the sha256 of both files (what the patch files record of it)."""
    rows = [
        {
            "patient": patient,
            "pair_index": i,
            "input_path": os.path.abspath(p.input.path),
            "target_path": os.path.abspath(p.target.path),
            "slice_z": np.nan if p.position_z is None else float(p.position_z),
            "instance": pd.NA if p.instance is None else int(p.instance),
            "rows": int(p.input.rows),
            "cols": int(p.input.cols),
            "selected": bool(selected[i]),
            "input_series": p.input.series or "",
            "target_series": p.target.series or "",
            "input_sha256": file_digest(p.input.path),
            "target_sha256": file_digest(p.target.path),
        }
        for i, p in enumerate(pairs)
    ]
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    df["instance"] = df["instance"].astype("Int64")
    return df


def build(
    patient_dir, input_dir: str, target_dir: str, by: str, on_error: str, random_n: int, seed: int
) -> tuple[pd.DataFrame, dict]:
    """The pair table and the report of one patient (nothing written)."""
    patient_dir = Path(patient_dir)
    patient = Path(os.path.abspath(patient_dir)).name
    in_folder, tg_folder = patient_dir / input_dir, patient_dir / target_dir
    inputs, targets = slice_files(in_folder), slice_files(tg_folder)
    try:
        pairs, problems = pair_slices(inputs, targets, by=by, on_error=on_error)
    except ValueError as exc:
        raise PairingError(f"patient {patient} ({in_folder} vs {tg_folder}): {exc}") from None
    if not pairs:
        raise PairingError(
            f"patient {patient}: no slice pair left between {in_folder} and {tg_folder}"
            + (":\n" + "\n".join(f"- {m}" for m in problems) if problems else "")
        )
    selected = select_random_n(patient, len(pairs), random_n, seed)
    table = pair_table(patient, pairs, selected)
    report = {
        "patient": patient,
        "input_dir": os.path.abspath(in_folder),
        "target_dir": os.path.abspath(tg_folder),
        "by": by,
        "on_error": on_error,
        "random_n": int(random_n),
        "seed": int(seed),
        "counts": {
            "input_files": len(inputs),
            "target_files": len(targets),
            "pairs": len(pairs),
            "problems": len(problems),
            "selected": int(selected.sum()),
        },
        "selected": int(selected.sum()),
        "problems": problems,
    }
    return table, report


def write_table(path, table: pd.DataFrame) -> None:
    """Write a pair table as TSV through a temporary name."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def pair_patient(patient_dir, settings, table_out, report_out) -> int:
    """Pair one patient and write its table and report; 1 (nothing written) on an error, reported in one line."""
    s = settings
    try:
        table, report = build(
            patient_dir, s["input_dir"], s["target_dir"], s["pair_by"], s["on_error"], s["random_n"], s["seed"]
        )
    except PairingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_table(table_out, table)
    write_json(report_out, report)
    c = report["counts"]
    print(f"{report['patient']}: {c['pairs']} pairs ({c['selected']} selected), {c['problems']} problems")
    return 0


def main(argv=None) -> int:
    """``python -m ctpatch.ldct.pairing`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    from ctpatch.cli import per_group, run_each

    ap = argparse.ArgumentParser(prog="python -m ctpatch.ldct.pairing", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--patient-dir", nargs="+", required=True, help="the patient folder(s) (a folder's name is the patient id)"
    )
    ap.add_argument(
        "--settings-file",
        required=True,
        help="settings of scope 'pairs' (input_dir, target_dir, pair_by, on_error, random_n, seed)",
    )
    ap.add_argument("--table-out", nargs="+", required=True, help="one pair table per patient, in the same order")
    ap.add_argument("--report-out", nargs="+", required=True, help="one report per patient, in the same order")
    args = ap.parse_args(argv)
    patients = [Path(os.path.abspath(d)).name for d in args.patient_dir]
    try:
        tables = per_group(patients, args.table_out, "--table-out", each=1)
        reports = per_group(patients, args.report_out, "--report-out", each=1)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        settings = read_settings(args.settings_file, scope="pairs")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    jobs = list(zip(args.patient_dir, tables, reports))
    return run_each(jobs, lambda job: pair_patient(job[0], settings, job[1][0], job[2][0]))


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
