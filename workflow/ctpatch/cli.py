"""What every command-line step shares: a failed write is one line naming the file, not a traceback.

A full disk, a read-only results folder or a missing permission surface as ``OSError`` deep in
numpy, pandas or h5py; :func:`run_cli` turns it into ``error: <file>: <reason>`` and exit status 1.
The temp-then-rename writes (:func:`ctpatch.store.atomic.atomic_path`) have already removed their temp
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


#: the placeholder of a group's name in the arguments of a job over several groups
GROUP = "{group}"


def split_groups(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``argv`` without ``--groups G1 G2 ...`` (the words up to the next option), and the groups
    (``None`` when ``--groups`` is not given).

    >>> split_groups(["--seed", "0", "--groups", "L096", "L143", "--out", "x/{group}.png"])
    (['--seed', '0', '--out', 'x/{group}.png'], ['L096', 'L143'])
    >>> split_groups(["--n", "8"])
    (['--n', '8'], None)
    """
    if "--groups" not in argv:
        return list(argv), None
    i = argv.index("--groups")
    j = i + 1
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    return argv[:i] + argv[j:], argv[i + 1 : j]


def for_group(argv: list[str], group: str) -> list[str]:
    """The arguments of one group: every ``{group}`` replaced by its name.

    >>> for_group(["--out", "sanity/{group}.png", "--inputs", '{"pairs": ["pairs/{group}.tsv"]}'], "L096")
    ['--out', 'sanity/L096.png', '--inputs', '{"pairs": ["pairs/L096.tsv"]}']
    """
    return [word.replace(GROUP, group) for word in argv]


def batched(main):
    """``main`` that also takes ``--groups G1 G2 ...``: one run of ``main`` per group, in this one process
    (the imports are paid once, not once per group), with ``{group}`` in the other arguments replaced by
    the group's name.  The command line holds the names only, not each group's paths, so it stays short.

    Every group runs even after one failed, so one job reports every bad group; the status is the worst.
    """

    def run(argv=None) -> int:
        shared, groups = split_groups(sys.argv[1:] if argv is None else list(argv))
        if groups is None:
            return main(shared)
        if not groups:
            print("error: --groups: Expected at least one group name, got none", file=sys.stderr)
            return 1
        status = 0
        for group in groups:
            status = max(status, run_cli(main, for_group(shared, group)))
        return status

    return run
