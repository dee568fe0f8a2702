"""What the terminal says at the end of a run (ctpatch.report.terminal): the failed steps' own error lines and
log paths (issue 22: only Snakemake's "CalledProcessError … check log file(s)" was shown), and where a
finished run's files are, what they hold and the line that reads them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import h5py
from paths import REPO

from ctpatch.report.terminal import error_lines, failed_steps, failure_summary, run_summary

SNAKEMAKE_LOG = """\
[Mon Dec  7 23:37:44 2026]
Error in rule extract_patches:
    message: None
    jobid: 2
    input: results/luna16/settings/patches.json
    output: results/luna16/patches/subset0.h5
    log: {extract} (check log file(s) for error details)
    shell:
        mpiexec -n 2 ...
        (command exited with non-zero exit code)
[Mon Dec  7 23:37:45 2026]
Error in rule check_luna_inputs:
    jobid: 1
    log: {check}, .snakemake/slurm_logs/rule_check_luna_inputs/1.log (check log file(s) for error details)
Shutting down, this might take some time.
Error in rule verification_table:
    jobid: 7
Exiting because a job execution failed. Look above for error messages
"""


def test_the_failed_steps_their_error_lines_and_logs(tmp_path):
    extract, check = tmp_path / "extract.log", tmp_path / "check.log"
    extract.write_text(
        "rank 1: MPI world size 2 on host vm\nrank 0: MPI world size 2 on host vm\n"
        "rank 0: error: subset0.h5: No space left on device\n"
    )
    check.write_text("Traceback (most recent call last):\n  File x\nKeyError: 'coordX'\n")
    log = tmp_path / "snakemake.log"
    log.write_text(SNAKEMAKE_LOG.format(extract=extract, check=check))
    assert failed_steps([str(log)]) == [
        ("extract_patches", [str(extract)]),
        ("check_luna_inputs", [str(check), ".snakemake/slurm_logs/rule_check_luna_inputs/1.log"]),
        ("verification_table", []),
    ]
    assert error_lines(extract) == ["rank 0: error: subset0.h5: No space left on device"]
    assert error_lines(check) == ["Traceback (most recent call last):", "  File x", "KeyError: 'coordX'"]
    text = failure_summary([str(log)])
    lines = text.splitlines()
    assert lines[0] == "ctpatch: 3 step(s) failed (their own messages, from their logs):"
    assert "  extract_patches: rank 0: error: subset0.h5: No space left on device" in lines
    assert f"    log: {extract}" in lines and f"    log: {check}" in lines
    assert "  check_luna_inputs: KeyError: 'coordX'" in lines
    assert "  verification_table: failed (no log)" in lines
    assert failure_summary([]) == "" and failure_summary(None) == ""


def test_a_finished_run_says_where_its_files_are_and_how_to_read_them(luna):
    work = luna.workdir
    files = [p.relative_to(work) for p in luna.files]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        text = run_summary([*files, "results/luna16/patches/subset9.h5"], "luna16", "results", "logs/results")
    finally:
        os.chdir(cwd)
    lines = text.splitlines()
    assert lines[0].startswith("ctpatch: done. 2 patch file(s), ") and lines[0].endswith(
        " MB, in results/luna16/patches/:"
    )
    for p in luna.files:
        with h5py.File(p, "r") as f:
            n, k = f["nodule"].shape[0], f["non_nodule"].shape[0]
        row = next(ln for ln in lines if ln.startswith(f"  {p.name}: "))
        assert f"{n} nodule (68, 68, 68, 1) float32, {k} non_nodule (68, 68, 68, 1) float32; " in row
    assert "  report: results/luna16/report/ (plan, verification, pictures); logs: logs/results/" in lines
    read = next(ln for ln in lines if ln.startswith("  read them: ")).removeprefix("  read them: ")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
    words = shlex.split(read)
    assert words[0] == "python"
    proc = subprocess.run([sys.executable, *words[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    total = sum(h5py.File(p, "r")["nodule"].shape[0] + h5py.File(p, "r")["non_nodule"].shape[0] for p in luna.files)
    assert proc.stdout.split() == [str(total), "(68,", "68,", "68,", "1)"]


def test_a_run_without_patch_files_says_where_its_outputs_are():
    assert run_summary([], "ldct", "results/x", "logs/results/x") == (
        "ctpatch: done; outputs in results/x/ldct/, logs in logs/results/x/"
    )
