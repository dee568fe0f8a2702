"""The LDCT mode under Snakemake on the real low-dose/full-dose pairs in ../shared/data."""

from __future__ import annotations

import copy
import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
from browser import assert_report_layout
from paths import SHARED_DATA, SHARED_LDCT
from snakerun import SMALL_LDCT, snakemake, write_config

pytestmark = pytest.mark.skipif(not SHARED_LDCT.is_dir(), reason=f"no real CT data at {SHARED_LDCT}")


def test_dry_run_and_lint_in_ldct_mode(tmp_path):
    write_config(tmp_path, SMALL_LDCT)
    out = snakemake(tmp_path, "-n", "--quiet", "rules").stdout
    counts = {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines()) if len(p) == 2 and p[1].isdigit()}
    assert counts == {
        # one job each over all 4 patients (a job per patient spent more time starting than working)
        "pair_slices": 1,
        "extract_patches": 1,
        "verify_patches": 1,
        "sanity_pictures": 1,
        "verification_table": 1,
        "report_config": 1,
        "plan": 1,
        "all": 1,
        "total": 8,  # no settings jobs: the settings files are written when the workflow is parsed
    }
    assert snakemake(tmp_path, "--lint", check=False).returncode == 0


@pytest.mark.slow
@pytest.mark.mpi
def test_two_rank_ldct_run_on_real_pairs(tmp_path):
    cfg = copy.deepcopy(SMALL_LDCT)
    cfg["ldct"]["patients"] = ["L096", "L143"]
    write_config(tmp_path, cfg)
    snakemake(tmp_path, "--cores", "2")
    # one MPI world for both patients (one job over all patients), each patient's file written in it
    log = (tmp_path / "logs/results/ldct/extract_patches.log").read_text()
    assert log.count("rank 0: MPI world size 2") == 1 and log.count("rank 1: MPI world size 2") == 1
    for patient in ("L096", "L143"):
        assert f"rows in results/ldct/patches/{patient}.h5 on 2 ranks" in log
        pairs = pd.read_csv(tmp_path / f"results/ldct/pairs/{patient}.tsv", sep="\t")
        n_files = len(list((SHARED_LDCT / patient / "quarter_3mm_sharp_sorted").iterdir()))
        assert len(pairs) == n_files == 4
        report = json.loads((tmp_path / f"results/ldct/report/{patient}.verify.json").read_text())
        assert report["ok"], report["failures"]
        with h5py.File(tmp_path / f"results/ldct/patches/{patient}.h5", "r") as f:
            n = f["input"].shape[0]
            assert f["input"].shape == f["target"].shape == (n, 1, 55, 55)
            assert f["input"].dtype == np.float16 and f["input"].chunks == (1, 1, 55, 55)
            prov, pair = f["provenance/patch"][...], f["provenance/pair"][...]
            assert len(prov) == n == int(pair["patches_written"].sum())
            # every pair appears, and each kept corner gave 3 (rotation) x 2 (blend) patches
            assert sorted(set(prov["pair_index"])) == list(range(4))
            assert np.array_equal(pair["patches_written"], 6 * pair["patches_kept"])
            assert set(np.unique(prov["downscale"]).round(2)) == {1.0, 0.8, 0.6}
        assert (tmp_path / f"results/ldct/sanity/{patient}.png").stat().st_size > 10_000
    # the report, as a browser shows it: headings, and tables within the page (issue 22, both modes)
    snakemake(tmp_path, "--report", "report.html")
    pages = tmp_path / "pages"
    pages.mkdir()
    assert_report_layout(tmp_path / "report.html", pages)


@pytest.mark.slow
def test_combined_file_in_two_parts(tmp_path):
    """output.combined with output.nsplit 2 (the reference demo's --nsplit 2): each patient's file whole,
    the combined patches split into all.part0.h5 and all.part1.h5, self-contained (copy), every patch once."""
    cfg = copy.deepcopy(SMALL_LDCT)
    cfg["extract"]["tasks"] = 1
    cfg["ldct"]["patients"] = ["L096", "L143"]
    cfg["ldct"]["output"] = {**cfg["ldct"]["output"], "combined": "copy", "nsplit": 2, "shuffle": True}
    write_config(tmp_path, cfg)
    snakemake(tmp_path, "--cores", "2")
    res = tmp_path / "results" / "ldct"
    per_patient = 0
    for patient in ("L096", "L143"):
        assert json.loads((res / "report" / f"{patient}.verify.json").read_text())["ok"]
        with h5py.File(res / "patches" / f"{patient}.h5", "r") as f:
            per_patient += f["input"].shape[0]
    assert json.loads((res / "report" / "combined.json").read_text())["ok"]
    sizes = []
    for k in range(2):
        with h5py.File(res / "combined" / f"all.part{k}.h5", "r") as f:
            assert not f["input"].is_virtual and f.attrs["parts"] == 2 and f.attrs["part"] == k
            sizes.append(f["input"].shape[0])
    assert sum(sizes) == per_patient and abs(sizes[0] - sizes[1]) <= 1


@pytest.mark.slow
@pytest.mark.mpi
def test_long_names_pair_by_position_and_split_into_files(tmp_path):
    cfg = copy.deepcopy(SMALL_LDCT)
    cfg["ldct"].update(
        root=str(SHARED_DATA / "ldct_longnames"),
        input_dir="quarter_3mm",
        target_dir="full_3mm",
        patients=["L143"],
        patch={"code": "p96"},
        ds_augment={"enabled": False},
        dose_blend={"enabled": False},
        output={"nsplit": 2, "shuffle": True, "layout": "tf"},
    )
    write_config(tmp_path, cfg)
    snakemake(tmp_path, "--cores", "2")
    pairs = pd.read_csv(tmp_path / "results/ldct/pairs/L143.tsv", sep="\t")
    assert len(pairs) == 7
    names = [(p.split("/")[-1], t.split("/")[-1]) for p, t in zip(pairs["input_path"], pairs["target_path"])]
    assert all(a != b for a, b in names)  # the names differ; the positions pair them
    total = 0
    for part in (0, 1):
        with h5py.File(tmp_path / f"results/ldct/patches/L143.part{part}.h5", "r") as f:
            assert f["input"].shape[1:] == (96, 96, 1)
            total += f["input"].shape[0]
            assert len(f["provenance/pair"]) == 7
            written = int(f["provenance/pair"]["patches_written"].sum())
    assert total == written
    assert json.loads((tmp_path / "results/ldct/report/L143.verify.json").read_text())["ok"]


def test_an_unpaired_slice_stops_the_run_naming_the_files(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(SHARED_LDCT / "L096", root / "L096")
    removed = sorted((root / "L096" / "full_3mm_sharp_sorted").iterdir())[1]
    removed.unlink()
    cfg = copy.deepcopy(SMALL_LDCT)
    cfg["ldct"]["root"] = str(root)
    work = tmp_path / "work"
    write_config(work, cfg)
    proc = snakemake(work, "--cores", "2", check=False)
    assert proc.returncode != 0
    log = (work / "logs/results/ldct/pair_slices.log").read_text()
    assert removed.name in log  # the input slice with the same name has no partner
    assert not (work / "results/ldct/pairs/L096.tsv").exists()


@pytest.mark.slow
@pytest.mark.mpi
def test_super_resolution_run_identical_for_1_and_2_ranks(tmp_path):
    """SPEC 2c end to end on real pairs: every option on, two files per patient, shuffled.

    One patient and two of its pairs, to keep the suite short (all four patients: 8 min on the
    shared 2-core machine, same result; two patients: 5 min)."""
    from snakerun import assert_same_patch_file

    cfg = copy.deepcopy(SMALL_LDCT)
    cfg["ldct"].update(
        patients=["L096"],
        random_n=2,
        super_resolution={"enabled": True, "scale": 3},
        normalization="max_val_wrt_ld",
        blur_noise={"enabled": True},
        output={"dtype": "float16", "nsplit": 2, "shuffle": True},
    )
    runs = {}
    for tasks in (1, 2):
        work = tmp_path / f"ranks{tasks}"
        write_config(work, {**cfg, "extract": {"tasks": tasks}})
        snakemake(work, "--cores", "2")
        runs[tasks] = work
    for patient in ("L096",):
        report = json.loads((runs[2] / f"results/ldct/report/{patient}.verify.json").read_text())
        assert report["ok"], report["failures"]
        assert report["input_patch_shape"] == [1, 18, 18] and report["patch_shape"] == [1, 55, 55]
        assert report["reader"].startswith("IMPORT hdf5plugin")
        log = (runs[2] / "logs/results/ldct/extract_patches.log").read_text()
        assert "rank 1: MPI world size 2" in log
        for part in (0, 1):
            name = f"results/ldct/patches/{patient}.part{part}.h5"
            assert_same_patch_file(runs[1] / name, runs[2] / name)
            with h5py.File(runs[2] / name, "r") as f:
                prov = f["provenance/patch"][...]
                assert f["input"].shape[1:] == (1, 18, 18) and f["target"].shape[1:] == (1, 55, 55)
                assert np.array_equal(prov["hr_corner"], 3 * prov["corner"])
        assert (runs[2] / f"results/ldct/sanity/{patient}.png").stat().st_size > 10_000
    plan = (runs[2] / "results/ldct/report/plan.txt").read_text()
    assert "input 18x18 (super-resolution x3)" in plan
