"""What a user watching a run sees (issue 22): the extraction's progress, a failed step's own error line and
log path, what a finished run made and how to read it; ranks never more than --cores, rank lines whole;
logs in the results folder's own logs/<results>/; a new demo seed replaces the old demo data set."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from demos import TINY_DEMO, TINY_SEED
from snakerun import extraction_log, snakemake, write_config

from ctpatch.luna16.demo import write_dataset

pytestmark = pytest.mark.slow

TINY = {"mode": "luna16", "seed": TINY_SEED, "demo": TINY_DEMO, "extract": {"tasks": 2}}
#: every line an extraction writes: its ranks, rank 0's progress, the end
LOG_LINE = re.compile(r"^(rank \d+: .+|subset\d+: \d+% \(\d+ of \d+ (patches|blocks)\), .+ left|extraction done: .+)$")


@pytest.fixture(scope="module")
def one_core(tmp_path_factory):
    """The tiny demo run with extract.tasks 2 on --cores 1: (working folder, its terminal output)."""
    work = tmp_path_factory.mktemp("one_core")
    write_config(work, TINY)
    proc = snakemake(work, "--cores", "1")
    return work, proc.stdout + proc.stderr


def test_cores_1_runs_one_rank_and_the_logs_are_the_results_folders(one_core):
    work, _ = one_core
    for subset in ("subset0", "subset1"):
        log = extraction_log(work, "luna16", subset)
        assert log == work / "logs" / "results" / "luna16" / "extract_patches" / f"{subset}.log"
        text = log.read_text()
        assert "rank 0: MPI world size 1 on host" in text and "rank 1" not in text
        assert all(LOG_LINE.match(line) for line in text.splitlines()), text
    assert not (work / "logs" / "luna16").exists()


def test_the_terminal_shows_progress_and_what_the_run_made(one_core):
    work, out = one_core
    for subset in ("subset0", "subset1"):
        progress = [ln for ln in out.splitlines() if re.match(rf"^{subset}: \d+% \(", ln)]
        assert progress and progress[-1].startswith(f"{subset}: 100% ("), out[-3000:]
        assert re.search(r"patches/s, \d+ s left$", progress[-1])
        assert all(line in extraction_log(work, "luna16", subset).read_text() for line in progress)
    summary = out[out.index("ctpatch: done.") :].splitlines()
    assert summary[0].startswith("ctpatch: done. 2 patch file(s), ") and "results/luna16/patches/" in summary[0]
    assert any(ln.startswith("  subset0.h5: ") and " nodule (68, 68, 68, 1) float32" in ln for ln in summary)
    assert any(ln.startswith("  read them: python -c ") for ln in summary)


def test_ranks_above_the_cores_are_refused(one_core, tmp_path):
    work, _ = one_core
    dry = snakemake(work, "-n", "-p", "--cores", "1", "--forcerun", "extract_patches").stdout
    assert "mpiexec -n 1 " in dry and "--ranks 1 " in dry and "mpiexec -n 2" not in dry
    dry = snakemake(work, "-n", "-p", "--cores", "3", "--forcerun", "extract_patches").stdout
    assert "mpiexec -n 2 " in dry  # extract.tasks, within --cores
    proc = snakemake(
        work, "--cores", "2", "--set-resources", "extract_patches:tasks=3", "--forcerun", "extract_patches", check=False
    )
    assert proc.returncode != 0
    assert "error: extract_patches: --set-resources extract_patches:tasks=3 asks for more MPI ranks than the 2" in (
        proc.stderr
    )


def test_a_new_seed_replaces_the_old_demo_data_and_its_volumes(one_core, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(one_core[0], work, symlinks=True)
    old = {p.stem for p in (work / "results" / "demo" / "luna16").glob("subset*/*.mhd")}
    assert old and {p.stem for p in (work / "results/luna16/volumes").glob("subset*/*.npy")} == old
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    write_config(work, {**config, "seed": TINY_SEED + 1})
    proc = snakemake(work, "--cores", "1", "results/luna16/checks/scans.tsv")
    assert "ctpatch: removed 4 file(s) made from an earlier demo data set" in proc.stderr  # 2 scans x .npy, .json
    new = {p.stem for p in (work / "results" / "demo" / "luna16").glob("subset*/*.mhd")}
    assert len(new) == len(old) and not new & old  # the old scans are gone, not kept beside the new ones
    assert not list((work / "results/luna16/volumes").glob("subset*/*.npy"))


def test_a_failed_step_shows_its_own_error_line_and_log(tmp_path):
    """LUNA16 with one subset downloaded and the full annotations.csv: the pre-flight check's one line."""
    root = tmp_path / "LUNA16"
    write_dataset(root, TINY_DEMO, TINY_SEED)
    ann = root / "CSVFILES" / "annotations.csv"
    ann.write_text(ann.read_text() + "".join(f"1.2.3.{i},0,0,0,6\n" for i in range(300)))
    work = tmp_path / "work"
    write_config(work, {"mode": "luna16", "luna16": {"root": str(root)}, "extract": {"tasks": 1}})
    proc = snakemake(work, "--cores", "1", check=False)
    assert proc.returncode != 0
    tail = proc.stderr[proc.stderr.index("ctpatch: 1 step(s) failed") :].splitlines()
    assert tail[1].startswith(f"  check_luna_inputs: error: {ann}: 300 annotation row(s) name series with no scan")
    assert "luna16.unknown_series: warn" in tail[1]
    assert tail[2] == "    log: logs/results/luna16/check_luna_inputs.log"
    assert Path(work / "logs/results/luna16/check_luna_inputs.log").is_file()
