"""Bad inputs and killed ranks under Snakemake: a clear error, nothing that looks finished."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from demos import TINY_DEMO, TINY_SEED
from paths import REPO
from snakerun import SMALL_LUNA, snakemake, write_config

from ctpatch.luna16.demo import write_dataset


@pytest.fixture(scope="module")
def luna_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("luna_source")
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    return root


def _copy_tree(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def _first_scan(root: Path) -> Path:
    return sorted((root / "subset0").glob("*.mhd"))[0]


def _missing_raw(root):
    raw = _first_scan(root).with_suffix(".raw")
    raw.unlink()
    return raw.name, "Missing input files"  # Snakemake itself refuses to plan the DAG


def _truncated_raw(root):
    raw = _first_scan(root).with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:1000])
    return raw.name, "truncated"


def _bad_header(root):
    mhd = _first_scan(root)
    mhd.write_text(mhd.read_text().replace("NDims = 3", "NDims = three"))
    return mhd.name, "NDims"


def _unknown_series(root):
    ann = root / "CSVFILES" / "annotations.csv"
    ann.write_text(ann.read_text() + "1.2.3.4.5.6,0.0,0.0,0.0,6.0\n")
    return "1.2.3.4.5.6", "not among the scans"


def _nodule_outside(root):
    ann = root / "CSVFILES" / "annotations.csv"
    uid = _first_scan(root).stem
    ann.write_text(ann.read_text() + f"{uid},0.0,0.0,99999.0,6.0\n")
    return "annotations.csv: row", "outside the volume"


def _malformed_csv(root):
    ann = root / "CSVFILES" / "annotations.csv"
    lines = ann.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",big"
    ann.write_text("\n".join(lines) + "\n")
    return "annotations.csv: row 2", "diameter_mm"


def _empty_subset(root):
    for p in (root / "subset1").iterdir():
        p.unlink()
    return "subset1", "no .mhd scans"


@pytest.mark.parametrize(
    "corrupt",
    [_missing_raw, _truncated_raw, _bad_header, _unknown_series, _nodule_outside, _malformed_csv, _empty_subset],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_input_stops_before_any_work_with_a_named_error(tmp_path, luna_source, corrupt):
    root = _copy_tree(luna_source, tmp_path / "LUNA16")
    name, what = corrupt(root)
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"]["root"] = str(root)
    cfg["luna16"]["subsets"] = ["subset0", "subset1"]
    work = tmp_path / "work"
    write_config(work, cfg)
    proc = snakemake(work, "--cores", "2", check=False)
    assert proc.returncode != 0
    log_file = work / "logs" / "results" / "luna16" / "check_luna_inputs.log"
    said = proc.stdout + proc.stderr + (log_file.read_text() if log_file.exists() else "")
    assert name in said and what in said, said[-3000:]
    assert not (work / "results" / "luna16" / "volumes").exists()
    assert not (work / "results" / "luna16" / "checks" / "scans.tsv").exists()


def test_unknown_series_can_be_a_warning(tmp_path, luna_source):
    root = _copy_tree(luna_source, tmp_path / "LUNA16")
    _unknown_series(root)
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"].update(root=str(root), unknown_series="warn")
    work = tmp_path / "work"
    write_config(work, cfg)
    snakemake(work, "--cores", "2", f"{'results/luna16/checks/inputs.json'}")
    log = (work / "logs" / "results" / "luna16" / "check_luna_inputs.log").read_text()
    assert "warning:" in log and "1.2.3.4.5.6" in log


@pytest.mark.slow
@pytest.mark.mpi
def test_killed_rank_leaves_nothing_finished_and_the_rerun_completes(tmp_path, luna_source):
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"]["root"] = str(luna_source)
    cfg["luna16"]["negatives"] = {"ratio": 12}  # a longer extraction, so there is time to kill a rank
    work = tmp_path / "work"
    write_config(work, cfg)
    snakemake(work, "--cores", "2", "results/luna16/labels/subset0/nodules.tsv")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        "results/luna16/patches/subset0.h5",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = work / "logs" / "results" / "luna16" / "extract_patches" / "subset0.log"
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline:
        if log.exists() and "MPI world size 2" in log.read_text():
            ranks = [
                p
                for p in psutil.process_iter(["cmdline", "cwd"])
                if p.info["cwd"] == str(work)
                and "ctpatch.luna16.extract" in (p.info["cmdline"] or [])
                and "python" in Path(p.info["cmdline"][0]).name
            ]
            if len(ranks) >= 2:
                time.sleep(1.0)
                victim = ranks[-1]
                victim.kill()
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=300)
    assert victim is not None, "the extraction never started two ranks"
    assert proc.returncode != 0, out
    patches = work / "results" / "luna16" / "patches"
    assert not (patches / "subset0.h5").exists()
    snakemake(work, "--cores", "2")
    assert (work / "results" / "luna16" / "report" / "subset0.verify.json").exists()
    assert not list(patches.glob(".*"))  # the killed run's temp file was removed by the rerun
