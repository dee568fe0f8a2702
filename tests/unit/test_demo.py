"""Tests of ctpatch.luna16.demo: LUNA-like geometry, tables matching the plan, HU-like voxels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from demos import GENERATOR_DEMO, TINY_DEMO

from ctpatch.luna16.demo import plan_scans, write_dataset
from ctpatch.settings import section

DEFAULTS = section("demo")  # the schema's demo defaults


def my_index(grid, world):
    D = np.asarray(grid.direction, dtype=float).reshape(3, 3)
    return D.T @ (np.asarray(world, float) - np.asarray(grid.origin)) / np.asarray(grid.spacing)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    plans = write_dataset(root, GENERATOR_DEMO, seed=3)
    return root, plans


# ---------------------------------------------------------------- the plan
def test_plan_deterministic_for_a_seed_and_different_for_another():
    a, b, c = plan_scans(None, 0), plan_scans(None, 0), plan_scans(None, 1)
    assert a == b
    assert [p.series_uid for p in a] != [p.series_uid for p in c]
    assert [p.grid for p in a] != [p.grid for p in c]
    assert [p.nodules for p in a] != [p.nodules for p in c]


def test_plan_geometry_is_luna_like():
    plans = plan_scans({"subsets": 3, "scans_per_subset": 4}, seed=0)
    assert len(plans) == 12
    assert [p.subset for p in plans] == [f"subset{k}" for k in range(3) for _ in range(4)]
    assert len({p.series_uid for p in plans}) == 12
    assert all(p.series_uid.startswith("1.3.6.1.4.1.14519.5.2.1.6279.6001.") for p in plans)
    for p in plans:
        g = p.grid
        assert g.size[:2] == (512, 512)
        assert DEFAULTS["slices"][0] <= g.size[2] <= DEFAULTS["slices"][1]
        assert g.spacing[0] == g.spacing[1] and 0.6 <= g.spacing[0] <= 0.9
        assert 1.0 <= g.spacing[2] <= 2.5 and (g.spacing[2] / 0.25) == pytest.approx(round(g.spacing[2] / 0.25))
        assert g.origin[2] < 0 and g.origin[0] < 0 and g.origin[1] < 0
        assert g.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        assert 1 <= len(p.nodules) <= 3
        assert len(p.candidates) == DEFAULTS["candidates_per_scan"]


def test_every_nodule_and_candidate_inside_the_volume():
    plans = plan_scans({"subsets": 3, "scans_per_subset": 4}, seed=5)
    for flat, p in enumerate(plans):
        size = np.asarray(p.grid.size)
        for n in p.nodules:
            idx = my_index(p.grid, n.world)
            assert np.all(idx >= 0) and np.all(idx <= size - 1), (p.series_uid, idx)
            assert 4.0 <= n.diameter_mm <= 24.0
        for c in p.candidates:
            idx = my_index(p.grid, c)
            assert np.all(idx >= 0) and np.all(idx <= size - 1)
        if flat % DEFAULTS["edge_nodule_every"] == 0:  # that scan's first nodule is within 2 slices of an end
            z = my_index(p.grid, p.nodules[0].world)[2]
            assert min(z, size[2] - 1 - z) <= 2.0


def test_scans_without_nodules_and_unknown_settings():
    plans = plan_scans({"subsets": 1, "scans_per_subset": 3, "scans_without_nodules": 2}, seed=0)
    assert [len(p.nodules) > 0 for p in plans] == [False, False, True]
    with pytest.raises(ValueError, match="demo: Additional properties.*bogus"):
        plan_scans({"bogus": 1}, 0)


# ---------------------------------------------------------------- the files
def test_files_in_luna_layout(dataset):
    root, plans = dataset
    for p in plans:
        mhd = root / p.subset / f"{p.series_uid}.mhd"
        assert mhd.is_file() and mhd.with_suffix(".raw").is_file()
        assert f"ElementDataFile = {p.series_uid}.raw" in mhd.read_text()
    assert sorted(x.name for x in root.iterdir()) == ["CSVFILES", "subset0", "subset1"]
    assert not list(root.rglob("*tmp*"))


def test_annotations_rows_match_the_plan(dataset):
    root, plans = dataset
    df = pd.read_csv(root / "CSVFILES" / "annotations.csv", dtype={"seriesuid": str})
    assert list(df.columns) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    expected = [(p.series_uid, *n.world, n.diameter_mm) for p in plans for n in p.nodules]
    got = [tuple(r) for r in df.itertuples(index=False)]
    assert got == expected  # exact: the coordinates are written with repr


def test_candidates_and_truth_match_the_plan(dataset):
    root, plans = dataset
    df = pd.read_csv(root / "CSVFILES" / "candidates.csv", dtype={"seriesuid": str})
    for p in plans:
        rows = df[df["seriesuid"] == p.series_uid]
        assert (rows["class"] == 1).sum() == len(p.nodules)
        assert (rows["class"] == 0).sum() == GENERATOR_DEMO["candidates_per_scan"]
        got = [tuple(r) for r in rows[rows["class"] == 0][["coordX", "coordY", "coordZ"]].itertuples(index=False)]
        assert got == list(p.candidates)
    truth = json.loads((root / "CSVFILES" / "truth.json").read_text())
    assert truth["seed"] == 3
    assert [s["seriesuid"] for s in truth["scans"]] == [p.series_uid for p in plans]
    assert [[tuple(n["world"]) for n in s["nodules"]] for s in truth["scans"]] == [
        [n.world for n in p.nodules] for p in plans
    ]


def test_written_geometry_equals_the_plan(dataset):
    root, plans = dataset
    for p in plans:
        img = sitk.ReadImage(str(root / p.subset / f"{p.series_uid}.mhd"))
        assert img.GetPixelID() == sitk.sitkInt16
        assert img.GetSize() == p.grid.size
        np.testing.assert_allclose(img.GetSpacing(), p.grid.spacing, rtol=1e-12)
        np.testing.assert_allclose(img.GetOrigin(), p.grid.origin, rtol=1e-12)


def test_voxels_are_hu_like(dataset):
    root, plans = dataset
    for p in plans:
        img = sitk.ReadImage(str(root / p.subset / f"{p.series_uid}.mhd"))
        vol = sitk.GetArrayFromImage(img)  # (z, y, x)
        n = p.grid.size[0]
        # outside the reconstruction circle (image corners): -3024
        assert np.all(vol[:, 0, 0] == -3024) and np.all(vol[:, -1, -1] == -3024)
        # just inside the circle at the top centre, outside the body: air
        air = vol[:, 3:6, n // 2 - 2 : n // 2 + 3]
        assert abs(np.median(air) + 1000) < 15
        z, y, x = np.indices(vol.shape)
        s = np.asarray(p.grid.spacing)
        for nod in p.nodules:
            ix, iy, iz = my_index(p.grid, nod.world)
            d2 = ((x - ix) * s[0]) ** 2 + ((y - iy) * s[1]) ** 2 + ((z - iz) * s[2]) ** 2
            r = nod.diameter_mm / 2
            core = vol[d2 <= (0.6 * r) ** 2]
            shell = vol[(d2 >= (r + 1.5) ** 2) & (d2 <= (r + 3.0) ** 2)]
            assert abs(np.median(core) - 60) < 20  # nodule: soft tissue
            assert abs(np.median(shell) + 850) < 20  # lung parenchyma around it
            assert core.mean() > shell.mean() + 500


def test_a_new_seed_replaces_the_demo_data_set_and_what_was_made_of_it(tmp_path):
    """Issue 22: a changed seed left the old scans and volumes behind (245 -> 490 MB)."""
    from ctpatch.luna16.demo import prune_scans, stale_demo_outputs

    demo = {**TINY_DEMO, "subsets": 2}
    old = write_dataset(tmp_path / "demo", demo, 1)
    new_settings = {**demo, "subsets": 1}
    new = plan_scans(new_settings, 2)
    assert not {p.series_uid for p in old} & {p.series_uid for p in new}  # another seed: other series
    write_dataset(tmp_path / "demo", new_settings, 2)
    (tmp_path / "demo" / "subset0" / "notes.txt").write_text("mine")  # not a scan: kept
    removed = prune_scans(tmp_path / "demo", new)
    left = {p.stem for p in (tmp_path / "demo").glob("subset*/*.mhd")}
    assert left == {p.series_uid for p in new} and not (tmp_path / "demo" / "subset1").exists()
    assert len(removed) == 3  # the old subset0 scan's .mhd and .raw, the old subset1 folder
    assert (tmp_path / "demo" / "subset0" / "notes.txt").exists()

    # what a run made of the old data set
    res = tmp_path / "results" / "luna16"
    made = []
    for p in old + new:
        for suffix in (".npy", ".json"):
            made.append(res / "volumes" / p.subset / f"{p.series_uid}{suffix}")
    for sub in ("subset0", "subset1"):
        made += [res / "patches" / f"{sub}.h5", res / "sanity" / f"{sub}.png", res / "report" / f"{sub}.verify.json"]
        made.append(res / "labels" / sub / "nodules.tsv")
    made.append(res / "report" / "plan.txt")
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    scans = {"subset0": [p.series_uid for p in new]}
    stale = set(stale_demo_outputs(res, scans))
    expected = {
        res / "volumes" / "subset0" / f"{p.series_uid}{s}"
        for p in old
        if p.subset == "subset0"
        for s in (".npy", ".json")
    }
    expected |= {res / "volumes" / "subset1", res / "labels" / "subset1", res / "patches" / "subset1.h5"}
    expected |= {res / "sanity" / "subset1.png", res / "report" / "subset1.verify.json"}
    assert stale == expected
