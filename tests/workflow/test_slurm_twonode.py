"""A two-node SLURM cluster simulated on this machine (scripts/slurm-twonode.sh).

Shows that
* slurmstepd's PMI-1 reader (Slurm's mpi/pmi2 plugin, which the mpich wheel talks to) cuts a
  request line after 1024 bytes and logs "value not properly terminated": the reason why the
  profile's launcher makes MPICH use its OFI network module (short PMI lines) instead of UCX;
* the profile's launcher starts one MPI world whose ranks run on two different hosts;
* the real workflow through profiles/slurm with extract.nodes: 2 in its config (an LDCT patient;
  the LUNA16 demo, one subset) runs each extraction as ONE job with NumNodes=2 (sbatch --nodes=2)
  and the profile's launcher, its ranks log two different hosts, and the patch
  files equal a local run's;
* a node failure during the LUNA16 extraction (every process of one node killed) fails the job
  cleanly, leaves nothing that looks finished, and the rerun completes (the LUNA16 check above is
  made on that rerun, to keep the suite's time down).

Root and the Debian packages are needed; CTPATCH_SLURM_TESTS decides whether they may be
installed (tests/workflow/slurmtest.py; CI=true installs them and runs these tests).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from paths import REPO, SHARED_LDCT
from slurmtest import SCRIPTS, cluster, run, show
from snakerun import (
    SMALL_LDCT,
    SMALL_LUNA,
    assert_same_patch_file,
    extraction_log,
    snakemake,
    write_config,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = SCRIPTS / "slurm-twonode.sh"
PROFILE = REPO / "profiles" / "slurm"
NODES = {"ctpnode1", "ctpnode2"}
LAUNCHER = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]["extract_patches"]["mpi"]
# the shipped profile, with: short polling intervals for a test of seconds-long jobs; group jobs
# capped at the nodes' 1 CPU (--cores, per group job); the SLURM logs of successful jobs kept
# (they name the job ids)
PROFILE_ARGS = (
    "--profile",
    str(PROFILE),
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "1",
    "--latency-wait",
    "5",
    "--cores",
    "1",
    "--slurm-keep-successful-logs",
)

# speaks PMI-1 (the mpich wheel's default wire protocol) to slurmstepd over PMI_FD
PMI1_PUT = textwrap.dedent(
    """\
    import os, socket, sys
    s = socket.socket(fileno=int(os.environ["PMI_FD"]))
    s.settimeout(10)
    def ask(line):
        s.sendall(line.encode())
        return s.recv(4096).decode().strip()
    assert ask("cmd=init pmi_version=1 pmi_subversion=1\\n").startswith("cmd=response_to_init rc=0")
    kvs = ask("cmd=get_my_kvsname\\n").split("kvsname=")[1]
    prefix = f"cmd=put kvsname={kvs} key=k value="
    line = prefix + "A" * (int(sys.argv[1]) - len(prefix) - 1) + "\\n"
    print(len(line), ask(line), flush=True)
    """
)


@pytest.fixture(scope="module")
def twonode():
    with cluster("slurm-twonode.sh") as conf:
        yield conf


def _host_lines(log: str) -> dict[int, str]:
    return {int(r): h for r, h in re.findall(r"rank (\d+): MPI world size 2 on host (\S+)", log)}


@pytest.mark.parametrize("length", [1000, 1100])
def test_slurmstepd_cuts_pmi1_lines_after_1024_bytes(twonode, tmp_path, length):
    script = tmp_path / "pmi1_put.py"
    script.write_text(PMI1_PUT)
    proc = run(["srun", "-n", "1", "--mpi=pmi2", "-t", "2", sys.executable, script, length], timeout=120)
    if length <= 1024:
        assert proc.returncode == 0 and proc.stdout.split() == [str(length), "cmd=put_result", "rc=0"], show(proc)
        assert "not properly terminated" not in proc.stderr, show(proc)
    else:
        # the first 1024 bytes are taken as a request (and answered), the rest as another one
        assert "value not properly terminated in client request" in proc.stderr, show(proc)
        assert "invalid client request" in proc.stderr, show(proc)


def test_profile_launcher_spans_two_hosts(twonode, tmp_path):
    (tmp_path / "hello.py").write_text(
        "from mpi4py import MPI\nimport numpy as np\nc = MPI.COMM_WORLD\n"
        "s = c.allreduce(np.arange(1 << 16, dtype=np.float64))\n"
        "print(c.Get_rank(), c.Get_size(), MPI.Get_processor_name(), float(s.sum()), flush=True)\n"
    )
    cmd = [*LAUNCHER.split(), "-n", "2", "-t", "2", sys.executable, tmp_path / "hello.py"]
    proc = run(cmd, timeout=180)
    assert proc.returncode == 0, show(proc)
    rows = sorted(line.split() for line in proc.stdout.splitlines())
    total = 2.0 * sum(range(1 << 16))
    assert [r[:2] for r in rows] == [["0", "2"], ["1", "2"]], show(proc)
    assert {r[2] for r in rows} == NODES, show(proc)
    assert all(float(r[3]) == total for r in rows), show(proc)


def _completed_extract_job(workdir: Path) -> str:
    """``scontrol show job`` of the one completed extraction job of the run(s) in ``workdir``."""
    logs = (workdir / ".snakemake" / "slurm_logs" / "rule_extract_patches").rglob("*.log")
    shown = [run(["scontrol", "show", "job", p.stem], timeout=60).stdout for p in logs]
    done = [s for s in shown if re.search(r"\bJobState=COMPLETED\b", s)]
    assert len(done) == 1, shown
    return done[0]


def _check_two_node_extraction(workdir: Path, mode: str, group: str) -> None:
    log = extraction_log(workdir, mode, group).read_text()
    hosts = _host_lines(log)
    assert sorted(hosts) == [0, 1] and set(hosts.values()) == NODES, log
    job = _completed_extract_job(workdir)
    assert re.search(r"\bNumNodes=2\b", job) and re.search(r"\bNumTasks=2\b", job), job


def _same_patch_files(a: Path, b: Path, mode: str, group: str) -> None:
    names = sorted(p.relative_to(a).as_posix() for p in (a / "results" / mode / "patches").glob("*.h5"))
    assert names
    assert names == sorted(p.relative_to(b).as_posix() for p in (b / "results" / mode / "patches").glob("*.h5"))
    for name in names:
        assert_same_patch_file(a / name, b / name)
    assert '"ok": true' in (a / "results" / mode / "report" / f"{group}.verify.json").read_text()


@pytest.mark.mpi
def test_ldct_patient_on_two_nodes_equals_the_local_run(twonode, tmp_path):
    if not SHARED_LDCT.is_dir():
        pytest.skip(f"no real CT data at {SHARED_LDCT}")
    config = {**SMALL_LDCT, "ldct": {**SMALL_LDCT["ldct"], "patients": ["L192"]}}
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    # the number of nodes is a config key, so the profile's set-resources block (launcher) stays
    write_config(slurm, {**config, "extract": {**config["extract"], "nodes": 2}})
    write_config(local, config)
    t0 = time.monotonic()
    snakemake(slurm, *PROFILE_ARGS)
    t_slurm = time.monotonic() - t0
    t0 = time.monotonic()
    snakemake(local, "--cores", "2")
    print(f"ldct: two-node SLURM run {t_slurm:.1f} s, local run {time.monotonic() - t0:.1f} s")
    _check_two_node_extraction(slurm, "ldct", "L192")
    _same_patch_files(slurm, local, "ldct", "L192")


@pytest.mark.mpi
def test_luna16_node_failure_fails_cleanly_then_the_rerun_on_two_nodes_equals_the_local_run(twonode, tmp_path):
    """The LUNA16 demo (one subset) through the profile: one node fails during the extraction;
    the job fails, nothing looks finished; the rerun completes on two nodes and equals a local run."""
    # three scans, so that the extraction is still running when the node fails
    config = {**SMALL_LUNA, "demo": {**SMALL_LUNA["demo"], "subsets": 1, "scans_per_subset": 3}}
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    write_config(slurm, {**config, "extract": {**config["extract"], "nodes": 2}})
    write_config(local, config)
    log = slurm / "logs" / "results" / "luna16" / "extract_patches" / "subset0.log"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(slurm),
        *PROFILE_ARGS,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(_host_lines(log.read_text())) == 2:
                # both ranks are up: fail the node that does not run the batch script
                running = run(["squeue", "-h", "-t", "R", "-o", "%i %D %B"], timeout=60).stdout.split()
                assert len(running) == 3 and running[1] == "2", running
                killed = sorted(NODES - {running[2]})[0]
                stop = run(["bash", SCRIPT, "stop-node", killed[-1]], timeout=120)
                assert stop.returncode == 0, show(stop)
                break
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        restart = run(["bash", SCRIPT, "start-node", "2" if killed == "ctpnode2" else "1"], timeout=180)
        assert restart.returncode == 0, show(restart)
    assert killed, f"the extraction never had both ranks up:\n{out[-3000:]}"
    assert proc.returncode != 0, out[-3000:]
    assert "extract_patches" in out and "Error" in out, out[-3000:]
    assert "extraction done" not in log.read_text(), log.read_text()
    # nothing that looks finished: no patch file of the subset (rank 0 writes under a hidden temp
    # name, ".subset0.h5.<pid>.tmp", renamed only when complete; the next run clears stale ones)
    left = [p.name for p in (slurm / "results" / "luna16" / "patches").glob("*subset0*")]
    assert all(n.startswith(".") and n.endswith(".tmp") for n in left), left

    t0 = time.monotonic()
    snakemake(slurm, *PROFILE_ARGS)
    t_slurm = time.monotonic() - t0
    t0 = time.monotonic()
    snakemake(local, "--cores", "2")
    print(f"luna16 rerun: two-node SLURM {t_slurm:.1f} s, local run {time.monotonic() - t0:.1f} s")
    _check_two_node_extraction(slurm, "luna16", "subset0")
    _same_patch_files(slurm, local, "luna16", "subset0")
