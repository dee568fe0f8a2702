"""Cross-validation folds that never split a scan (LUNA16) or a patient (LDCT), and their check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ctpatch.core.rng import keyed_rng
from ctpatch.readers.contract import KINDS, MODE_KINDS, file_mode
from ctpatch.readers.dataset import PatchDataset
from ctpatch.readers.selection import as_paths
from ctpatch.store.h5 import h5py

#: what a fold keeps apart, per mode: (provenance field, what it is called in messages)
FOLD_UNIT = {"luna16": ("seriesuid", "scan"), "ldct": ("patient", "patient")}


@dataclass(frozen=True)
class Fold:
    """Patches of whole subsets (LUNA16) or whole patients (LDCT).

    ``rows`` maps ``(path, kind)`` to the file rows of the fold; ``groups`` names the subsets or
    patients in it.  ``fold.dataset(...)`` is a :class:`PatchDataset` of exactly those rows.
    """

    name: str
    mode: str
    groups: tuple[str, ...]
    rows: Mapping = field(repr=False)

    @property
    def paths(self) -> list[str]:
        """The files this fold reads from, in first-use order."""
        return list(dict.fromkeys(p for p, _ in self.rows))

    def __len__(self) -> int:
        return int(sum(len(r) for r in self.rows.values()))

    def dataset(self, kind=None, layout: str | None = None, **options) -> PatchDataset:
        """A :class:`PatchDataset` of the fold's rows (``options``: its ``items``, ``transform``)."""
        return PatchDataset(self.paths, kind=kind, layout=layout, rows=self.rows, **options)


def _subset_of(f: h5py.File, path: str) -> str:
    sub = f.attrs.get("group")
    if not sub:
        raise ValueError(f"{path}: cannot tell its LUNA16 subset: no 'group' attribute")
    return sub.decode() if isinstance(sub, bytes) else str(sub)


def _subset_key(name: str):
    m = re.fullmatch(r"subset(\d+)", name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def folds(paths, k: int | None = None, seed: int = 0) -> list[Fold]:
    """Cross-validation folds that never split a scan or a patient.

    LUNA16: one fold per subset (the file's ``group`` attribute);
    with ``k`` the subsets are dealt into ``k`` folds in subset order (subset i -> fold i mod k).
    LDCT: the patients (provenance ``patient``) are put in ``k`` folds (default: one per patient),
    in an order drawn from ``keyed_rng(seed, "folds")``, each to the fold with the fewest
    patches so far.  The result is checked with :func:`check_folds`.
    """
    paths = as_paths(paths)
    modes: set = set()
    per_group: dict = {}
    for path in paths:
        with h5py.File(path, "r") as f:
            mode = file_mode(f, path)
            modes.add(mode)
            if mode == "luna16":
                sub = _subset_of(f, path)
                for kind in MODE_KINDS[mode]:
                    n = f[KINDS[kind][2]].shape[0]
                    per_group.setdefault(sub, {})[(path, kind)] = np.arange(n, dtype=np.int64)
            else:
                table = f[KINDS["patch"][2]]
                pat = table["patient"].astype(str) if table.shape[0] else np.array([], dtype=str)
                for name in np.unique(pat):
                    per_group.setdefault(str(name), {})[(path, "patch")] = np.flatnonzero(pat == name).astype(np.int64)
    if len(modes) != 1:
        raise ValueError(f"Expected files of one mode, got {sorted(modes)} among {paths}")
    mode = modes.pop()
    groups = sorted(per_group, key=_subset_key) if mode == "luna16" else sorted(per_group)
    if not groups:
        raise ValueError(f"No patches to split in {paths}")
    k = len(groups) if k is None else int(k)
    if not 1 <= k <= len(groups):
        raise ValueError(
            f"Expected 1 <= k <= {len(groups)} (the {'subsets' if mode == 'luna16' else 'patients'} found), got k={k}"
        )
    members: list[list[str]] = [[] for _ in range(k)]
    if mode == "luna16":
        for i, g in enumerate(groups):
            members[i % k].append(g)
    else:
        sizes = [0] * k
        for g in keyed_rng(seed, "folds").permutation(groups):
            j = min(range(k), key=lambda j: (sizes[j], j))
            members[j].append(str(g))
            sizes[j] += sum(len(r) for r in per_group[str(g)].values())
    out = []
    for j, gs in enumerate(members):
        gs = sorted(gs, key=_subset_key) if mode == "luna16" else sorted(gs)
        rows: dict = {}
        for g in gs:
            for key, r in per_group[g].items():
                rows[key] = np.sort(np.concatenate([rows[key], r])) if key in rows else r
        name = gs[0] if len(gs) == 1 else f"fold{j}"
        out.append(Fold(name, mode, tuple(gs), rows))
    check_folds(out)
    return out


def train_val(fold_list: Sequence[Fold], i: int) -> tuple[Fold, Fold]:
    """(everything but fold ``i``, fold ``i``)."""
    val = fold_list[i]
    rows: dict = {}
    groups: list[str] = []
    for j, f in enumerate(fold_list):
        if j == i:
            continue
        groups += f.groups
        for key, r in f.rows.items():
            rows[key] = np.union1d(rows[key], r) if key in rows else r
    return Fold(f"not-{val.name}", val.mode, tuple(groups), rows), val


def check_folds(fold_list) -> None:
    """Raise ValueError naming the first scan (LUNA16 seriesuid) or patient (LDCT) found in two folds.

    ``fold_list``: :class:`Fold` objects, or a mapping of fold name -> patch files (whole files),
    e.g. ``{"train": [a, b], "val": [c]}``.  The check reads the provenance of the rows of each
    fold, so it holds whatever built the folds.
    """
    if isinstance(fold_list, Mapping):
        built = []
        for name, paths in fold_list.items():
            rows = {}
            for path in as_paths(paths):
                with h5py.File(path, "r") as f:
                    mode = file_mode(f, path)
                    for kind in MODE_KINDS[mode]:
                        rows[(path, kind)] = np.arange(f[KINDS[kind][2]].shape[0])
            built.append(Fold(str(name), mode, (), rows))
        fold_list = built
    seen: dict[str, tuple[int, str, str, int]] = {}
    for number, fold in enumerate(fold_list):
        for (path, kind), sel in fold.rows.items():
            mode = KINDS[kind][3]
            key, unit = FOLD_UNIT[mode]
            with h5py.File(path, "r") as f:
                ids = f[KINDS[kind][2]][key][...] if len(sel) else np.array([], dtype="S1")
            ids = ids[np.asarray(sel, dtype=np.int64)] if len(sel) else ids
            for name, first in zip(*np.unique(ids, return_index=True)):
                name = name.decode() if isinstance(name, bytes) else str(name)
                row = int(np.asarray(sel)[first])
                prev = seen.get(name)
                if prev is not None and prev[0] != number:
                    raise ValueError(
                        f"{unit} {name} is in two folds: {prev[1]!r} ({prev[2]} row {prev[3]}) and "
                        f"{fold.name!r} ({path} row {row})"
                    )
                seen.setdefault(name, (number, fold.name, path, row))
