"""``python -m ctpatch COMMAND …`` (``ctpatch COMMAND …`` once installed): the tools a user runs on patch files.

Commands:

* ``verify FILE…``: check patch files on their own (:mod:`ctpatch.report.verify`): the recorded
  settings and inputs and their digests, every chunk's Fletcher32 checksum, the counts against the
  provenance tables.
* ``explain FILE ROW --kind KIND``: one patch's provenance, regenerated from its source
  (:mod:`ctpatch.report.explain`).
* ``export SRC DST``: a compact-layout LUNA16 file written in the full layout (:mod:`ctpatch.luna16.export`).
"""

from __future__ import annotations

import sys

COMMANDS = {
    "verify": ("ctpatch.report.verify", "check patch files on their own (checksums, counts, recorded settings)"),
    "explain": ("ctpatch.report.explain", "one patch's provenance, regenerated from its source scan or slice"),
    "export": ("ctpatch.luna16.export", "a crops or volumes layout file written in the full layout"),
}


def usage() -> str:
    lines = ["usage: python -m ctpatch COMMAND [ARGS ...]   (ctpatch COMMAND once installed)", "", "commands:"]
    lines += [f"  {name:<8} {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines + ["", "python -m ctpatch COMMAND --help: the command's arguments"])


def main(argv=None) -> int:
    import importlib

    from ctpatch.cli import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}\n\n{usage()}", file=sys.stderr
        )
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return run_cli(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
