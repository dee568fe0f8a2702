"""Input folders as the workflow sees them, and the error of a configured root without usable input."""

from __future__ import annotations

from pathlib import Path


class DiscoveryError(ValueError):
    """No usable input under a configured root; the message names the key and the folder."""


def under(path: str | Path, workdir: str | Path) -> Path:
    """``path`` as the workflow sees it: absolute as given, relative ones start at ``workdir``."""
    path = Path(path)
    return path if path.is_absolute() else Path(workdir) / path
