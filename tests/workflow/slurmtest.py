"""Starting and stopping the test SLURM clusters (scripts/slurm-local.sh, scripts/slurm-twonode.sh).

Whether the SLURM tests may install Debian packages is explicit, through the environment variable
``CTPATCH_SLURM_TESTS``:

``install``
    the cluster script apt-get installs what is missing (slurmctld, slurmd, slurm-client, munge,
    and for accounting slurmdbd and mariadb-server);
    a cluster that cannot be set up (not root, apt-get failed, no namespaces) FAILS the test.
    This is the default when ``CI=true`` (set by CI services), so CI always runs these tests.
``installed``
    use the packages if they are installed, never run apt-get; skip (with the reason) when they
    are missing or when not root. The default on a developer's machine (``CI`` unset).
``skip``
    skip every SLURM test (as ``python -m pytest -m "not slurm"`` deselects them).

Inside :func:`cluster`, ``SLURM_CONF`` names the cluster and ``scripts/slurm-status`` is first on
``PATH`` (its ``sacct`` keeps job states coming while the controller or the database does not
answer), as README's "Running on SLURM" and docs/slurm.md tell users to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from paths import REPO

SCRIPTS = REPO / "scripts"
STATUS_WRAPPERS = SCRIPTS / "slurm-status"
ENV_VAR = "CTPATCH_SLURM_TESTS"
MODES = ("install", "installed", "skip")
# the cluster scripts' exit code for "cannot be set up on this machine"
EXIT_CANNOT = 3


def slurm_test_mode(environ=os.environ) -> str:
    """``install``, ``installed`` or ``skip`` (see the module docstring); ValueError on other values."""
    value = environ.get(ENV_VAR, "").strip().lower()
    if value in ("", "auto"):
        return "install" if environ.get("CI", "").strip().lower() in ("true", "1", "yes") else "installed"
    if value not in MODES:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(MODES)} (or unset)")
    return value


def run(cmd, timeout: float, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env)


def show(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def slurm_conf_of(script: Path) -> str:
    """The SLURM_CONF path the cluster script prints with ``env``."""
    out = run(["bash", script, "env"], timeout=30).stdout.strip()
    assert out.startswith("export SLURM_CONF="), out
    return out.split("=", 1)[1]


@contextlib.contextmanager
def cluster(script_name: str, start_timeout: float = 900):
    """Start a test cluster (unless it is up already); SLURM_CONF points at it while inside.

    Stops it afterwards if this call started it. Skips or fails as ``CTPATCH_SLURM_TESTS`` says.
    """
    mode = slurm_test_mode()
    if mode == "skip":
        pytest.skip(f"{ENV_VAR}=skip")
    script = SCRIPTS / script_name
    if os.geteuid() != 0:
        msg = f"{script_name} needs root (daemons, namespaces, apt-get)"
        if mode == "install":
            pytest.fail(f"{msg}; {ENV_VAR}=install (or CI=true) requires the SLURM tests to run")
        pytest.skip(msg)
    conf = slurm_conf_of(script)
    env = {**os.environ, "CTPATCH_SLURM_APT": "1" if mode == "install" else "0"}
    was_up = shutil.which("sinfo") is not None and run(["bash", script, "status"], timeout=60, env=env).returncode == 0
    start = run(["bash", script, "start"], timeout=start_timeout, env=env)
    if start.returncode == EXIT_CANNOT:
        if mode == "install":
            pytest.fail(f"cannot set up SLURM here ({ENV_VAR}=install or CI=true):\n{show(start)}")
        pytest.skip(
            f"cannot set up SLURM here: {start.stderr.strip().splitlines()[-1]} "
            f"(set {ENV_VAR}=install to let the tests apt-get install the packages)"
        )
    if start.returncode != 0 and not was_up:
        run(["bash", script, "stop"], timeout=120)  # leave no half-started daemons
    assert start.returncode == 0, f"{script_name} start failed\n{show(start)}"
    old = {name: os.environ.get(name) for name in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = conf
    os.environ["PATH"] = os.pathsep.join([str(STATUS_WRAPPERS), os.environ.get("PATH", "")])
    try:
        yield conf
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not was_up:
            stop = run(["bash", script, "stop"], timeout=120)
            assert stop.returncode == 0, show(stop)
