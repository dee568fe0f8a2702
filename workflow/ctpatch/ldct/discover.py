"""Which patients an LDCT run has, from folder names only (no header is read).

The folders of ``ldct.root`` that hold the input (low-dose) folder, or ``ldct.patients``.  Patient ids
become file and job names, so a folder name must be letters, digits, ``_``, ``.`` or ``-``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ctpatch.io.folders import DiscoveryError, under
from ctpatch.settings.types import Config

#: a patient id: letters, digits, ``_``, ``.``, ``-``, not starting with ``-`` or ``.`` (an option, a hidden file)
PATIENT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def ldct_patients(config: Config, workdir: str | Path = ".") -> list[str]:
    """The LDCT patients of a validated config: ``ldct.patients``, or every folder of ``ldct.root``
    holding the input folder, sorted.

    Raises
    ------
    DiscoveryError
        A missing root, a listed patient without the input folder, no patient, or a folder name
        that cannot be a job name (unless ``ldct.patients`` leaves it out).
    """
    ldct = config.ldct
    root = under(ldct.root, workdir)
    if not root.is_dir():
        raise DiscoveryError(f"ldct.root: folder {root} not found")
    found = sorted(d.name for d in root.iterdir() if (d / ldct.input_dir).is_dir())
    odd = [p for p in found if not PATIENT_ID.fullmatch(p)]
    if odd and not ldct.patients:  # patient ids become file and job names
        raise DiscoveryError(
            f"ldct.root: patient folder name(s) {odd} under {root} are not letters, digits, '_', "
            f"'.', '-', starting with a letter, digit or '_' (rename them, or list the patients to use in ldct.patients)"
        )
    wanted = list(ldct.patients) or found
    missing = [p for p in wanted if p not in found]
    if missing:
        raise DiscoveryError(f"ldct.patients: {missing} have no folder {ldct.input_dir!r} under {root}")
    if not wanted:
        raise DiscoveryError(f"ldct.root: no patient folder under {root} holds a {ldct.input_dir!r} folder")
    return wanted
