"""Which scans a LUNA16 run has: one definition for the workflow's parse step and every tool.

The workflow (``common.smk``, at parse time, to know its jobs), the pre-flight check
(:mod:`ctpatch.luna16.check`), the plan (:mod:`ctpatch.report.plan`) and ``explain`` all find their inputs
here, from file and folder names only (no header is read): the ``subset<N>`` folders of
``luna16.root`` and the ``<seriesuid>.mhd`` files in them, or, for ``root: demo``, the scans
:func:`ctpatch.luna16.demo.plan_scans` will write.  Other ``subset*`` folders (``subset0_old``) are
not subsets: they are listed in a warning.

Series uids become file and job names, so they must be digits and dots; anything else is refused
naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ctpatch.io.folders import DiscoveryError, under
from ctpatch.settings.types import Config

SUBSET_NAME = re.compile(r"subset[0-9]+")
SERIES_UID = re.compile(r"[0-9.]+")


@dataclass(frozen=True)
class Found:
    """What :func:`luna16_scans` found: subset -> sorted series uids, and warnings to show."""

    scans: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)


def subset_number(name: str) -> int:
    """The N of ``subset<N>``.

    >>> subset_number("subset10")
    10
    """
    return int(name[len("subset") :])


def subset_folders(root: str | Path) -> tuple[list[str], list[str]]:
    """(the ``subset<N>`` folders of ``root`` sorted by N, other folders whose names start with ``subset``).

    The second list is for a warning: ``subset0_old`` or ``subset_extra`` is not a subset.
    """
    root = Path(root)
    names = sorted(d.name for d in root.glob("subset*") if d.is_dir()) if root.is_dir() else []
    subsets = sorted((n for n in names if SUBSET_NAME.fullmatch(n)), key=subset_number)
    return subsets, [n for n in names if not SUBSET_NAME.fullmatch(n)]


def not_subsets_warning(root: str | Path, others: list[str]) -> str:
    """The warning for ``subset*`` folders that are not ``subset<N>``."""
    return (
        f"{root}: ignored folder(s) {', '.join(others)}: only folders named subset<N> (subset0, subset1, ...) "
        f"are LUNA16 subsets"
    )


def all_series(root: str | Path) -> dict[str, str]:
    """series uid -> subset for every .mhd under any ``subset<N>`` folder of ``root`` (names only)."""
    return {p.stem: s for s in subset_folders(root)[0] for p in sorted((Path(root) / s).glob("*.mhd"))}


def luna16_scans(config: Config, workdir: str | Path = ".") -> Found:
    """The LUNA16 scans of a config (typed, :class:`ctpatch.settings.types.Config`): subset -> sorted series
    uids, for the wanted subsets.

    ``luna16.subsets`` (empty: every ``subset<N>`` found) selects the subsets; a wanted subset
    without scans maps to ``[]`` (the pre-flight check names it).  Relative roots start at ``workdir``.

    Raises
    ------
    DiscoveryError
        A missing root, no subset at all, a scan file name that is not a series uid, or one scan in two
        subsets.
    """
    luna = config.luna16
    warnings: list[str] = []
    if luna.root == "demo":
        from ctpatch.luna16.demo import plan_scans

        scans: dict[str, list[str]] = {}
        for plan in plan_scans(config.demo, config.seed):
            scans.setdefault(plan.subset, []).append(plan.series_uid)
        where = f"{config.results}/demo/luna16"
    else:
        root = under(luna.root, workdir)
        where = str(root)
        if not root.is_dir():
            raise DiscoveryError(f"luna16.root: folder {root} not found")
        subsets, others = subset_folders(root)
        if others:
            warnings.append(not_subsets_warning(root, others))
        scans = {s: [p.stem for p in (root / s).glob("*.mhd")] for s in subsets}
        seen: dict[str, str] = {}
        for s in subsets:  # a scan in two subsets would leak between the folds they are
            for uid in sorted(scans[s]):
                if uid in seen:
                    raise DiscoveryError(
                        f"luna16.root: series {uid} is in two subsets: {root / seen[uid] / uid}.mhd and "
                        f"{root / s / uid}.mhd (one scan, one fold: remove one copy)"
                    )
                seen[uid] = s
        odd = [f"{root / s / uid}.mhd" for s in scans for uid in scans[s] if not SERIES_UID.fullmatch(uid)]
        if odd:  # series uids become file and job names: only digits and dots, as DICOM uids are
            raise DiscoveryError(
                f"luna16.root: {len(odd)} scan file name(s) are not a series uid (digits and dots): "
                + ", ".join(repr(o) for o in odd[:5])
            )
    wanted = list(luna.subsets) or sorted(scans, key=subset_number)
    if not wanted:
        raise DiscoveryError(f"luna16.root: no subsetK folders under {where}")
    return Found({s: sorted(scans.get(s, [])) for s in wanted}, warnings)
