"""LUNA16 CSV tables (annotations.csv, candidates.csv) read with checks.

A malformed table stops the run with the file, the row (1-based, header = row 1) and what is
wrong, instead of producing patches from half a table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")


class TableError(ValueError):
    """A CSV table that cannot be used; the message names the file, the row and the problem."""


def _read(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype={"seriesuid": str}, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TableError(f"{path}: expected columns {list(columns)}, missing {missing} (found {list(df.columns)})")
    df = df[list(columns)].copy()
    for col in columns[1:]:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)))
        if bad.size:
            row = int(bad[0])
            raise TableError(
                f"{path}: row {row + 2}: expected a number in column {col!r}, got {df[col].iloc[row]!r}"
                + (f" ({bad.size} bad rows)" if bad.size > 1 else "")
            )
        df[col] = values.astype(float)
    empty = np.flatnonzero(df["seriesuid"].isna().to_numpy() | (df["seriesuid"].astype(str).str.strip() == ""))
    if empty.size:
        raise TableError(f"{path}: row {int(empty[0]) + 2}: empty seriesuid")
    df["seriesuid"] = df["seriesuid"].astype(str).str.strip()
    df.insert(0, "row", np.arange(len(df)) + 2)
    return df.reset_index(drop=True)


DUPLICATES = ("fail", "drop")


def duplicate_rows(df: pd.DataFrame, columns) -> list[tuple[int, int]]:
    """(row, row of its first copy) for every row identical to an earlier one in ``columns``.

    >>> t = pd.DataFrame({"row": [2, 3, 4], "a": ["u", "v", "u"], "b": [1.0, 2.0, 1.0]})
    >>> duplicate_rows(t, ["a", "b"])
    [(4, 2)]
    """
    key = df[list(columns)].astype(str).agg("\x1f".join, axis=1)  # repr of each value: 1.0 == 1 but not 1.0001
    first = {}
    out = []
    for k, row in zip(key, df["row"]):
        if k in first:
            out.append((int(row), first[k]))
        else:
            first[k] = int(row)
    return out


def read_csv_rows(path: str | Path) -> pd.DataFrame:
    """Every row of annotations.csv, duplicates included (for the accounting of dropped rows)."""
    return _read(path, ANNOTATION_COLUMNS)


def read_annotations(path: str | Path, duplicates: str) -> pd.DataFrame:
    """``annotations.csv`` with a ``row`` column (line number in the file) added first.

    Identical rows (same series, centre and diameter) would give identical patches twice:
    ``duplicates="fail"`` raises naming both line numbers; ``"drop"`` keeps the first copy and lists
    the dropped ones as ``(row, first row)`` in ``df.attrs["dropped_duplicates"]``.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"Expected duplicates in {DUPLICATES}, got {duplicates!r}")
    df = _read(path, ANNOTATION_COLUMNS)
    bad = np.flatnonzero(df["diameter_mm"].to_numpy() <= 0)
    if bad.size:
        raise TableError(
            f"{path}: row {int(df['row'][bad[0]])}: expected diameter_mm > 0, got {df['diameter_mm'][bad[0]]}"
        )
    dups = duplicate_rows(df, ANNOTATION_COLUMNS)
    if dups and duplicates == "fail":
        row, first = dups[0]
        more = f" ({len(dups)} duplicate rows in all)" if len(dups) > 1 else ""
        raise TableError(
            f"{path}: row {row} is identical to row {first}{more}: it would duplicate that nodule's "
            f"patches (luna16.duplicate_annotations: drop keeps the first copy)"
        )
    if dups:
        df = df[~df["row"].isin([r for r, _ in dups])].reset_index(drop=True)
    df.attrs["dropped_duplicates"] = dups
    return df


def overlapping_nodules(ann: pd.DataFrame) -> dict[int, list[int]]:
    """row -> rows of the same scan whose annotation spheres overlap it (centre distance < sum of radii, mm).

    >>> t = pd.DataFrame({"row": [2, 3, 4], "seriesuid": ["a", "a", "b"], "coordX": [0.0, 5.0, 0.0],
    ...                   "coordY": [0.0] * 3, "coordZ": [0.0] * 3, "diameter_mm": [6.0, 6.0, 6.0]})
    >>> overlapping_nodules(t)
    {2: [3], 3: [2]}
    """
    out: dict[int, list[int]] = {}
    for _, scan in ann.groupby("seriesuid", sort=False):
        xyz = scan[["coordX", "coordY", "coordZ"]].to_numpy(dtype=float)
        r = scan["diameter_mm"].to_numpy(dtype=float) / 2.0
        rows = scan["row"].to_numpy()
        d = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=2)
        hit = (d < r[:, None] + r[None, :]) & ~np.eye(len(rows), dtype=bool)
        for i in np.flatnonzero(hit.any(axis=1)):
            out[int(rows[i])] = [int(v) for v in rows[hit[i]]]
    return out


def read_candidates(path: str | Path) -> pd.DataFrame:
    """``candidates.csv`` with a ``row`` column; ``class`` must be 0 or 1."""
    df = _read(path, CANDIDATE_COLUMNS)
    bad = np.flatnonzero(~df["class"].isin([0, 1]).to_numpy())
    if bad.size:
        raise TableError(f"{path}: row {int(df['row'][bad[0]])}: expected class 0 or 1, got {df['class'][bad[0]]}")
    df["class"] = df["class"].astype(int)
    return df
