"""The one-node cluster (scripts/slurm-local.sh, with accounting) going away under a run.

Shows, with profiles/slurm-test and scripts/slurm-status first on PATH (tests/workflow/slurmtest.py):
* slurmctld, or separately slurmdbd, stopped for 30 s while a job runs (it ends during the outage):
  the run finishes with the right files, within RUN_BOUND_S;
* an outage longer than CTPATCH_SLURM_MAX_OUTAGE stops the run with a message saying so;
* Ctrl-C (SIGINT to Snakemake) during a database outage ends the run and cancels its job;
* a job PENDING because its node is down is cancelled at its deadline (sbatch --deadline, the
  profiles' slurm_extra), and the run fails saying so instead of waiting for the node;
* `scripts/slurm-local.sh stop` during a running job leaves no process of the cluster, and a
  shell still exporting SLURM_CONF afterwards gets its answer at once.
docs/slurm.md ("When the controller, the database or a node goes away") quotes these bounds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from paths import REPO
from slurmtest import SCRIPTS, cluster, run, show

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = SCRIPTS / "slurm-local.sh"
PROFILE = REPO / "profiles" / "slurm-test"
OUTAGE_S = 30
# a run of two short jobs with one 30 s outage in it ends within this (docs/slurm.md)
RUN_BOUND_S = 300
# Ctrl-C ends a run within this (the plugin finishes its status round and its pause first, <= 180 s)
CTRL_C_BOUND_S = 240

TOY = textwrap.dedent(
    """\
    rule all:
        input: "b.txt"
    rule a:
        output: "a.txt"
        shell: "sleep {seconds}; echo a > {{output}}"
    rule b:
        input: "a.txt"
        output: "b.txt"
        shell: "cat {{input}} > {{output}}; echo b >> {{output}}"
    """
)


@pytest.fixture(scope="module")
def local_cluster():
    with cluster("slurm-local.sh") as conf:
        yield conf


def _daemon(action: str, name: str) -> None:
    proc = run(["bash", SCRIPT, f"{action}-daemon", name], timeout=120)
    assert proc.returncode == 0, show(proc)


def _start(workdir: Path, seconds: int, *args: str, env: dict | None = None) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text(TOY.format(seconds=seconds))
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--directory", str(workdir), *args]
    log = open(workdir / "run.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, text=True
    )


def _log(workdir: Path) -> str:
    return (workdir / "run.log").read_text()


def _running_job(workdir: Path, proc: subprocess.Popen, timeout: float = 180) -> str:
    """The SLURM id of rule a's job, once SLURM says it is RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"submitted with SLURM jobid (\d+)", _log(workdir))
        if m and run(["squeue", "-h", "-j", m.group(1), "-o", "%T"], timeout=60).stdout.strip() == "RUNNING":
            return m.group(1)
        time.sleep(0.5)
    raise AssertionError(f"rule a's job never ran:\n{_log(workdir)[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("daemon", ["slurmctld", "slurmdbd"])
def test_a_30s_outage_mid_run_the_run_finishes(local_cluster, tmp_path, daemon):
    t0 = time.monotonic()
    proc = _start(tmp_path, 20)
    try:
        _running_job(tmp_path, proc)
        time.sleep(5)
        _daemon("stop", daemon)
        try:
            time.sleep(OUTAGE_S)  # rule a's job ends in the meantime
        finally:
            _daemon("start", daemon)
        rc = proc.wait(timeout=max(1, RUN_BOUND_S - (time.monotonic() - t0)))
    finally:
        _stop(proc)
    elapsed = time.monotonic() - t0
    print(f"{daemon} down {OUTAGE_S} s: the run took {elapsed:.0f} s")
    assert rc == 0, _log(tmp_path)[-3000:]
    assert (tmp_path / "b.txt").read_text() == "a\nb\n"
    assert elapsed < RUN_BOUND_S


def test_an_outage_over_the_limit_stops_the_run(local_cluster, tmp_path):
    limit = 20
    proc = _start(tmp_path, 120, env={"CTPATCH_SLURM_MAX_OUTAGE": str(limit)})
    jobid = None
    try:
        jobid = _running_job(tmp_path, proc)
        _daemon("stop", "slurmctld")
        t_down = time.monotonic()
        try:
            rc = proc.wait(timeout=limit + CTRL_C_BOUND_S)
        finally:
            _daemon("start", "slurmctld")
        elapsed = time.monotonic() - t_down
    finally:
        _stop(proc)
        if jobid:
            run(["scancel", jobid], timeout=60)
    log = _log(tmp_path)
    print(f"controller down: the run stopped {elapsed:.0f} s later")
    assert rc != 0, log[-3000:]
    assert re.search(
        rf"slurm-status: no answer from the SLURM controller \(slurmctld\) for \d+ s "
        rf"\(limit CTPATCH_SLURM_MAX_OUTAGE={limit}\): stopping this Snakemake run",
        log,
    ), log[-3000:]
    assert not (tmp_path / "a.txt").exists()


def test_ctrl_c_ends_the_run_during_a_database_outage(local_cluster, tmp_path):
    proc = _start(tmp_path, 120)
    try:
        jobid = _running_job(tmp_path, proc)
        _daemon("stop", "slurmdbd")
        try:
            time.sleep(5)
            t_int = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=CTRL_C_BOUND_S)
            elapsed = time.monotonic() - t_int
        finally:
            _daemon("start", "slurmdbd")
    finally:
        _stop(proc)
    print(f"Ctrl-C during a database outage: the run ended {elapsed:.0f} s later")
    assert rc != 0 and "Terminating processes on user request" in _log(tmp_path), _log(tmp_path)[-3000:]
    # the controller answered, so Snakemake cancelled its job
    state = run(["squeue", "-h", "--states=all", "-j", jobid, "-o", "%T"], timeout=60)
    assert state.stdout.strip() == "CANCELLED", show(state)


def test_a_job_pending_on_a_down_node_ends_at_its_deadline(local_cluster, tmp_path):
    # the profiles bound every job with sbatch --deadline (slurm_extra); here a short one: 60 s from
    # submission, wall time 1 min, so SLURM cancels the job if it has not started ~0 s after submission
    resources = ["slurm_partition=debug", "runtime=1", "mem_mb=500", "slurm_extra='--deadline=now+75'"]
    drain = run(["scontrol", "update", "nodename=localhost", "state=drain", "reason=ctpatch-test"], timeout=60)
    assert drain.returncode == 0, show(drain)
    t0 = time.monotonic()
    try:
        proc = _start(tmp_path, 1, "--default-resources", *resources)
        try:
            rc = proc.wait(timeout=240)
        finally:
            _stop(proc)
    finally:
        resume = run(["scontrol", "update", "nodename=localhost", "state=resume"], timeout=60)
        assert resume.returncode == 0, show(resume)
    elapsed = time.monotonic() - t0
    log = _log(tmp_path)
    print(f"node down: the run failed after {elapsed:.0f} s")
    assert rc != 0, log[-3000:]
    assert "SLURM status is: 'DEADLINE'" in log, log[-3000:]
    assert elapsed < 240


def _cluster_processes(mntns: str) -> list[str]:
    rows = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "ns" / "mnt") == mntns:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                rows.append(f"{proc.name} {cmdline}")
        except OSError:
            continue
    return rows


def test_stop_leaves_nothing_of_the_cluster_and_stale_shells_fail_at_once(local_cluster, tmp_path):
    """Runs last: stops the cluster the module uses (and starts it again for the others' sake)."""
    state = Path("/run/ctpatch-slurm")
    job = run(["sbatch", "-n", "2", "-t", "5", "-D", str(tmp_path), "--wrap", "srun -n 2 sleep 300"], timeout=60)
    assert job.returncode == 0, show(job)
    jobid = job.stdout.split()[-1]
    deadline = time.monotonic() + 120
    while run(["squeue", "-h", "-s", "-j", jobid, "-o", "%i"], timeout=60).stdout.count(f"{jobid}.0") == 0:
        assert time.monotonic() < deadline, "the job step never started"
        time.sleep(0.5)
    mntns = (state / "slurmd.mntns").read_text().strip()
    before = _cluster_processes(mntns)
    assert any("slurmstepd" in r for r in before) and any("sleep 300" in r for r in before), before
    daemons = {p.stem: p.read_text().strip() for p in [*state.glob("*.pid"), *(state / "db").glob("*.pid")]}
    assert {"slurmctld", "slurmd", "slurmdbd", "mariadbd"} <= set(daemons), daemons

    stop = run(["bash", SCRIPT, "stop"], timeout=180)
    try:
        assert stop.returncode == 0, show(stop)
        assert _cluster_processes(mntns) == []
        alive = [name for name, pid in daemons.items() if Path(f"/proc/{pid}").exists()]
        assert alive == [], alive
        # a shell still exporting SLURM_CONF: an answer at once, not after ~9 s
        t0 = time.monotonic()
        ping = run(["scontrol", "show", "config"], timeout=60)
        assert ping.returncode != 0 and "Unable to contact slurm controller" in ping.stderr, show(ping)
        assert time.monotonic() - t0 < 3
    finally:
        start = run(["bash", SCRIPT, "start"], timeout=300)
        assert start.returncode == 0, show(start)
