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


def read_annotations(path: str | Path) -> pd.DataFrame:
    """``annotations.csv`` with a ``row`` column (line number in the file) added first."""
    df = _read(path, ANNOTATION_COLUMNS)
    bad = np.flatnonzero(df["diameter_mm"].to_numpy() <= 0)
    if bad.size:
        raise TableError(f"{path}: row {int(df['row'][bad[0]])}: expected diameter_mm > 0, got {df['diameter_mm'][bad[0]]}")
    return df


def read_candidates(path: str | Path) -> pd.DataFrame:
    """``candidates.csv`` with a ``row`` column; ``class`` must be 0 or 1."""
    df = _read(path, CANDIDATE_COLUMNS)
    bad = np.flatnonzero(~df["class"].isin([0, 1]).to_numpy())
    if bad.size:
        raise TableError(f"{path}: row {int(df['row'][bad[0]])}: expected class 0 or 1, got {df['class'][bad[0]]}")
    df["class"] = df["class"].astype(int)
    return df
