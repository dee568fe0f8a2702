"""What every command-line step shares: a failed write is one line naming the file, not a traceback.

A full disk, a read-only results folder or a missing permission surface as ``OSError`` deep in
numpy, pandas or h5py; :func:`run_cli` turns it into ``error: <file>: <reason>`` and exit status 1.
The temp-then-rename writes (:func:`ctpatch.store.atomic_path`) have already removed their temp
file by then, so nothing that looks finished is left.
"""

from __future__ import annotations

import sys


def describe(exc: OSError) -> str:
    """``<file>: <reason>`` of an OSError (h5py's carry no file name: their message is kept)."""
    name = exc.filename if exc.filename is not None else ""
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    return f"{name}: {reason}" if name else reason


def run_cli(main, argv=None) -> int:
    """Call ``main(argv)``; an OSError becomes one ``error:`` line on stderr and status 1."""
    try:
        return main(argv)
    except OSError as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1
