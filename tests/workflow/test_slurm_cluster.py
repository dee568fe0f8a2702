"""A real one-node SLURM cluster on localhost (scripts/slurm-local.sh).

Shows that
* ``srun --mpi=pmi2 -n 2`` starts two ranks of the mpich wheel's libmpi that
  form ONE MPI world of size 2 (Slurm's PMI-2 server wires them up), while a
  plain ``srun -n 2`` (MpiDefault=none, no PMI) starts two singleton worlds:
  each rank prints size 1;
* the Snakemake SLURM executor with profiles/slurm-test submits an MPI rule
  (resources ``mpi``/``tasks``, overridden by the profile's set-resources)
  through sbatch, and its ranks form one world of size 2.

Needs root and the Debian packages; whether the test may apt-get install them, or skips, is set
by CTPATCH_SLURM_TESTS (tests/workflow/slurmtest.py; CI=true installs and runs them). The cluster's
slurm.conf is in its own folder, given to the commands here through SLURM_CONF, and nothing is left
in /etc/slurm (so `snakemake` calls elsewhere do not wait for a controller).
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
from paths import REPO, SHARED_LDCT
from slurmtest import cluster, slurm_test_mode
from slurmtest import run as _run
from slurmtest import show as _show

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TEST_PROFILE = REPO / "profiles" / "slurm-test"
ETC_CONF = Path("/etc/slurm/slurm.conf")

WORLD_SIZE = "from mpi4py import MPI; print(MPI.COMM_WORLD.Get_size(), flush=True)"


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the local cluster; stop it afterwards unless it was up before."""
    with cluster("slurm-local.sh") as conf:
        yield conf
    assert not ETC_CONF.exists() or "ctpatch" not in ETC_CONF.read_text(), "stop left a slurm.conf in /etc/slurm"


def test_mode_variable():
    assert slurm_test_mode({}) == "installed"
    assert slurm_test_mode({"CI": "true"}) == "install"
    assert slurm_test_mode({"CI": "true", "CTPATCH_SLURM_TESTS": "skip"}) == "skip"
    assert slurm_test_mode({"CTPATCH_SLURM_TESTS": "Install"}) == "install"
    with pytest.raises(ValueError, match="CTPATCH_SLURM_TESTS='yes please'"):
        slurm_test_mode({"CTPATCH_SLURM_TESTS": "yes please"})


def test_config_is_not_in_etc_slurm(slurm_cluster):
    # the cluster answers through SLURM_CONF, and /etc/slurm holds no config of it
    assert slurm_cluster.startswith("/run/ctpatch-slurm/"), slurm_cluster
    assert not ETC_CONF.exists() or "ctpatch" not in ETC_CONF.read_text()
    proc = _run(["scontrol", "ping"], timeout=60)
    assert proc.returncode == 0 and "UP" in proc.stdout, _show(proc)


def test_srun_pmi2_forms_one_world(slurm_cluster):
    # Slurm's mpi/pmi2 plugin serves PMI-2 to the tasks (PMI_FD etc.); the
    # mpich wheel's libmpi uses it, so both ranks see one world of size 2.
    proc = _run(
        ["srun", "-n", "2", "--mpi=pmi2", "-t", "5", sys.executable, "-c", WORLD_SIZE],
        timeout=180,
    )
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.split() == ["2", "2"], _show(proc)


def test_plain_srun_gives_two_singleton_worlds(slurm_cluster):
    # Without --mpi (MpiDefault=none in slurm.conf) there is no PMI server:
    # each task initialises MPI as a singleton and prints 1. This is why the
    # profiles launch MPI rules with "srun --mpi=pmi2".
    proc = _run(["srun", "-n", "2", "-t", "5", sys.executable, "-c", WORLD_SIZE], timeout=180)
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.split() == ["1", "1"], _show(proc)


def test_snakemake_slurm_profile_runs_mpi_rule(slurm_cluster, tmp_path):
    import importlib.util

    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), (
        "snakemake-executor-plugin-slurm is missing: pip install -e '.[slurm]'"
    )
    (tmp_path / "world.py").write_text(
        textwrap.dedent(
            """\
            from mpi4py import MPI
            comm = MPI.COMM_WORLD
            print(f"rank={comm.Get_rank()} size={comm.Get_size()}", flush=True)
            """
        )
    )
    # Shaped like the extract_patches rules (workflow/rules/luna16.smk, ldct.smk): threads = tasks, and plain
    # mpiexec as launcher. profiles/slurm-test's set-resources replaces the
    # launcher with its srun command and sets cpus_per_task=1 (without it
    # the job would ask for tasks x threads = 4 CPUs and stay pending).
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        textwrap.dedent(
            f"""\
            rule extract_patches:
                input: "world.py"
                output: "world.txt"
                threads: 2
                resources:
                    mpi="mpiexec",
                    tasks=2,
                shell: "{{resources.mpi}} -n {{resources.tasks}} {sys.executable} {{input}} > {{output}}"
            """
        )
    )
    t0 = time.monotonic()
    proc = _run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            TEST_PROFILE,
            "--snakefile",
            snakefile,
            "--directory",
            tmp_path,
        ],
        timeout=300,
    )
    elapsed = time.monotonic() - t0
    print(f"snakemake via SLURM took {elapsed:.1f} s")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, _show(proc)

    # the profile's launcher was used, not the rule's default
    assert "srun --mpi=pmi2 --export=ALL,MPIR_CVAR_CH4_NETMOD=ofi -n 2 " in log, log

    # one world of size 2: ranks 0 and 1, both see size 2
    ranks = sorted(re.findall(r"rank=(\d+) size=(\d+)", (tmp_path / "world.txt").read_text()))
    assert ranks == [("0", "2"), ("1", "2")], (tmp_path / "world.txt").read_text()

    # it went through SLURM: a job id, its log under .snakemake/slurm_logs,
    # and the job known to slurmctld as a completed 2-task job
    m = re.search(r"submitted with SLURM jobid (\d+)", log)
    assert m, log
    jobid = m.group(1)
    slurm_log = tmp_path / ".snakemake" / "slurm_logs" / "rule_extract_patches" / f"{jobid}.log"
    assert slurm_log.is_file(), sorted(str(p) for p in (tmp_path / ".snakemake").rglob("*") if "slurm" in str(p))
    state = _run(["squeue", "-j", jobid, "--states=all", "-h", "-o", "%T"], timeout=60)
    assert state.stdout.strip() == "COMPLETED", _show(state)
    job = _run(["scontrol", "show", "job", jobid], timeout=60)
    assert re.search(r"\bNumTasks=2\b", job.stdout), job.stdout
    assert re.search(r"\bNumCPUs=2\b", job.stdout), job.stdout


def _workflow_run(workdir: Path, config: dict, *args: str) -> float:
    """Run the repository's workflow in ``workdir``; return the seconds it took."""
    sys.path.insert(0, str(Path(__file__).parent))
    from snakerun import snakemake, write_config

    write_config(workdir, config)
    t0 = time.monotonic()
    snakemake(workdir, *args, timeout=900)
    return time.monotonic() - t0


def _same_files(a: Path, b: Path, pattern: str) -> list[str]:
    from snakerun import assert_same_patch_file

    names = sorted(p.relative_to(a).as_posix() for p in a.glob(pattern))
    assert names, f"no {pattern} under {a}"
    assert names == sorted(p.relative_to(b).as_posix() for p in b.glob(pattern))
    for name in names:
        assert_same_patch_file(a / name, b / name)
    return names


@pytest.mark.mpi
# LDCT through SLURM is covered on the two-node cluster (test_slurm_twonode.py); one mode here
# keeps the suite's time down
@pytest.mark.parametrize("mode", ["luna16"])
def test_workflow_through_the_profile_equals_the_local_run(slurm_cluster, tmp_path, mode):
    """The real workflow via sbatch: extraction as one 2-rank job; outputs equal a local run's."""
    sys.path.insert(0, str(Path(__file__).parent))
    from snakerun import SMALL_LDCT, SMALL_LUNA, extraction_log

    if mode == "luna16":
        config = {**SMALL_LUNA, "demo": {**SMALL_LUNA["demo"], "subsets": 1}}
        group = "subset0"
    else:
        if not SHARED_LDCT.is_dir():
            pytest.skip(f"no real CT data at {SHARED_LDCT}")
        config = {**SMALL_LDCT, "ldct": {**SMALL_LDCT["ldct"], "patients": ["L192"]}}
        group = "L192"
    seconds_slurm = _workflow_run(tmp_path / "slurm", config, "--profile", str(TEST_PROFILE))
    seconds_local = _workflow_run(tmp_path / "local", config, "--cores", "2")
    print(f"{mode}: SLURM run {seconds_slurm:.1f} s, local run {seconds_local:.1f} s")

    slurm = tmp_path / "slurm"
    log = extraction_log(slurm, mode, group).read_text()
    assert "rank 0: MPI world size 2" in log and "rank 1: MPI world size 2" in log, log
    jobs = list((slurm / ".snakemake" / "slurm_logs" / "rule_extract_patches").rglob("*.log"))
    assert jobs, "the extraction did not go through sbatch"
    jobid = jobs[0].stem
    job = _run(["scontrol", "show", "job", jobid], timeout=60)
    assert re.search(r"\bNumTasks=2\b", job.stdout), job.stdout

    _same_files(slurm / "results" / mode / "patches", tmp_path / "local" / "results" / mode / "patches", "*.h5")
    report = (slurm / "results" / mode / "report" / f"{group}.verify.json").read_text()
    assert '"ok": true' in report
