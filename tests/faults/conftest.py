"""The fault catalog's shared pieces: small inputs to break, and the checks every refusal must pass.

Every case asserts (:func:`assert_refused`): a non-zero exit status; an ``error:`` first line that
names the file or key at fault; no traceback; no finished-looking output; no input changed (the
input tree's bytes are hashed before the run and after).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from demos import TINY_DEMO, TINY_SEED
from paths import REPO, SHARED_LDCT

from ctpatch.luna16.demo import write_dataset

QUARTER, FULL = "quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"


@pytest.fixture(scope="session")
def luna_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults_luna_source")
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    return root


@pytest.fixture
def luna(tmp_path, luna_source) -> Path:
    """A fresh copy of the tiny LUNA16 folder, for one case to break."""
    return Path(shutil.copytree(luna_source, tmp_path / "LUNA16"))


@pytest.fixture
def ldct(tmp_path) -> Path:
    """A copy of one real LDCT patient (4 slice pairs), for one case to break."""
    if not (SHARED_LDCT / "L096").is_dir():
        pytest.skip(f"real LDCT data not found under {SHARED_LDCT}")
    return Path(shutil.copytree(SHARED_LDCT / "L096", tmp_path / "ldct" / "L096"))


def first_scan(root: Path, subset: str = "subset0") -> Path:
    return sorted((root / subset).glob("*.mhd"))[0]


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (the input tree's state)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def call(main, argv, capsys) -> tuple[int, str]:
    """Run a CLI ``main`` in-process as ``python -m`` would (OSErrors via ctpatch.cli.run_cli)."""
    from ctpatch.cli import run_cli

    try:
        rc = run_cli(main, [str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.err


def run_module(module: str, *argv, env=None, timeout=120, **kw) -> tuple[int, str]:
    """``python -m ctpatch.<module> ARGV`` in a subprocess; (exit status, stderr)."""
    environ = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", f"ctpatch.{module}", *map(str, argv)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        **kw,
    )
    return proc.returncode, proc.stderr


def assert_refused(rc, err: str, names, *, inputs: tuple[Path, dict] | None = None, absent=()) -> None:
    """The refusal contract of the catalog (see the module docstring)."""
    assert rc not in (0, None), f"exit status {rc}, stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert lines, "no error message"
    first = lines[0]
    assert "error" in first.lower(), first
    names = [names] if isinstance(names, str) else names
    for name in names:
        assert str(name) in first, f"{name!r} not in the first line: {first!r}\n{err}"
    for path in absent:
        assert not Path(path).exists(), f"{path} exists after a refusal"
    if inputs is not None:
        root, before = inputs
        assert tree_digest(root) == before, f"an input under {root} changed"


def settings_file(folder: Path, scope: str, config: dict) -> Path:
    """Write the settings file of ``scope`` for ``config`` (validated, defaults filled) as the workflow does."""
    from ctpatch.settings import scope_settings, validate, write_settings

    path = Path(folder) / f"settings-{scope}.json"
    write_settings(scope_settings(validate(config), scope), path, scope)
    return path


def check_args(root: Path, folder: Path, **luna) -> list:
    """``--settings-file`` (scope check) and ``--run-settings-file`` (scope run: the policies) for the LUNA16
    folder ``root`` (``luna16`` keys over the defaults)."""
    config = {"luna16": {"root": str(root), **luna}}
    return [
        "--settings-file",
        settings_file(folder, "check", config),
        "--run-settings-file",
        settings_file(folder, "run", config),
    ]


def preflight_args(root: Path, folder: Path, out: Path, **luna) -> list:
    """The pre-flight check's arguments for both subsets of ``root``, writing ``out``/scans.tsv and
    ``out``/inputs.json (``luna16`` keys over the defaults, as :func:`check_args`)."""
    return [
        *check_args(root, folder, **luna),
        "--subsets",
        "subset0",
        "subset1",
        "--scans-out",
        out / "scans.tsv",
        "--report-out",
        out / "inputs.json",
    ]


def pairs_args(patient: Path, folder: Path, **ldct) -> list:
    """``--patient-dir`` and the ``--settings-file`` of scope pairs for one LDCT patient folder."""
    return [
        "--patient-dir",
        patient,
        "--settings-file",
        settings_file(folder, "pairs", {"mode": "ldct", "ldct": {"root": str(patient.parent), **ldct}}),
    ]
