"""Free disk space before work: a run that cannot fit its output stops before it starts.

The plan (``ctpatch.report.plan``) estimates each group's patch file(s) (``estimated_file_bytes`` in its
JSON); the extraction writes them once, chunk by chunk at their final rows, with no second copy
beside them, so an extraction needs about one copy of that on the results disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


class DiskSpaceError(OSError):
    """Not enough free space; the message names the folder, the need and what is free."""


def _existing(folder: Path) -> Path:
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def human(n: float) -> str:
    """Bytes as a short figure.

    >>> human(1536), human(3 * 1024**3)
    ('1.5 KiB', '3.0 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_free(folder: str | Path, need: int, what: str) -> int:
    """Raise DiskSpaceError unless the disk holding ``folder`` has ``need`` bytes free; return the free bytes."""
    free = shutil.disk_usage(_existing(Path(folder))).free
    if free < need:
        raise DiskSpaceError(
            f"{folder}: not enough free disk space: {what} needs about {human(need)} "
            f"({need} bytes), {human(free)} ({free} bytes) free"
        )
    return free


def extraction_need(plan_json: str | Path, group: str) -> int:
    """Bytes an extraction of ``group`` needs: its patch file(s), written once (the plan's estimate)."""
    plan = json.loads(Path(plan_json).read_text())
    try:
        estimate = plan["groups"][group]["estimated_file_bytes"]
    except KeyError:
        raise ValueError(f"{plan_json}: no estimated_file_bytes for group {group!r}") from None
    return int(estimate or 0)
