"""What every command-line step shares: a failed write is one line naming the file, not a traceback.

A full disk, a read-only results folder or a missing permission surface as ``OSError`` deep in
numpy, pandas or h5py; :func:`run_cli` turns it into ``error: <file>: <reason>`` and exit status 1.
The temp-then-rename writes (:func:`ctpatch.store.atomic.atomic_path`) have already removed their temp
file by then, so nothing that looks finished is left.

A job over several groups (LDCT: every patient in one job) gets every group's files on its command
line, in the order of the groups: :func:`per_group` splits them per group and checks each file's
name, :func:`run_each` runs the groups one after the other in this one process.
"""

from __future__ import annotations

import sys
from pathlib import Path


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


def run_each(groups, step) -> int:
    """``step(group)`` for every group in order, in this one process (the imports are paid once, not once
    per patient), each even after one failed, so one job reports every bad group; an OSError is one
    ``error:`` line as in :func:`run_cli`.  Returns the worst status.

    >>> run_each(["a", "b"], lambda g: 1 if g == "a" else 0)
    1
    """
    status = 0
    for group in groups:
        status = max(status, run_cli(lambda _argv, g=group: step(g)) or 0)
    return status


def owner(path, names) -> str | None:
    """The name of ``names`` that the file ``path`` is named after (``<name>.<anything>``; the longest
    one when several fit), or ``None``.

    >>> owner("patches/L096.part1.h5", ["L096", "L143"]), owner("a/L0961.h5", ["L096"])
    ('L096', None)
    >>> owner("x/L096.x.h5", ["L096", "L096.x"])
    'L096.x'
    """
    name = Path(path).name
    fits = [n for n in names if name.startswith(f"{n}.")]
    return max(fits, key=len) if fits else None


def per_group(names: list[str], files: list[str], option: str, each: int | None = None) -> list[list[str]]:
    """``files`` (the words of ``option``) as one run per group: each group's files together, as many for
    every group (``each`` when given), in the order of ``names``.  With several groups every file must be
    named after its own group (``L096.h5``, ``L096.part0.h5``, ``L096.verify.json``): a file out of place
    is refused naming it, never written or read as another group's.

    >>> per_group(["L096", "L143"], ["L096.part0.h5", "L096.part1.h5", "L143.part0.h5", "L143.part1.h5"], "--out")
    [['L096.part0.h5', 'L096.part1.h5'], ['L143.part0.h5', 'L143.part1.h5']]
    >>> per_group(["L096", "L143"], ["p/L143.h5", "p/L096.h5"], "--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --out: p/L143.h5 is not named after its group L096 (expected L096.<...>: each group's files ...)
    """
    n = len(names)
    per = len(files) // n if n else 0
    if not n or not files or len(files) != n * (each or per):
        count = f"{each} file(s)" if each else "the same number of files"
        raise ValueError(
            f"{option}: expected {count} for each of the {n} group(s) {', '.join(names)}, got {len(files)}"
        )
    runs = [list(files[i * per : (i + 1) * per]) for i in range(n)]
    if n > 1:
        for name, run in zip(names, runs):
            for path in run:
                if owner(path, names) != name:
                    raise ValueError(
                        f"{option}: {path} is not named after its group {name} (expected {name}.<...>: each group's "
                        f"files together, in the order of the groups {', '.join(names)})"
                    )
    return runs
