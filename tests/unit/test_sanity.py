"""Tests of ctpatch.report.sanity: PNG grids of random patches for LDCT and LUNA16 files."""

from __future__ import annotations

import json

import h5py
import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest
from _patchfiles import pair_patient, write_canonical
from paths import SHARED_DATA, SHARED_LDCT

from ctpatch.luna16.job import PROV_NEGATIVE, PROV_NODULE
from ctpatch.report.sanity import _upsample_label, main, pick, write_png
from ctpatch.settings import defaults

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ldct_file(tmp_path_factory):
    if not SHARED_LDCT.is_dir():
        pytest.skip(f"real LDCT data not found under {SHARED_DATA}")
    from ctpatch.ldct.job import Job

    out = tmp_path_factory.mktemp("sanity")
    table = out / "L286.tsv"
    assert pair_patient(SHARED_LDCT / "L286", table, out / "r.json", random_n=1) == 0
    settings = {
        "patch": {"code": "p96"},
        "air_threshold": {"enabled": True},
        "rot_augment": {"enabled": True},
        "dose_blend": {"enabled": True},
    }
    job = Job(settings, {"pairs": [str(table)]})
    path = out / "patches.h5"
    write_canonical(job, path, job.units()[:1])
    return path


@pytest.fixture
def luna_file(tmp_path):
    """A small LUNA16-like file: 3 nodule and 2 negative patches of 20^3, labels pooled to 3^3."""
    path = tmp_path / "luna.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["mode"] = "luna16"  # the attributes every patch file has
        f.attrs["settings"] = json.dumps(defaults("patches").to_dict(), sort_keys=True)
        f["nodule"] = rng.normal(size=(3, 20, 20, 20, 1)).astype(np.float32)
        lab = np.zeros((3, 3, 3, 3, 2), np.float32)
        lab[..., 0] = 1
        lab[:, 1, 1, 1] = (0, 1)
        f["label_nodule"] = lab
        f["non_nodule"] = rng.normal(size=(2, 20, 20, 20, 1)).astype(np.float32)
        neg = np.zeros((2, 3, 3, 3, 2), np.float32)
        neg[..., 0] = 1
        f["label_non_nodule"] = neg
        nod = np.zeros(3, PROV_NODULE)
        nod["seriesuid"] = b"1.2.3.4.5.6.7.8.9.10.11.12.13"
        nod["nodule_index"] = [0, 0, 1]
        nod["shift"] = [[0, 0, 0], [8, 0, 0], [0, -8, 8]]
        nod["centre_voxel"] = [[10, 11, 12], [18, 11, 12], [30, 22, 40]]
        f["provenance/nodule"] = nod
        negp = np.zeros(2, PROV_NEGATIVE)
        negp["seriesuid"] = b"1.2.3.4.5.6.7.8.9.10.11.12.13"
        negp["negative_index"] = [0, 1]
        negp["source"] = [b"random", b"candidate"]
        f["provenance/non_nodule"] = negp
    return path


def test_pick_is_deterministic_and_without_replacement():
    a = pick([5, 7, 3], 6, seed=2)
    assert a == pick([5, 7, 3], 6, seed=2)
    assert len(set(a)) == 6 and all(0 <= r < (5, 7, 3)[g] for g, r in a)
    assert a != pick([5, 7, 3], 6, seed=3)
    assert len(pick([2, 1], 10, seed=0)) == 3


def test_ldct_png_with_provenance_titles(ldct_file, tmp_path):
    out4, out2 = tmp_path / "four.png", tmp_path / "two.png"
    titles = write_png([ldct_file], out4, n=4, seed=0)
    write_png([ldct_file], out2, n=2, seed=0)
    assert out4.read_bytes()[:8] == PNG_MAGIC
    h4, h2 = mpimg.imread(out4).shape[0], mpimg.imread(out2).shape[0]
    assert h4 == pytest.approx(2 * h2, rel=0.05)  # one row of three panels per patch
    with h5py.File(ldct_file, "r") as f:
        prov = f["provenance/patch"][...]
    chosen = [r for _, r in pick([len(prov)], 4, 0)]
    assert len(titles) == 4
    for title, r in zip(titles, chosen):
        row = prov[r]
        assert title.startswith("L286 ")
        assert f"corner ({row['corner'][0]}, {row['corner'][1]})" in title
        assert f"patch {row['patch_index']}" in title
        assert (f"rot {90 * int(row['rot_k'])}°" in title) == (row["rot_k"] > 0)
        assert ("blend f=" in title) == bool(np.isfinite(row["blend"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["four.png", "two.png"]  # no temp files left


def test_luna_png_with_label_overlay(luna_file, tmp_path):
    out = tmp_path / "luna.png"
    assert main(["--patches", str(luna_file), "--out", str(out), "--n", "1", "--seed", "1"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    titles = write_png([luna_file], tmp_path / "b.png", n=5, seed=1)
    assert sum("nodule" in t and "negative" not in t for t in titles) == 3
    assert sum("negative" in t for t in titles) == 2
    assert any("shift [0, -8, 8]" in t and "centre [30, 22, 40]" in t for t in titles)


def test_label_upsampling_covers_the_pooled_block():
    lab = np.zeros((3, 3, 3, 2))
    lab[1, 1, 1, 1] = 1
    up = _upsample_label(lab, 20)  # pool = ceil(20 / 3) = 7
    assert up.shape == (20, 20, 20)
    expect = np.zeros((20, 20, 20), bool)
    expect[7:14, 7:14, 7:14] = True
    assert np.array_equal(up, expect)


def test_bad_inputs_exit_1(tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["something"] = np.zeros(3)
    assert main(["--patches", str(other), "--out", str(tmp_path / "x.png")]) == 1
    assert "not a ctpatch patch file" in capsys.readouterr().err
    assert main(["--patches", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- pictures a person can read (issue 15 item 7)
def _figure_rows(paths, **options):
    from ctpatch.report.sanity import _luna_rows

    files = [h5py.File(p, "r") for p in paths]
    try:
        return _luna_rows(files, **options)
    finally:
        for f in files:
            f.close()


def test_every_nodule_patch_is_shown_through_its_nodule(luna):
    with h5py.File(luna.files[0], "r") as f:
        prov = f["provenance/nodule"][...]
    shifted = np.abs(prov["shift"]).max(axis=1)
    assert shifted.max() >= 32  # patches whose nodule lies far from the middle are among them
    rows, _ = _figure_rows(luna.files[:1], n=len(prov), seed=0, kind="nodule")
    assert len(rows) == len(prov)
    for title, planes in rows:
        for image, label, name in planes:  # each of the three planes cuts the nodule's label sphere
            assert label.any(), (title, name)


def test_lung_window_from_the_files_normalize_settings(luna):
    from ctpatch.core.normalize import hu_window
    from ctpatch.report.sanity import LUNG_WINDOW_HU

    _, window = _figure_rows(luna.files[:1], n=2, seed=0)
    norm = luna.settings["normalize"]
    lo_hu, hi_hu = LUNG_WINDOW_HU
    assert hi_hu - lo_hu == 1500 and (lo_hu + hi_hu) / 2 == -600  # the usual lung window
    expected = [
        (min(max(h, norm["hu_min"]), norm["hu_max"]) - norm["hu_min"]) / (norm["hu_max"] - norm["hu_min"])
        - norm["center"]
        for h in (lo_hu, hi_hu)
    ]
    assert window == pytest.approx(expected, abs=1e-6)
    assert window == pytest.approx(hu_window(np.array(LUNG_WINDOW_HU), **norm).tolist(), abs=1e-6)


def test_negatives_shown_are_not_air_when_the_file_has_others(luna):
    from ctpatch.report.sanity import AIR_HU, AIR_SHARE

    norm = luna.settings["normalize"]
    level = (AIR_HU - norm["hu_min"]) / (norm["hu_max"] - norm["hu_min"]) - norm["center"]
    with h5py.File(luna.files[0], "r") as f:
        negatives = f["non_nodule"]
        tissue = sum(float(np.mean(negatives[i] > level)) >= AIR_SHARE for i in range(negatives.shape[0]))
    assert tissue >= 12
    rows, _ = _figure_rows(luna.files[:1], n=12, seed=0, kind="non_nodule")
    assert len(rows) == 12
    with h5py.File(luna.files[0], "r") as f:
        for title, _ in rows:
            index = int(title.split("negative ")[1].split(" ")[0])
            row = int(np.flatnonzero(f["provenance/non_nodule"]["negative_index"] == index)[0])
            assert float(np.mean(f["non_nodule"][row] > level)) >= AIR_SHARE, title


@pytest.mark.parametrize("grid", [False, True])
def test_captions_are_readable(luna, grid):
    import matplotlib.pyplot as plt

    from ctpatch.report.sanity import DPI, make_figure

    fig, titles = make_figure(luna.files[:1], n=8, seed=0, kind="non_nodule" if grid else None, grid=grid)
    try:
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
        assert texts and min(t.get_fontsize() for t in texts) >= 9 and DPI >= 100
        width_px = fig.get_size_inches()[0] * DPI
        assert width_px >= 1000  # panels of at least ~250 px for 68-voxel patches
    finally:
        plt.close(fig)
