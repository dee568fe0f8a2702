"""The package as a user installs it: a wheel (not an editable install) in a fresh venv.

The venv finds the dependencies where the interpreter running the tests finds them (its site-packages
folders, listed in a ``.pth`` file of the venv; ``--system-site-packages`` would give the *base*
interpreter's when the tests run in a venv, issue 22), but ctpatch itself comes only from the wheel
built here: the schema (package data) must travel with it.  The folders are listed as plain paths,
so their own ``.pth`` files (an editable install of ctpatch) are not run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from demos import TINY_DEMO
from paths import REPO


def dependency_folders() -> list[str]:
    """The site-packages folders the running interpreter imports from (a venv's own, and the base's when the
    venv sees them), in its order."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def test_the_wheel_venv_sees_the_dependencies_of_the_running_interpreter():
    """Not the base interpreter's (a venv's ``--system-site-packages``): the folders pandas and h5py come from."""
    import h5py
    import pandas

    folders = dependency_folders()
    for module in (pandas, h5py):
        assert any(Path(module.__file__).is_relative_to(f) for f in folders), (module.__file__, folders)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = dist.glob("ctpatch-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    own = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    Path(own, "_ctpatch_test_dependencies.pth").write_text("\n".join(dependency_folders()) + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return work, py


@pytest.mark.slow
def test_the_wheel_carries_the_schema_and_validates_configs(wheel_venv):
    work, py = wheel_venv
    code = (
        "import ctpatch, ctpatch.settings as c; print(ctpatch.__file__); "
        "print(c.default_config('ldct')['ldct']['patch']['code'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=work, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    location, code_default = out.stdout.split()
    assert str(work / "venv") in location, f"ctpatch imported from {location}, not from the wheel"
    assert code_default == "p55"


@pytest.mark.slow
def test_a_wheel_install_plans_and_dry_runs_the_workflow(wheel_venv, tmp_path):
    work, py = wheel_venv
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PATH": f"{py.parent}{os.pathsep}{os.environ['PATH']}",
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"demo": TINY_DEMO}))
    plan = subprocess.run(
        [str(py), "-m", "ctpatch.report.plan", "--configfile", str(cfg), "--no-sample", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr
    assert "subset0" in plan.stdout
    dry = subprocess.run(
        [
            str(py),
            "-m",
            "snakemake",
            "-n",
            "--quiet",
            "rules",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "extract_patches" in dry.stdout and "convert_mhd" in dry.stdout
