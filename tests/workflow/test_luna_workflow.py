"""The LUNA16 mode under Snakemake: the DAG, lint, a 2-rank run, rank-count independence."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from paths import REPO
from snakerun import SMALL_LUNA, assert_same_patch_file, snakemake, write_config

CHAIN = [
    "make_demo_luna16",
    "check_luna_inputs",
    "convert_mhd",
    "make_labels",
    "extract_patches",
    "verify_patches",
    "all",
]


def test_dry_run_shows_the_chain(tmp_path):
    write_config(tmp_path, SMALL_LUNA)
    out = snakemake(tmp_path, "-n", "--quiet", "rules").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts == {
        "make_demo_luna16": 1,
        "check_luna_inputs": 1,
        "convert_mhd": 2,
        "make_labels": 2,
        "extract_patches": 2,
        "verify_patches": 2,
        "sanity_pictures": 2,
        "nodule_pictures": 2,
        "nodule_accounting": 1,
        "verification_table": 1,
        "report_config": 1,
        "plan": 1,
        "all": 1,
        "total": 19,
    }


def test_rulegraph_links_each_step_to_the_next(tmp_path):
    write_config(tmp_path, SMALL_LUNA)
    dot = snakemake(tmp_path, "--rulegraph").stdout
    ids = {}
    for line in dot.splitlines():
        if '[label = "' in line:
            ids[line.split("[")[0].strip()] = line.split('label = "')[1].split('"')[0]
    edges = {
        (ids[a.strip()], ids[b.strip().rstrip(";").split()[0]])
        for a, b in (line.split("->") for line in dot.splitlines() if "->" in line)
    }
    for a, b in zip(CHAIN, CHAIN[1:]):
        assert (a, b) in edges, f"missing edge {a} -> {b} in {sorted(edges)}"


def test_lint_is_clean(tmp_path):
    write_config(tmp_path, SMALL_LUNA)
    proc = snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_invalid_config_value_names_the_key(tmp_path):
    bad = copy.deepcopy(SMALL_LUNA)
    bad["luna16"]["negatives"] = {"strategy": "nearby"}
    write_config(tmp_path, bad)
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "luna16.negatives.strategy" in said and "avoid_nodules" in said


# the results folder of each run of `runs`
RESULTS = {1: "other results/run 1", 2: "results"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The small demo run with 2 ranks and, in another results folder (demo data included), with 1 rank."""
    two = tmp_path_factory.mktemp("two_ranks")
    write_config(two, SMALL_LUNA)
    snakemake(two, "--cores", "2")
    one = tmp_path_factory.mktemp("one_rank")
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["extract"]["tasks"] = 1
    cfg["results"] = RESULTS[1]
    write_config(one, cfg)
    snakemake(one, "--cores", "2")
    return {1: one, 2: two}


@pytest.mark.slow
@pytest.mark.mpi
def test_two_rank_run_counts_and_report(runs):
    work = runs[2]
    for subset in ("subset0", "subset1"):
        log = (work / "logs" / "results" / "luna16" / "extract_patches" / f"{subset}.log").read_text()
        assert "rank 0: MPI world size 2" in log and "rank 1: MPI world size 2" in log
        for line in log.splitlines():  # every line whole: the ranks' lines never run together (issue 22)
            assert line.startswith(("rank 0: ", "rank 1: ", f"{subset}: ", "extraction done: ")), line
            assert line.count("rank ") <= 1 and " on host " not in line.split(" on host ", 1)[-1], line
        nodules = pd.read_csv(work / f"results/luna16/labels/{subset}/nodules.tsv", sep="\t")
        ann = pd.read_csv(work / "results/demo/luna16/CSVFILES/annotations.csv")
        scans = [p.stem for p in (work / "results/demo/luna16" / subset).glob("*.mhd")]
        assert len(nodules) == ann["seriesuid"].isin(scans).sum() > 0
        with h5py.File(work / f"results/luna16/patches/{subset}.h5", "r") as f:
            assert f["nodule"].shape == (57 * len(nodules), 68, 68, 68, 1)
            assert f["label_nodule"].shape == (57 * len(nodules), 8, 8, 8, 2)
            assert f["non_nodule"].shape == (3 * 57 * len(nodules), 68, 68, 68, 1)
            assert f["label_non_nodule"].shape == (3 * 57 * len(nodules), 8, 8, 8, 2)
            assert f["nodule"].dtype == np.float32 and f["nodule"].chunks == (1, 68, 68, 68, 1)
            assert f["nodule"].attrs["codec"] == "blosc2-zstd"  # the schema default
            prov = f["provenance/nodule"][...]
            assert sorted(set(prov["seriesuid"].astype(str))) == sorted(scans)
        report = json.loads((work / f"results/luna16/report/{subset}.verify.json").read_text())
        assert report["ok"] and report["failures"] == []
        assert report["nodule_patches"] == 57 * len(nodules)


@pytest.mark.slow
@pytest.mark.mpi
def test_one_and_two_ranks_give_identical_patches(runs):
    import hashlib

    # ... and whatever the results folder (the demo data under it): no path reaches the files' bytes
    for subset in ("subset0", "subset1"):
        files = [runs[n] / RESULTS[n] / f"luna16/patches/{subset}.h5" for n in (1, 2)]
        assert_same_patch_file(*files)
        assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == 1  # whole files, byte for byte
    for n in (1, 2):  # one copy on disk: no shards, no temp files
        assert not (runs[n] / RESULTS[n] / "luna16/shards").exists()
        assert not list((runs[n] / RESULTS[n] / "luna16/patches").glob(".*"))


@pytest.mark.slow
@pytest.mark.mpi
def test_patch_provenance_traces_back_to_the_volume(runs):
    """A shuffled patch, found by its provenance, equals the crop of the converted volume."""
    work = runs[2]
    with h5py.File(work / "results/luna16/patches/subset0.h5", "r") as f:
        prov = f["provenance/nodule"][...]
        i = int(np.flatnonzero(prov["shift_index"] == 56)[0])
        uid = prov["seriesuid"][i].decode()
        c = prov["centre_voxel"][i]  # (x, y, z)
        vol = np.load(work / f"results/luna16/volumes/subset0/{uid}.npy")  # (z, y, x)
        m = 34 + 8 * 4  # the reference's padding: half a patch plus the largest shift
        pad = np.pad(vol, m, constant_values=vol.min())
        lo = c - 34 + m
        expected = pad[lo[2] : lo[2] + 68, lo[1] : lo[1] + 68, lo[0] : lo[0] + 68].transpose(2, 1, 0)
        assert np.array_equal(f["nodule"][i][..., 0], expected)
        assert np.array_equal(prov["centre_voxel"][i] - prov["shift"][i], prov["nodule_voxel"][i])


@pytest.mark.mpi
def test_extraction_refuses_a_world_of_the_wrong_size(tmp_path):
    from ctpatch.settings import defaults, write_settings

    write_settings(defaults("patches"), tmp_path / "patches.json", "patches")
    proc = subprocess.run(
        [
            "mpiexec",
            "-n",
            "1",
            sys.executable,
            "-m",
            "ctpatch.luna16.extract",
            "--ranks",
            "2",
            "--out",
            str(tmp_path / "x.h5"),
            "--settings-file",
            str(tmp_path / "patches.json"),
            "--sidecars",
            str(tmp_path / "a.json"),
            "--masks-dir",
            str(tmp_path / "masks"),
            "--nodules",
            str(tmp_path / "nodules.tsv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "expected an MPI world of 2 ranks, got 1" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["patches.json"]  # nothing written


def _layout_run(tmp_path_factory, layout: str) -> Path:
    """The small demo with ``output.layout: <layout>``, 2 ranks."""
    work = tmp_path_factory.mktemp(layout)
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"]["output"] = {"layout": layout}
    write_config(work, cfg)
    snakemake(work, "--cores", "2")
    return work


def _export_to_full(src: Path, out: Path) -> None:
    """``python -m ctpatch.luna16.export SRC OUT`` (a compact layout written out as the full one); must succeed."""
    proc = subprocess.run(
        [sys.executable, "-m", "ctpatch.luna16.export", str(src), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def crops_run(tmp_path_factory):
    return _layout_run(tmp_path_factory, "crops")


@pytest.mark.slow
@pytest.mark.mpi
def test_crops_layout_run_is_verified_and_exports_to_the_full_files(runs, crops_run, tmp_path):
    for subset in ("subset0", "subset1"):
        report = json.loads((crops_run / f"results/luna16/report/{subset}.verify.json").read_text())
        assert report["ok"] and report["layout"] == "crops", report["failures"]
        crops = crops_run / f"results/luna16/patches/{subset}.h5"
        full = runs[2] / f"results/luna16/patches/{subset}.h5"
        with h5py.File(crops, "r") as f:
            assert "nodule" not in f and f["nodule_crop"].shape[1:] == (132, 132, 132, 1)
            assert f["nodule_crop"].shape[0] == report["nodule_crops"] == report["nodules"]
        out = tmp_path / f"{subset}.h5"
        _export_to_full(crops, out)
        assert_same_patch_file(out, full)
        assert crops.stat().st_size < full.stat().st_size


@pytest.fixture(scope="module")
def volumes_run(tmp_path_factory):
    return _layout_run(tmp_path_factory, "volumes")


@pytest.mark.slow
@pytest.mark.mpi
def test_volumes_layout_run_is_verified_and_exports_to_the_full_files(runs, volumes_run, tmp_path):
    for subset in ("subset0", "subset1"):
        report = json.loads((volumes_run / f"results/luna16/report/{subset}.verify.json").read_text())
        assert report["ok"] and report["layout"] == "volumes", report["failures"]
        vols = volumes_run / f"results/luna16/patches/{subset}.h5"
        full = runs[2] / f"results/luna16/patches/{subset}.h5"
        with h5py.File(vols, "r") as f:
            assert "nodule" not in f and "non_nodule" not in f
            assert f["volume_brick"].shape[0] == report["volume_bricks"] > 0
        out = tmp_path / f"{subset}.h5"
        _export_to_full(vols, out)
        assert_same_patch_file(out, full)
        assert vols.stat().st_size * 10 < full.stat().st_size
