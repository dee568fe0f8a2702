"""Tests of ctpatch.report.explain: real patches regenerate equal; a changed voxel or provenance field is found."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from ctpatch.report.explain import EXIT_DIFFERENT, EXIT_EQUAL, EXIT_ERROR, explain, main


def tampered(src, dst, edit):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


@pytest.mark.parametrize("kind,index", [("nodule", 0), ("nodule", 40), ("non_nodule", 3), ("non_nodule", -1)])
def test_a_real_luna_patch_regenerates_equal(luna, kind, index, capsys):
    path = luna.files[1]
    assert main([str(path), str(index), "--kind", kind, "--workdir", str(luna.workdir)]) == EXIT_EQUAL
    out = capsys.readouterr().out
    assert out.rstrip().endswith("equal")
    with h5py.File(path, "r") as f:
        prov = f[f"provenance/{kind}"][index]
    assert prov["seriesuid"].decode() in out and f"patch_index     {prov['patch_index']}" in out


def test_the_workdir_is_found_above_the_file_and_the_subset_in_the_root(luna, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # recorded paths are not relative to here
    e = explain(luna.files[0], 5)
    assert e.equal, e.differences
    assert e.kind == "nodule" and any(s.endswith(".mhd") and "/subset0/" in s for s in e.source)


def test_a_changed_voxel_is_found_with_its_place(luna, tmp_path, capsys):
    def edit(f):
        patch = f["non_nodule"][12]
        patch[3, 40, 7, 0] += 0.125
        f["non_nodule"][12] = patch

    copy = tampered(luna.files[0], tmp_path / "subset0.h5", edit)
    assert main([str(copy), "12", "--kind", "non_nodule", "--workdir", str(luna.workdir)]) == EXIT_DIFFERENT
    out = capsys.readouterr().out
    assert "1 of 314432 values differ" in out and "largest difference 0.125 at (x, y, z, c) = (3, 40, 7, 0)" in out
    # the other patches of the copy are still equal
    assert explain(copy, 11, "non_nodule", luna.workdir).equal


def test_a_changed_label_or_provenance_is_found(luna, tmp_path):
    def edit(f):
        lab = f["label_nodule"][2]
        lab[0, 0, 0] = lab[0, 0, 0][::-1]
        f["label_nodule"][2] = lab
        prov = f["provenance/nodule"][...]
        prov["centre_voxel"][2] += [1, 0, 0]
        f["provenance/nodule"][...] = prov

    copy = tampered(luna.files[1], tmp_path / "subset1.h5", edit)
    e = explain(copy, 2, "nodule", luna.workdir)
    assert not e.equal and e.largest == 1.0
    assert any(d.startswith("provenance.centre_voxel") for d in e.differences)
    assert any(d.startswith("label (label_nodule): 2 of 1024 values differ") for d in e.differences)


def test_a_missing_source_scan_is_an_error(luna, tmp_path, capsys):
    assert main([str(luna.files[0]), "0", "--workdir", str(tmp_path)]) == EXIT_ERROR
    assert "LUNA16 root results/demo/luna16 not found" in capsys.readouterr().err


def test_an_index_out_of_range_is_an_error(luna, capsys):
    assert main([str(luna.files[0]), "57", "--workdir", str(luna.workdir)]) == EXIT_ERROR
    assert "expected an index in [0, 57), got 57" in capsys.readouterr().err


def test_a_real_ldct_patch_regenerates_equal_and_a_change_is_found(ldct, tmp_path, capsys):
    with h5py.File(ldct.files[1], "r") as f:
        prov = f["provenance/patch"][...]
    # a blended, a noised and a plain patch (augmentations are redrawn from their keyed generators)
    picks = [
        int(np.flatnonzero(~np.isnan(prov["blend"]))[0]),
        int(np.flatnonzero(prov["noise"])[0]),
        int(np.flatnonzero(np.isnan(prov["blend"]) & ~prov["noise"] & ~prov["blur"])[0]),
    ]
    for i in picks:
        assert main([str(ldct.files[1]), str(i)]) == EXIT_EQUAL
        assert capsys.readouterr().out.rstrip().endswith("equal")

    def edit(f):
        t = f["target"][picks[0]]
        t[0, 10, 20] += 8
        f["target"][picks[0]] = t

    copy = tampered(ldct.files[1], tmp_path / "part1.h5", edit)
    assert main([str(copy), str(picks[0]), "--kind", "patch"]) == EXIT_DIFFERENT
    assert "target): 1 of 3025 values differ" in capsys.readouterr().out
