"""Which scans and patients a run has: one definition for the workflow's parse step and every tool.

The workflow (``common.smk``, at parse time, to know its jobs), the pre-flight check
(:mod:`ctpatch.check_luna`), the plan (:mod:`ctpatch.plan`) and ``explain`` all find their inputs
here, from file and folder names only (no header is read):

* LUNA16: the ``subset<N>`` folders of ``luna16.root`` and the ``<seriesuid>.mhd`` files in them,
  or, for ``root: demo``, the scans :func:`ctpatch.demo.plan_scans` will write.  Other ``subset*``
  folders (``subset0_old``) are not subsets: they are listed in a warning.
* LDCT: the folders of ``ldct.root`` that hold the input (low-dose) folder, or ``ldct.patients``.

Names become file and job names, so a series uid must be digits and dots and a patient id
letters, digits, ``_``, ``.`` or ``-``; anything else is refused naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SUBSET_NAME = re.compile(r"subset[0-9]+")
SERIES_UID = re.compile(r"[0-9.]+")
PATIENT_ID = re.compile(r"[A-Za-z0-9_.-]+")


class DiscoveryError(ValueError):
    """No usable input under a configured root; the message names the key and the folder."""


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


def under(path: str | Path, workdir: str | Path) -> Path:
    """``path`` as the workflow sees it: absolute as given, relative ones start at ``workdir``."""
    path = Path(path)
    return path if path.is_absolute() else Path(workdir) / path


def luna16_scans(config: Mapping, workdir: str | Path = ".") -> Found:
    """The LUNA16 scans of a validated config: subset -> sorted series uids, for the wanted subsets.

    ``luna16.subsets`` (empty: every ``subset<N>`` found) selects the subsets; a wanted subset
    without scans maps to ``[]`` (the pre-flight check names it).  Relative roots start at ``workdir``.

    Raises
    ------
    DiscoveryError
        A missing root, no subset at all, or a scan file name that is not a series uid.
    """
    luna = config["luna16"]
    warnings: list[str] = []
    if luna["root"] == "demo":
        from ctpatch.demo import plan_scans

        scans: dict[str, list[str]] = {}
        for plan in plan_scans(config["demo"], config["seed"]):
            scans.setdefault(plan.subset, []).append(plan.series_uid)
        where = f"{config['results']}/demo/luna16"
    else:
        root = under(luna["root"], workdir)
        where = str(root)
        if not root.is_dir():
            raise DiscoveryError(f"luna16.root: folder {root} not found")
        subsets, others = subset_folders(root)
        if others:
            warnings.append(not_subsets_warning(root, others))
        scans = {s: [p.stem for p in (root / s).glob("*.mhd")] for s in subsets}
        odd = [f"{root / s / uid}.mhd" for s in scans for uid in scans[s] if not SERIES_UID.fullmatch(uid)]
        if odd:  # series uids become file and job names: only digits and dots, as DICOM uids are
            raise DiscoveryError(
                f"luna16.root: {len(odd)} scan file name(s) are not a series uid (digits and dots): "
                + ", ".join(repr(o) for o in odd[:5])
            )
    wanted = list(luna["subsets"]) or sorted(scans, key=subset_number)
    if not wanted:
        raise DiscoveryError(f"luna16.root: no subsetK folders under {where}")
    return Found({s: sorted(scans.get(s, [])) for s in wanted}, warnings)


def ldct_patients(config: Mapping, workdir: str | Path = ".") -> list[str]:
    """The LDCT patients of a validated config: ``ldct.patients``, or every folder of ``ldct.root``
    holding the input folder, sorted.

    Raises
    ------
    DiscoveryError
        A missing root, a listed patient without the input folder, no patient, or a folder name
        that cannot be a job name (unless ``ldct.patients`` leaves it out).
    """
    ldct = config["ldct"]
    root = under(ldct["root"], workdir)
    if not root.is_dir():
        raise DiscoveryError(f"ldct.root: folder {root} not found")
    found = sorted(d.name for d in root.iterdir() if (d / ldct["input_dir"]).is_dir())
    odd = [p for p in found if not PATIENT_ID.fullmatch(p)]
    if odd and not ldct["patients"]:  # patient ids become file and job names
        raise DiscoveryError(
            f"ldct.root: patient folder name(s) {odd} under {root} are not letters, digits, '_', "
            f"'.', '-' (rename them, or list the patients to use in ldct.patients)"
        )
    wanted = list(ldct["patients"]) or found
    missing = [p for p in wanted if p not in found]
    if missing:
        raise DiscoveryError(f"ldct.patients: {missing} have no folder {ldct['input_dir']!r} under {root}")
    if not wanted:
        raise DiscoveryError(f"ldct.root: no patient folder under {root} holds a {ldct['input_dir']!r} folder")
    return wanted
