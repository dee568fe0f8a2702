"""scripts/slurm-status/sacct, the status query of the SLURM executor plugin through outages.

No cluster: fake ``sacct``/``squeue``/``scontrol`` behind the wrapper on PATH answer or fail as each
test says. The query is the plugin's own (``query_job_status_sacct``), so a change of its form in a
new plugin version shows here. The real outages are in test_slurm_outages.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time

import pytest
from slurmtest import STATUS_WRAPPERS

WRAPPER = STATUS_WRAPPERS / "sacct"
RUNID = "0b7d3c1e-1111-4222-8333-944455556666"

# each fake answers as $FAKE_<NAME> says ("ok" or "fail") and records its arguments
FAKE = textwrap.dedent(
    """\
    #!/bin/sh
    name=$(basename "$0")
    printf '%s\\n' "$*" >> "$FAKE_LOG.$name"
    mode=$(eval echo "\\$FAKE_$(echo "$name" | tr a-z A-Z)")
    if [ "$mode" != ok ]; then echo "$name: error: Connection refused" >&2; exit 1; fi
    case $name in
        sacct) echo "11|RUNNING"; echo "12|COMPLETED" ;;
        squeue) echo "11|COMPLETED"; echo "12|COMPLETED" ;;
        scontrol) echo "Slurmctld(primary) at ctl is UP" ;;
    esac
    """
)


def status_args() -> list[str]:
    from snakemake_executor_plugin_slurm.job_status_query import query_job_status_sacct

    cmd = shlex.split(query_job_status_sacct(RUNID))
    assert cmd[0] == "sacct", cmd
    return cmd[1:]


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sacct", "squeue", "scontrol"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "work" / ".snakemake").mkdir(parents=True)
    monkeypatch.setenv("PATH", os.pathsep.join([str(STATUS_WRAPPERS), str(bin_dir), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    monkeypatch.delenv("CTPATCH_SLURM_MAX_OUTAGE", raising=False)
    return tmp_path


def wrapper(tmp_path, args, **modes) -> subprocess.CompletedProcess:
    env = {**os.environ, **{f"FAKE_{k.upper()}": v for k, v in modes.items()}}
    return subprocess.run(["sacct", *args], cwd=tmp_path / "work", env=env, capture_output=True, text=True, timeout=60)


def state(tmp_path):
    path = tmp_path / "work" / ".snakemake" / "ctpatch-slurm-status" / f"{RUNID}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_the_wrapper_is_what_sacct_means_on_that_path(fakes):
    proc = subprocess.run(["which", "sacct"], capture_output=True, text=True)
    assert proc.stdout.strip() == str(WRAPPER)


def test_other_calls_go_to_the_real_sacct_unchanged(fakes):
    args = ["-j", "11.0", "--format=Reason", "--noheader"]
    proc = wrapper(fakes, args, sacct="ok")
    assert proc.returncode == 0 and proc.stdout == "11|RUNNING\n12|COMPLETED\n", proc
    assert (fakes / "log.sacct").read_text() == " ".join(args) + "\n"
    # ... failures included
    proc = wrapper(fakes, args, sacct="fail")
    assert proc.returncode == 1 and "Connection refused" in proc.stderr


def test_status_from_sacct_when_it_answers(fakes):
    proc = wrapper(fakes, status_args(), sacct="ok", squeue="ok", scontrol="ok")
    assert proc.returncode == 0 and proc.stdout == "11|RUNNING\n12|COMPLETED\n", proc
    assert (fakes / "log.sacct").read_text().split() == status_args()
    assert not (fakes / "log.squeue").exists()
    assert state(fakes) is None


def test_database_down_status_from_squeue(fakes):
    proc = wrapper(fakes, status_args(), sacct="fail", squeue="ok", scontrol="ok")
    assert proc.returncode == 0 and proc.stdout == "11|COMPLETED\n12|COMPLETED\n", proc
    # the plugin's squeue form: every state, this run's jobs only, JOBID|STATE
    assert (fakes / "log.squeue").read_text().split() == [
        "--noheader",
        "--states=all",
        "--name",
        RUNID,
        "--format=%i|%T",
    ]
    assert state(fakes) is None


def test_nothing_answers_no_line_and_success_so_the_plugin_keeps_its_jobs(fakes):
    t0 = time.time()
    proc = wrapper(fakes, status_args(), sacct="fail", squeue="fail", scontrol="fail")
    assert proc.returncode == 0 and proc.stdout == "", proc
    assert t0 <= state(fakes)["down_since"] <= time.time()
    # the next answer ends the outage
    assert wrapper(fakes, status_args(), sacct="ok", squeue="ok", scontrol="ok").stdout
    assert state(fakes) is None


def test_controller_down_counts_as_an_outage_though_sacct_answers(fakes):
    # the database still answers, but no job state changes until the controller is back
    proc = wrapper(fakes, status_args(), sacct="ok", squeue="fail", scontrol="fail")
    assert proc.returncode == 0 and proc.stdout == "11|RUNNING\n12|COMPLETED\n", proc
    assert state(fakes)["down_since"] > 0


PARENT = textwrap.dedent(
    """\
    import signal, subprocess, sys, time
    def interrupted(*_):
        print("parent: SIGINT", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGINT, interrupted)
    proc = subprocess.run(["sacct", *sys.argv[1:]], capture_output=True, text=True)
    print(f"parent: wrapper rc={proc.returncode} stdout={proc.stdout!r}", flush=True)
    time.sleep(30)
    sys.exit(0)
    """
)


@pytest.mark.parametrize("limit", ["60", "nonsense"])
def test_an_outage_over_the_limit_stops_the_run_as_ctrl_c_does(fakes, limit):
    """The wrapper tells Snakemake (its parent, whose command line names snakemake) why, then SIGINT."""
    parent = fakes / "fake_snakemake.py"
    parent.write_text(PARENT)
    folder = fakes / "work" / ".snakemake" / "ctpatch-slurm-status"
    folder.mkdir()
    # an outage that began 700 s ago: over 60 s, and over the default 600 s that a bad value falls back to
    (folder / f"{RUNID}.json").write_text(json.dumps({"down_since": time.time() - 700}))
    env = {**os.environ, "FAKE_SACCT": "fail", "FAKE_SQUEUE": "fail", "FAKE_SCONTROL": "fail"}
    env["CTPATCH_SLURM_MAX_OUTAGE"] = limit
    proc = subprocess.run(
        [sys.executable, parent, *status_args()],
        cwd=fakes / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3 and "parent: SIGINT" in proc.stdout, proc
    assert "no answer from the SLURM accounting database (sacct) nor the controller (slurmctld) for 70" in proc.stderr
    assert "stopping this Snakemake run as Ctrl-C does" in proc.stderr, proc.stderr
    if limit == "nonsense":
        assert "CTPATCH_SLURM_MAX_OUTAGE='nonsense' is not a positive number of seconds; using 600" in proc.stderr
    assert state(fakes)["stopped"] > 0


def test_under_the_limit_the_run_goes_on(fakes):
    parent = fakes / "fake_snakemake.py"
    parent.write_text(PARENT.replace("time.sleep(30)", "pass"))
    folder = fakes / "work" / ".snakemake" / "ctpatch-slurm-status"
    folder.mkdir()
    (folder / f"{RUNID}.json").write_text(json.dumps({"down_since": time.time() - 30}))
    env = {**os.environ, "FAKE_SACCT": "fail", "FAKE_SQUEUE": "fail", "FAKE_SCONTROL": "fail"}
    env["CTPATCH_SLURM_MAX_OUTAGE"] = "60"
    proc = subprocess.run(
        [sys.executable, parent, *status_args()], cwd=fakes / "work", env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "wrapper rc=0 stdout=''" in proc.stdout, proc
    assert "no answer" not in proc.stderr
