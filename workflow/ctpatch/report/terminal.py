"""What the terminal says at the end of a run: the failed steps' own error lines, or what the run made.

Snakemake ends a failed run with ``CalledProcessError … check log file(s)``; ctpatch's steps write their
one-line ``error:`` into their logs.  :func:`failure_summary` reads the failed steps from Snakemake's own
log of the run and prints each one's error lines and log path (the workflow's ``onerror``).
:func:`run_summary` says where a finished run's patch files are, what they hold (patches per kind,
shape, dtype, size) and the line that reads them (the workflow's ``onsuccess``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from ctpatch.readers.contract import KINDS, MODE_KINDS, file_mode
from ctpatch.store.h5 import h5py

#: lines of a step's log that are ctpatch's own one-line errors
ERROR = re.compile(r"(^|: )error: ")


def failed_steps(snakemake_log) -> list[tuple[str, list[str]]]:
    """(rule, its log files) of every ``Error in rule RULE:`` block of a Snakemake log (a path, or the list of
    paths Snakemake hands its ``onerror`` handler), in order."""
    paths = [snakemake_log] if isinstance(snakemake_log, (str, Path)) else list(snakemake_log or [])
    text = "\n".join(Path(p).read_text(errors="replace") for p in paths if Path(p).is_file())
    steps, rule = [], None
    for line in text.splitlines():
        start = re.match(r"^Error in (?:group job|rule) (\S+?):?$", line.strip())
        if start:
            rule = start.group(1)
            steps.append((rule, []))
            continue
        if rule is not None and line.startswith("    log: "):
            logs = line[len("    log: ") :].split(" (check log file(s)", 1)[0]
            steps[-1][1].extend(p.strip() for p in logs.split(",") if p.strip())
        elif rule is not None and not line.startswith(" "):
            rule = None
    return steps


def error_lines(log: str | Path, fallback: int = 3) -> list[str]:
    """A step's ``error:`` lines (at most 5), or its last ``fallback`` lines when it wrote none."""
    try:
        lines = [ln.rstrip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return []
    errors = [ln for ln in lines if ERROR.search(ln)]
    return errors[:5] if errors else lines[-fallback:]


def failure_summary(snakemake_log) -> str:
    """The failed steps with their own error lines and log paths (empty when none is found)."""
    steps = failed_steps(snakemake_log)
    if not steps:
        return ""
    out = [f"ctpatch: {len(steps)} step(s) failed (their own messages, from their logs):"]
    for rule, logs in steps:
        shown = False
        for log in logs:
            if not Path(log).is_file() or Path(log).parts[:2] == (".snakemake", "slurm_logs"):
                continue
            for line in error_lines(log):
                out.append(f"  {rule}: {line}")
                shown = True
            out.append(f"    log: {log}")
        if not shown:
            out.append(f"  {rule}: failed" + (f"; logs: {', '.join(logs)}" if logs else " (no log)"))
    return "\n".join(out)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def file_line(path: Path) -> str:
    """One patch file: patches per kind with their shape and dtype, and its size on disk."""
    from ctpatch.luna16.layouts import has_images, images

    with h5py.File(path, "r") as f:
        mode = file_mode(f, path)
        kinds = []
        for kind in MODE_KINDS[mode]:
            name = KINDS[kind][0]
            if has_images(f, name):
                ds = images(f, name)
                kinds.append(f"{ds.shape[0]} {kind} {tuple(ds.shape[1:])} {ds.dtype}")
    return f"{path.name}: {', '.join(kinds)}; {_size(path.stat().st_size)}"


def run_summary(files, mode: str, results: str, logs: str) -> str:
    """Where a finished run's patch files are, what they hold, and the line that reads them."""
    files = [Path(p) for p in files if Path(p).is_file()]
    report = f"{results}/{mode}/report/"
    if not files:
        return f"ctpatch: done; outputs in {results}/{mode}/, logs in {logs}/"
    folders = sorted({str(p.parent) for p in files})
    total = sum(p.stat().st_size for p in files)
    out = [f"ctpatch: done. {len(files)} patch file(s), {_size(total)}, in {', '.join(f + '/' for f in folders)}:"]
    shown = files if len(files) <= 12 else files[:10]
    for p in shown:
        try:
            out.append(f"  {file_line(p)}")
        except (OSError, ValueError) as exc:
            out.append(f"  {p.name}: cannot be read ({exc})")
    if len(shown) < len(files):
        out.append(f"  … and {len(files) - len(shown)} more")
    out.append(f"  report: {report} (plan, verification, pictures); logs: {logs}/")
    pattern = f"{files[0].parent}/*.h5"  # the groups' files (an LDCT combined file holds the same patches)
    kinds = [json.dumps(k) for k in MODE_KINDS[mode]]  # Python strings in double quotes: the shell's are single
    kind = f"({', '.join(kinds)})" if len(kinds) > 1 else kinds[0]
    code = (
        "import glob; from ctpatch.readers import PatchDataset; "
        f"ds = PatchDataset(sorted(glob.glob({json.dumps(pattern)})), {kind}); print(len(ds), ds[0][0].shape)"
    )
    out.append(f"  read them: python -c {shlex.quote(code)}")
    return "\n".join(out)
