"""Tests of ctpatch.sanity: PNG grids of random patches for LDCT and LUNA16 files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import matplotlib.image as mpimg
import numpy as np
import pytest

from _patchfiles import pair_patient
from ctpatch.extract_luna import PROV_NEGATIVE, PROV_NODULE
from ctpatch.sanity import _upsample_label, main, pick, write_png

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LDCT = DATA / "ldct"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ldct_file(tmp_path_factory):
    if not LDCT.is_dir():
        pytest.skip(f"real LDCT data not found under {DATA}")
    from ctpatch.extract_ldct import Job

    out = tmp_path_factory.mktemp("sanity")
    table = out / "L286.tsv"
    assert pair_patient(LDCT / "L286", table, out / "r.json", random_n=1) == 0
    settings = {"patch": {"code": "p96"}, "air_threshold": {"enabled": True}, "rot_augment": {"enabled": True},
                "dose_blend": {"enabled": True}}
    job = Job(SimpleNamespace(settings=settings, inputs={"pairs": [str(table)]}))
    path = out / "patches.h5"
    with job.writer(path) as w:
        job.run(job.units()[0], w)
    return path


@pytest.fixture
def luna_file(tmp_path):
    """A small LUNA16-like file: 3 nodule and 2 negative patches of 20^3, labels pooled to 3^3."""
    path = tmp_path / "luna.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
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
