"""Tests of ctpatch.report.plan against real runs: exact counts, sizes within 30 %, memory against a measured job."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from _patchfiles import LUNA_CONFIG
from demos import MEMORY_DEMO

from ctpatch.io import mhd
from ctpatch.report.plan import make_plan
from ctpatch.report.plan.cli import main
from ctpatch.settings import luna_table, scope_settings, validate, write_settings

SIZE_TOLERANCE = 0.30  # estimated file size vs the real file


@pytest.fixture(scope="module")
def luna_plan(luna):
    return make_plan(copy.deepcopy(luna.config), luna.workdir, sample=24, cores=2)


def test_luna_counts_equal_the_real_run(luna, luna_plan):
    ann = pd.read_csv(luna.workdir / luna_table(luna.config, "annotations"))
    assert set(luna_plan["groups"]) == {"subset0", "subset1"}
    for path in luna.files:
        g = luna_plan["groups"][path.stem]
        with h5py.File(path, "r") as f:
            uids = set(f["provenance/nodule"]["seriesuid"].astype(str))
            nodules = int(ann["seriesuid"].isin(uids).sum())
            assert g["nodules"] == nodules and g["scans"] == len(uids) == 1
            assert g["patches"]["nodule"] == f["nodule"].shape[0] == 57 * nodules
            assert g["patches"]["non_nodule"] == f["non_nodule"].shape[0] == 3 * 57 * nodules
    assert luna_plan["total"]["patches"] == {"nodule": 114, "non_nodule": 342}


def test_luna_size_estimate_is_within_tolerance_of_the_real_files(luna, luna_plan):
    real = {p.stem: p.stat().st_size for p in luna.files}
    for subset, size in real.items():
        est = luna_plan["groups"][subset]["estimated_file_bytes"]
        assert abs(est - size) <= SIZE_TOLERANCE * size, (subset, est, size)
    assert abs(luna_plan["total"]["estimated_file_bytes"] - sum(real.values())) <= SIZE_TOLERANCE * sum(real.values())
    # raw size is exact: 68³ float32 + 8³x2 float32 per patch
    assert luna_plan["total"]["raw_bytes"] == 456 * (68**3 * 4 + 8**3 * 2 * 4)
    smp = luna_plan["sample"]
    assert smp["patches"]["nodule"] >= 4 and smp["patches"]["non_nodule"] >= 4
    # float16 halves the raw size; the other filters are measured, none is the raw size
    files = luna_plan["total"]["file_bytes"]
    assert files["float16/none"] < 0.51 * files["float32/none"] and files["float32/gzip"] < files["float32/none"]
    # every codec is reported; the default (blosc2-zstd) is the file's own and smaller than lzf
    assert {k.split("/")[1] for k in files} == {"blosc2-zstd", "blosc2-lz4", "lzf", "gzip", "none"}
    assert luna_plan["total"]["estimated_file_bytes"] == files["float32/blosc2-zstd"] < files["float32/lzf"]


def test_luna_crops_size_estimate_is_within_tolerance_of_the_real_files(luna_crops):
    plan = make_plan(copy.deepcopy(luna_crops.config), luna_crops.workdir, sample=24, cores=2)
    real = {p.stem: p.stat().st_size for p in luna_crops.files}
    for subset, size in real.items():
        est = plan["groups"][subset]["estimated_file_bytes"]
        assert abs(est - size) <= SIZE_TOLERANCE * size, (subset, est, size)
    # raw: one 132³ crop per nodule instead of 57 patches' images, labels and negatives unchanged
    assert plan["total"]["raw_bytes"] == 2 * 132**3 * 4 + 456 * 8**3 * 2 * 4 + 342 * 68**3 * 4


def test_luna_volumes_size_estimate_is_within_tolerance_of_the_real_files(luna_volumes):
    plan = make_plan(copy.deepcopy(luna_volumes.config), luna_volumes.workdir, sample=24, cores=2)
    real = {p.stem: p.stat().st_size for p in luna_volumes.files}
    for subset, size in real.items():
        est = plan["groups"][subset]["estimated_file_bytes"]
        assert abs(est - size) <= SIZE_TOLERANCE * size, (subset, est, size)
        # raw: the volume in whole 32³ bricks instead of every image patch; labels unchanged
        g = plan["groups"][subset]
        assert g["brick_voxels"] % 32**3 == 0 and g["brick_voxels"] >= g["out_voxels"]
        assert g["raw_bytes"] == g["brick_voxels"] * 4 + sum(g["patches"].values()) * 8**3 * 2 * 4


def test_luna_plan_cli_prints_the_table_and_writes_json(luna, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(LUNA_CONFIG))
    out_json = tmp_path / "plan.json"
    t = time.perf_counter()
    assert (
        main(
            [
                "--configfile",
                str(cfg),
                "--json",
                str(out_json),
                "--workdir",
                str(luna.workdir),
                "--cores",
                "4",
                "--sample",
                "8",
            ]
        )
        == 0
    )
    assert time.perf_counter() - t < 30
    text = capsys.readouterr().out
    for line in (
        "subset0",
        "subset1",
        "total",
        "output size per dtype and compression",
        "convert_mhd",
        "extract_patches rank",
        "estimated time on 4 cores",
    ):
        assert line in text
    data = json.loads(out_json.read_text())
    assert data["total"]["patches"] == {"nodule": 114, "non_nodule": 342}
    assert data["time"]["cores"] == 4 and data["time"]["total_wall_seconds"] > 0


def test_no_sample_gives_counts_and_raw_sizes_only(luna, capsys, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(LUNA_CONFIG))
    assert main(["--configfile", str(cfg), "--no-sample"]) == 0
    text = capsys.readouterr().out
    assert "no sample measured" in text and "n/a" in text


# ---------------------------------------------------------------- a LUNA16-sized header set
def write_luna_tree(root, rng, n_scans=888, subsets=10):
    """LUNA16's layout: subsetK/<uid>.mhd + a sparse .raw of the declared size, and annotations.csv.

    Scan 0 is small and real (the sample reads it); the others are 512 x 512 x 100-600 and never read.
    """
    rows, truth = [], {}
    for k in range(n_scans):
        sub = f"subset{k % subsets}"
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{10**6 + k}"
        nx, nz = (48, 40) if k == 0 else (512, int(rng.integers(100, 600)))
        sxy, sz = (0.7, 2.5) if k == 0 else (float(rng.uniform(0.5, 0.9)), 1.25)
        origin = (-sxy * nx / 2, -sxy * nx / 2, -200.0)
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uid}.mhd").write_text(
            "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
            "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
            f"Offset = {origin[0]} {origin[1]} {origin[2]}\nElementSpacing = {sxy} {sxy} {sz}\n"
            f"DimSize = {nx} {nx} {nz}\nElementType = MET_SHORT\nElementDataFile = {uid}.raw\n"
        )
        with open(folder / f"{uid}.raw", "wb") as fh:
            if k == 0:
                fh.write(rng.integers(-1000, 400, nx * nx * nz).astype("<i2").tobytes())
            else:
                fh.truncate(nx * nx * nz * 2)
        n = 0 if k % 3 == 2 else 1 + k % 2
        for _ in range(n):
            w = [origin[0] + nx * sxy * 0.5, origin[1] + nx * sxy * 0.4, origin[2] + nz * sz * 0.5]
            rows.append(f"{uid},{w[0]},{w[1]},{w[2]},{float(rng.uniform(4, 20))}")
        truth[uid] = (sub, n)
    (root / "CSVFILES").mkdir()
    (root / "CSVFILES" / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "\n".join(rows) + "\n"
    )
    return truth


def test_a_full_luna16_header_set_is_planned_from_headers_alone(tmp_path, monkeypatch):
    truth = write_luna_tree(tmp_path / "LUNA16", np.random.default_rng(0))
    config = validate({"luna16": {"root": str(tmp_path / "LUNA16"), "resample": {"interpolator": "linear"}}})
    reads = []  # every scan whose voxels are read (the plan imports read_image where it uses it)
    original = mhd.read_image
    monkeypatch.setattr(mhd, "read_image", lambda p: reads.append(p) or original(p))
    t = time.perf_counter()
    plan = make_plan(config, tmp_path, sample=8, cores=2)
    seconds = time.perf_counter() - t
    assert len(reads) == 1 and reads[0].name.endswith("1000000.mhd")  # one scan's voxels, for the sample
    assert plan["seconds"]["headers"] < 5 and seconds < 30
    assert plan["total"]["scans"] == 888
    for k in range(10):
        sub = f"subset{k}"
        nod = [n for s, n in truth.values() if s == sub]
        g = plan["groups"][sub]
        assert g["scans"] == len(nod) and g["nodules"] == sum(nod)
        assert g["patches"] == {"nodule": 57 * sum(nod), "non_nodule": 3 * 57 * sum(nod)}


# ---------------------------------------------------------------- memory against a measured job
def test_convert_memory_estimate_is_within_tolerance_of_a_measured_job(tmp_path):
    from ctpatch.luna16.demo import write_dataset

    config = validate({"demo": dict(MEMORY_DEMO), "luna16": {"resample": {"interpolator": "linear"}}})
    (p,) = write_dataset(tmp_path / "results" / "demo" / "luna16", MEMORY_DEMO, 0)
    scan = tmp_path / "results" / "demo" / "luna16" / p.subset / f"{p.series_uid}.mhd"
    settings = tmp_path / "convert.json"
    write_settings(scope_settings(config, "convert"), settings, "convert")
    code = (
        "import sys; from ctpatch.luna16.convert import main; rc = main(sys.argv[1:]); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--scan",
            str(scan),
            "--npy-out",
            str(tmp_path / "v.npy"),
            "--json-out",
            str(tmp_path / "v.json"),
            "--settings-file",
            str(settings),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = int(out.stdout.split()[-1]) * 1024
    est = make_plan(config, tmp_path, sample=0, cores=1)["memory"]["convert_mhd"]
    assert abs(est - measured) <= 0.2 * measured, (est, measured)


# ---------------------------------------------------------------- LDCT
def test_ldct_plan_against_the_real_run(ldct):
    plan = make_plan(copy.deepcopy(ldct.config), ldct.workdir, sample=24, cores=2)
    pairs = np.concatenate([h5py.File(p, "r")["provenance/pair"][...] for p in ldct.files[:1]])
    n_real = sum(h5py.File(p, "r")["input"].shape[0] for p in ldct.files)
    for patient in ("L096", "L143"):
        g = plan["groups"][patient]
        mine = pairs[pairs["patient"].astype(str) == patient]
        assert g["pairs"] == 4 and g["selected_pairs"] == len(mine) == 2
        assert g["patches_cut"] == int(mine["patches_cut"].sum())  # exact: the grid of every selected slice
        assert g["patches_exact"] is False  # the air threshold depends on pixels: estimated from the sample
    est = plan["total"]["patches"]["patch"]
    assert abs(est - n_real) <= SIZE_TOLERANCE * n_real
    size = sum(p.stat().st_size for p in ldct.files)
    assert abs(plan["total"]["estimated_file_bytes"] - size) <= SIZE_TOLERANCE * size
    assert plan["sample"]["keep_rate"] < 1.0


# ---------------------------------------------------------------- the plan describes the workflow as it is
#: rules that schedule, check headers, record or report (light, like the plan itself) and so take no planned
#: time: every other rule the workflow runs must be a planned step, and every planned step a rule
NOT_PLANNED = {
    "all",
    "plan",
    "check_luna_inputs",
    "sanity_pictures",
    "nodule_pictures",
    "nodule_accounting",
    "verification_table",
    "report_config",
}


def _dry_run_rules(workdir, config: dict) -> set[str]:
    """The rules ``snakemake -n`` schedules for ``config`` in ``workdir`` (the repository's Snakefile)."""
    from paths import REPO

    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "-n",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines()]
    return {r[0] for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "total"}


def test_luna_plan_steps_are_the_rules_that_do_work(luna_plan, tmp_path):
    rules = _dry_run_rules(tmp_path, LUNA_CONFIG)
    assert "merge_patches" not in rules  # the extraction writes the final files once
    assert set(luna_plan["time"]["cpu_seconds"]) == set(luna_plan["time"]["wall_seconds"]) == rules - NOT_PLANNED
    assert {k for k in luna_plan["memory"] if k in rules} == {"convert_mhd", "make_labels", "verify_patches"}


def test_luna_disk_is_one_copy_of_the_patches_plus_volumes_and_masks(luna, luna_plan, tmp_path):
    from ctpatch.store.diskspace import extraction_need

    results = luna.workdir / luna.config["results"] / "luna16"
    inter = luna_plan["intermediate_bytes"]
    assert set(inter) == {"volumes", "masks", "demo_scans"}  # no shards: nothing else is written on the way
    real = {
        "volumes": sum(p.stat().st_size for p in (results / "volumes").rglob("*.npy")),
        "masks": sum(p.stat().st_size for p in (results / "labels").rglob("*.npy")),
    }
    for k, size in real.items():
        assert abs(inter[k] - size) <= SIZE_TOLERANCE * size, (k, inter[k], size)
    patches = sum(p.stat().st_size for p in luna.files)
    assert luna_plan["peak_disk_bytes"] == luna_plan["total"]["estimated_file_bytes"] + sum(inter.values())
    assert abs(luna_plan["peak_disk_bytes"] - patches - sum(real.values()) - inter["demo_scans"]) <= SIZE_TOLERANCE * (
        patches + sum(real.values())
    )
    # the free-space check reads the JSON's estimate: one copy of each subset's file
    out = tmp_path / "plan.json"
    from ctpatch.report.plan.text import _jsonable
    from ctpatch.store.atomic import write_json

    write_json(out, _jsonable(luna_plan))
    for path in luna.files:
        need = extraction_need(out, path.stem)
        assert need == luna_plan["groups"][path.stem]["estimated_file_bytes"]
        assert abs(need - path.stat().st_size) <= SIZE_TOLERANCE * path.stat().st_size


def test_luna_verify_time_is_measured_from_what_verify_does(luna, luna_plan):
    """The estimate (checksum scan + labels read + regenerated sample) is of the order of a real verify."""
    from ctpatch.luna16.verify import verify_luna

    s = luna_plan["sample"]["seconds"]
    assert s["verify_checksum_per_patch"] > 0 and s["verify_read_labels_per_patch"] > 0
    assert "merge_per_patch" not in s and "verify_per_patch" not in s
    results = luna.workdir / luna.config["results"] / "luna16"
    t = time.perf_counter()
    for path in luna.files:
        labels = results / "labels" / path.stem
        inputs = {
            "sidecars": sorted(str(p) for p in (results / "volumes" / path.stem).glob("*.json")),
            "masks_dir": str(labels / "masks"),
            "nodules": str(labels / "nodules.tsv"),
            "candidates": None,
        }
        with h5py.File(path, "r") as f:
            scans = sorted(set(f["provenance/nodule"]["seriesuid"].astype(str)))
        assert verify_luna(path, labels / "nodules.tsv", luna.settings, scans, inputs)["ok"]
    measured = time.perf_counter() - t
    tm = luna_plan["time"]
    est = tm["cpu_seconds"]["verify_patches"] - len(luna.files) * tm["job_start_seconds"]["extract_luna"]
    assert measured / 4 <= est <= measured * 4, (est, measured)


def test_ldct_plan_steps_disk_and_verify_time(ldct, tmp_path):
    from _patchfiles import LDCT_CONFIG

    plan = make_plan(copy.deepcopy(ldct.config), ldct.workdir, sample=24, cores=2)
    rules = _dry_run_rules(tmp_path, LDCT_CONFIG)
    assert set(plan["time"]["cpu_seconds"]) == set(plan["time"]["wall_seconds"]) == rules - NOT_PLANNED
    assert plan["intermediate_bytes"] == {}  # the pair tables aside, only the patch files are written
    size = sum(p.stat().st_size for p in ldct.files)
    assert plan["peak_disk_bytes"] == plan["total"]["estimated_file_bytes"]
    assert abs(plan["peak_disk_bytes"] - size) <= SIZE_TOLERANCE * size
    assert plan["sample"]["verify_per_patch"] > 0 and "merge_per_patch" not in plan["sample"]
