"""Tests of the crops and volumes layouts (ctpatch.core.bricks, the extraction writing them, readers, export).

The reference is the full layout built from the same demo data and settings (each nodule patch cut
on its own), and for the geometry a crop computed here with ``np.pad`` from the converted volume.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ctpatch.core import bricks as layout
from ctpatch.core.shifts import DEFAULT_DIRECTIONS, shift_offsets
from ctpatch.luna16 import layouts as crop_reader
from ctpatch.luna16.export import ExportError, export_full
from ctpatch.luna16.export import main as export_main
from ctpatch.luna16.verify import verify_luna
from ctpatch.readers import PatchDataset, load_all


# ---------------------------------------------------------------- pure geometry
def test_crop_edge_holds_every_shift():
    for stride, m, size in ((8, 4, 68), (4, 2, 20), (3, 0, 9), (5, 3, 31)):
        off = shift_offsets(stride, m, DEFAULT_DIRECTIONS)
        edge = layout.crop_edge(size, off)
        assert edge == size + 2 * stride * m
        # every shifted patch box lies inside the crop box, and some patch touches each face
        centre = np.array([100, 90, 80])
        crop_lo = centre - edge // 2
        lo = centre + off - size // 2
        assert np.all(lo >= crop_lo) and np.all(lo + size <= crop_lo + edge)
        if m:
            assert np.any(lo == crop_lo) and np.any(lo + size == crop_lo + edge)


def test_view_starts_are_margin_plus_shift_and_refuse_leaving_the_crop():
    off = shift_offsets(8, 4, DEFAULT_DIRECTIONS)
    centre = np.array([[50, 60, 70]])
    crop_start = layout.box_start(centre, 132)
    starts = layout.view_starts(centre + off, np.repeat(crop_start, len(off), axis=0), 68, 132)
    assert np.array_equal(starts, 32 + off)
    with pytest.raises(ValueError, match="leave their crop"):
        layout.view_starts(centre + [[33, 0, 0]], crop_start, 68, 132)


def test_match_crops_finds_rows_and_reports_missing_or_duplicate():
    crops = np.array([[0, 0], [0, 1], [2, 0]])
    assert layout.match_crops(np.array([[2, 0], [0, 0], [0, 1], [2, 0]]), crops).tolist() == [2, 0, 1, 2]
    with pytest.raises(ValueError, match="scan 1, nodule 0"):
        layout.match_crops(np.array([[1, 0]]), crops)
    with pytest.raises(ValueError, match="two crops"):
        layout.match_crops(np.array([[0, 0]]), np.array([[0, 0], [0, 0]]))


def test_cut_from_crop_equals_the_padded_volume_crop():
    rng = np.random.default_rng(4)
    vol = rng.normal(size=(30, 25, 20)).astype(np.float32)  # (x, y, z)
    size, edge, pad = 6, 14, 20
    padded = np.pad(vol, pad, constant_values=-5.0)
    centre = np.array([2, 24, 10])  # near two faces: the crop leaves the volume
    crop = padded[tuple(slice(c - edge // 2 + pad, c - edge // 2 + pad + edge) for c in centre)]
    for shift in ([0, 0, 0], [4, -4, 0], [-4, -4, 4]):
        start = np.array(shift) + (edge - size) // 2
        want = padded[
            tuple(slice(c + s - size // 2 + pad, c + s - size // 2 + pad + size) for c, s in zip(centre, shift))
        ]
        assert np.array_equal(layout.cut_from_crop(crop, start, size), want)


# ---------------------------------------------------------------- files: crops vs full layout
def _read_all(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out


def test_crops_file_structure(luna, luna_crops):
    settings = luna_crops.settings
    for path in luna_crops.files:
        with h5py.File(path, "r") as f:
            assert "nodule" not in f and crop_reader.layout_for("crops").matches(f)
            n_nod = f["provenance/nodule"].shape[0]
            crops = f["provenance/nodule_crop"][...]
            assert f["nodule_crop"].shape == (len(crops), 132, 132, 132, 1)
            assert f["nodule_crop"].chunks == (1, 132, 132, 132, 1)
            assert n_nod == 57 * len(crops) > 0
            assert f["nodule_view"].shape == (n_nod, 4)
            assert np.all(crops["edge"] == 132)
            assert np.array_equal(crops["start_voxel"], crops["centre_voxel"] - 66)
            assert json.loads(f.attrs["settings"])["output"]["layout"] == "crops" == settings["output"]["layout"]


def test_every_nodule_patch_read_from_crops_equals_the_full_layout(luna, luna_crops):
    for full_path, crop_path in zip(luna.files, luna_crops.files):
        assert full_path.name == crop_path.name
        with h5py.File(full_path, "r") as full, h5py.File(crop_path, "r") as crops:
            want = full["nodule"][...]
            patches = crop_reader.images(crops, "nodule")
            assert patches.shape == want.shape and patches.dtype == want.dtype
            assert np.array_equal(patches[:], want)  # one block: each crop decoded once
            for i in (0, 1, len(want) - 1, -2):  # single rows, as a training loader reads them
                assert np.array_equal(patches[i], want[i])
            buf = np.zeros((3, *want.shape[1:]), want.dtype)
            patches.read_direct(buf, np.s_[5:8], np.s_[0:3])
            assert np.array_equal(buf, want[5:8])
            for name in (
                "label_nodule",
                "non_nodule",
                "label_non_nodule",
                "provenance/nodule",
                "provenance/non_nodule",
            ):
                assert np.array_equal(full[name][...], crops[name][...]), name


def test_a_crop_equals_the_padded_volume_around_its_nodule(luna_crops):
    path = luna_crops.files[0]
    with h5py.File(path, "r") as f:
        row = f["provenance/nodule_crop"][0]
        crop = f["nodule_crop"][0][..., 0]
    uid = row["seriesuid"].decode()
    vol = np.load(luna_crops.workdir / luna_crops.config["results"] / "luna16" / "volumes" / path.stem / f"{uid}.npy")
    pad = 70
    padded = np.pad(vol.transpose(2, 1, 0), pad, constant_values=vol.min())
    lo = row["centre_voxel"] - 66 + pad
    assert np.array_equal(crop, padded[lo[0] : lo[0] + 132, lo[1] : lo[1] + 132, lo[2] : lo[2] + 132])


def test_readers_give_the_same_patches_in_both_layouts(luna, luna_crops):
    for kind in ("nodule", "non_nodule"):
        a, b = PatchDataset(luna.files, kind=kind), PatchDataset(luna_crops.files, kind=kind)
        assert len(a) == len(b) > 0
        for i in (0, len(a) // 2, len(a) - 1):
            ia, la, pa = a[i]
            ib, lb, pb = b[i]
            assert np.array_equal(ia, ib) and np.array_equal(la, lb)
            assert (
                pa["seriesuid"] == pb["seriesuid"]
                and pa["shift_index" if kind == "nodule" else "negative_index"]
                == pb["shift_index" if kind == "nodule" else "negative_index"]
            )
    for backend in ("thread", "process"):
        full = load_all(luna.files, "nodule", workers=2, backend=backend)
        crop = load_all(luna_crops.files, "nodule", workers=2, backend=backend)
        assert np.array_equal(full.images, crop.images) and np.array_equal(full.labels, crop.labels)


def test_export_writes_the_full_layout(luna, luna_crops, tmp_path):
    for full_path, crop_path in zip(luna.files, luna_crops.files):
        out = tmp_path / full_path.name
        assert export_main([str(crop_path), str(out)]) == 0
        got, want = _read_all(out), _read_all(full_path)
        assert sorted(got) == sorted(want)
        for name in want:
            assert np.array_equal(got[name], want[name]), name
        with h5py.File(out, "r") as a, h5py.File(full_path, "r") as b:
            assert a["nodule"].chunks == b["nodule"].chunks
            sa, sb = json.loads(a.attrs["settings"]), json.loads(b.attrs["settings"])
            assert sa == sb  # the exported file says layout full, like the full run
            assert {k: v for k, v in a.attrs.items() if k != "settings"} == {
                k: v for k, v in b.attrs.items() if k != "settings"
            }


def test_export_with_another_codec_re_encodes_the_patch_datasets(luna, luna_crops, tmp_path):
    from ctpatch.store.codecs import codec_of

    out = tmp_path / luna.files[0].name
    assert export_main([str(luna_crops.files[0]), str(out), "--compression", "lzf"]) == 0
    got, want = _read_all(out), _read_all(luna.files[0])
    assert sorted(got) == sorted(want)
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    with h5py.File(out, "r") as f:
        for name in ("nodule", "label_nodule", "non_nodule", "label_non_nodule"):
            assert codec_of(f[name]) == "lzf" and f[name].compression == "lzf", name
        assert json.loads(f.attrs["settings"])["output"]["compression"] == "lzf"


def test_export_refuses_a_full_layout_file(luna, tmp_path):
    with pytest.raises(ExportError, match="neither a crops-layout file"):
        export_full(luna.files[0], tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_crops_are_smaller_by_the_expected_voxel_ratio(luna, luna_crops):
    for full_path, crop_path in zip(luna.files, luna_crops.files):
        with h5py.File(full_path, "r") as full, h5py.File(crop_path, "r") as crops:
            n = crops["nodule_crop"].shape[0]
            assert crops["nodule_crop"].size / full["nodule"].size == pytest.approx(n * 132**3 / (57 * n * 68**3))
            stored_full = sum(
                full["nodule"].id.get_chunk_info(i).size for i in range(full["nodule"].id.get_num_chunks())
            )
            stored_crop = sum(crops["nodule_crop"].id.get_chunk_info(i).size for i in range(n))
            assert stored_crop < stored_full / 4  # 7.6 x fewer voxels; compression differs a little


def _verify(run, path, settings):
    import pandas as pd

    subset = path.stem
    table = run.workdir / run.config["results"] / "luna16" / "labels" / subset / "nodules.tsv"
    scans = sorted(pd.read_csv(table, sep="\t", dtype={"seriesuid": str})["seriesuid"])
    vols = run.workdir / run.config["results"] / "luna16" / "volumes" / subset
    return verify_luna(path, table, settings, sorted(p.stem for p in vols.glob("*.json")) or scans)


def test_verify_accepts_crops_and_catches_a_misplaced_view(luna_crops, tmp_path):
    path = luna_crops.files[0]
    report = _verify(luna_crops, path, luna_crops.settings)
    assert report["ok"], report["failures"]
    assert report["layout"] == "crops" and report["nodule_crops"] >= 1
    bad = tmp_path / path.name
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "r+") as f:
        v = f["nodule_view"][...]
        v[3, 1] += 8  # patch 3 now claims another shift
        f["nodule_view"][...] = v
    report = _verify(luna_crops, bad, luna_crops.settings)
    assert not report["ok"] and any("margin + shift" in m for m in report["failures"])


def test_explain_regenerates_a_nodule_patch_of_a_crops_file(luna_crops, tmp_path):
    from ctpatch.report.explain import explain

    e = explain(luna_crops.files[0], 30, "nodule", luna_crops.workdir)
    assert e.equal, e.differences
    bad = tmp_path / luna_crops.files[0].name
    bad.write_bytes(luna_crops.files[0].read_bytes())
    with h5py.File(bad, "r+") as f:
        c = int(f["nodule_view"][30, 0])
        crop = f["nodule_crop"][c]
        crop[66, 66, 66, 0] += 0.5  # the centre voxel, inside every patch of this nodule
        f["nodule_crop"][c] = crop
    e = explain(bad, 30, "nodule", luna_crops.workdir)
    assert not e.equal and e.largest == pytest.approx(0.5)


def test_sanity_pictures_of_a_crops_file_show_its_nodule_patches(luna, luna_crops, tmp_path):
    from ctpatch.report.sanity import write_png

    a = write_png(luna.files, tmp_path / "full.png", n=6, seed=2)
    b = write_png(luna_crops.files, tmp_path / "crops.png", n=6, seed=2)
    assert a == b and sum("nodule" in t and "negative" not in t for t in b) > 0


# ---------------------------------------------------------------- volumes layout: pure geometry
def test_brick_grid_and_indices_tile_the_volume_in_c_order():
    assert layout.brick_grid((64, 65, 1), 32).tolist() == [2, 3, 1]
    idx = layout.brick_indices((64, 65, 1), 32)
    assert idx.tolist() == [[x, y, 0] for x in range(2) for y in range(3)]
    with pytest.raises(ValueError, match="brick edge"):
        layout.brick_grid((10, 10, 10), 0)


def test_cut_brick_equals_the_padded_volume_and_casts_like_the_patches():
    rng = np.random.default_rng(5)
    vol = rng.normal(size=(21, 17, 9)).astype(np.float32)  # (x, y, z)
    edge, fill = 8, np.float32(-3.3)
    grid = layout.brick_grid(vol.shape, edge)
    padded = np.pad(vol, [(0, g * edge - n) for g, n in zip(grid, vol.shape)], constant_values=fill)
    for index in layout.brick_indices(vol.shape, edge):
        out = np.empty((edge, edge, edge, 1), np.float16)
        layout.cut_brick(vol, index, edge, fill, out)
        want = padded[tuple(slice(i * edge, (i + 1) * edge) for i in index)].astype(np.float16)
        assert np.array_equal(out[..., 0], want), index


def test_brick_span_clips_to_the_grid():
    first, last = layout.brick_span((-10, 31, 40), 20, 16, (2, 2, 2))
    assert first.tolist() == [0, 1, 2] and last.tolist() == [0, 1, 1]  # z: past the grid, nothing to read
    first, last = layout.brick_span((5, 16, 0), 12, 16, (2, 2, 2))
    assert first.tolist() == [0, 1, 0] and last.tolist() == [1, 1, 0]


# ---------------------------------------------------------------- volumes layout: files against the full layout
def _volume(run, path, uid):
    return np.load(run.workdir / run.config["results"] / "luna16" / "volumes" / path.stem / f"{uid}.npy")


def test_volumes_file_structure_and_bricks_equal_the_converted_volume(luna_volumes):
    for path in luna_volumes.files:
        with h5py.File(path, "r") as f:
            assert crop_reader.layout_for("volumes").matches(f) and crop_reader.layout_of(f).name == "volumes"
            assert "nodule" not in f and "non_nodule" not in f and "nodule_crop" not in f
            bricks, table = f["volume_brick"], f["provenance/volume_brick"][...]
            assert bricks.shape == (len(table), 32, 32, 32, 1) and bricks.chunks == (1, 32, 32, 32, 1)
            assert bricks.fletcher32 and f["label_nodule"].fletcher32
            assert json.loads(f.attrs["settings"])["output"]["layout"] == "volumes"
            uid = table["seriesuid"][0].decode()
            vol = _volume(luna_volumes, path, uid).transpose(2, 1, 0)  # (x, y, z)
            assert table["volume_size"][0].tolist() == list(vol.shape)
            grid = -(-np.array(vol.shape) // 32)
            assert len(table) == np.prod(grid)  # one scan per subset here
            padded = np.pad(vol, [(0, g * 32 - n) for g, n in zip(grid, vol.shape)], constant_values=vol.min())
            for r in (0, len(table) // 2, len(table) - 1):
                lo = table["brick"][r] * 32
                assert np.array_equal(table["start_voxel"][r], lo)
                want = padded[lo[0] : lo[0] + 32, lo[1] : lo[1] + 32, lo[2] : lo[2] + 32]
                assert np.array_equal(bricks[r][..., 0], want), r
            assert table["fill"][0] == vol.min()


@pytest.mark.parametrize("cache_mb", [None, 0, 1])  # default, none, 1 MiB (8 bricks: evicting all the time)
def test_every_patch_read_from_volumes_equals_the_full_layout(luna, luna_volumes, cache_mb):
    crop_reader.BRICKS.clear()
    for full_path, vol_path in zip(luna.files, luna_volumes.files):
        assert full_path.name == vol_path.name
        with h5py.File(full_path, "r") as full, h5py.File(vol_path, "r") as vols:
            for kind in ("nodule", "non_nodule"):
                want = full[kind][...]
                patches = crop_reader.images(vols, kind, cache_mb=cache_mb)
                assert patches.shape == want.shape and patches.dtype == want.dtype
                assert np.array_equal(patches[:], want), kind  # every nodule patch, shifted ones included
                for i in (0, 1, len(want) - 1, -2):
                    assert np.array_equal(patches[i], want[i]), (kind, i)
                buf = np.zeros((3, *want.shape[1:]), want.dtype)
                patches.read_direct(buf, np.s_[5:8], np.s_[0:3])
                assert np.array_equal(buf, want[5:8])
                assert np.array_equal(patches[[9, 2, 40]], want[[9, 2, 40]])
            assert crop_reader.BRICKS.nbytes <= (1 << 20 if cache_mb == 1 else (cache_mb or 0) * (1 << 20) or 128 << 20)
            if cache_mb == 0:
                assert crop_reader.BRICKS.nbytes == 0
            prov = full["provenance/nodule"][...]
            assert len(np.unique(prov["shift_index"])) == 57  # every shift is among the compared patches
            for name in ("label_nodule", "label_non_nodule", "provenance/nodule", "provenance/non_nodule"):
                assert np.array_equal(full[name][...], vols[name][...]), name


def test_patches_leaving_the_volume_are_filled_like_the_full_layout(luna, luna_volumes):
    # the demo's nodules lie inside; the patches reaching past the volume's faces are the ones to check
    for full_path, vol_path in zip(luna.files, luna_volumes.files):
        with h5py.File(full_path, "r") as full, h5py.File(vol_path, "r") as vols:
            size = vols["provenance/volume_brick"]["volume_size"][0]
            for kind in ("nodule", "non_nodule"):
                start = full[f"provenance/{kind}"]["centre_voxel"] - 34
                outside = np.flatnonzero(np.any((start < 0) | (start + 68 > size), axis=1))
                assert len(outside) > 0, kind
                rows = outside[:: max(1, len(outside) // 8)]
                assert np.array_equal(crop_reader.images(vols, kind, cache_mb=0)[rows], full[kind][rows]), kind


def test_readers_give_the_same_patches_in_the_volumes_layout(luna, luna_volumes):
    for kind in ("nodule", "non_nodule", ("nodule", "non_nodule")):
        a, b = PatchDataset(luna.files, kind=kind), PatchDataset(luna_volumes.files, kind=kind)
        assert len(a) == len(b) > 0
        for i in (0, len(a) // 3, len(a) - 1):
            ia, la, pa = a[i]
            ib, lb, pb = b[i]
            assert np.array_equal(ia, ib) and np.array_equal(la, lb)
            assert pa["seriesuid"] == pb["seriesuid"] and np.array_equal(pa["centre_voxel"], pb["centre_voxel"])
    for backend in ("thread", "process"):
        full = load_all(luna.files, "non_nodule", workers=2, backend=backend)
        vols = load_all(luna_volumes.files, "non_nodule", workers=2, backend=backend)
        assert np.array_equal(full.images, vols.images) and np.array_equal(full.labels, vols.labels)


def test_export_of_a_volumes_file_writes_the_full_layout(luna, luna_volumes, tmp_path):
    full_path, vol_path = luna.files[0], luna_volumes.files[0]
    out = tmp_path / full_path.name
    assert export_main([str(vol_path), str(out)]) == 0
    got, want = _read_all(out), _read_all(full_path)
    assert sorted(got) == sorted(want)
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    with h5py.File(out, "r") as a, h5py.File(full_path, "r") as b:
        for name in ("nodule", "non_nodule"):
            assert a[name].chunks == b[name].chunks and a[name].fletcher32
        sa, sb = json.loads(a.attrs["settings"]), json.loads(b.attrs["settings"])
        assert sa == sb  # layout full (the brick edge, unused there, is in both)


def test_volumes_files_are_much_smaller_than_full(luna, luna_volumes):
    for full_path, vol_path in zip(luna.files, luna_volumes.files):
        assert vol_path.stat().st_size * 10 < full_path.stat().st_size


def test_verify_accepts_volumes_and_catches_a_broken_brick_table(luna_volumes, tmp_path):
    path = luna_volumes.files[0]
    report = _verify(luna_volumes, path, luna_volumes.settings)
    assert report["ok"], report["failures"]
    assert report["layout"] == "volumes" and report["volume_bricks"] > 0
    bad = tmp_path / path.name
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "r+") as f:
        t = f["provenance/volume_brick"][...]
        t["volume_size"][:, 0] += 40  # the bricks no longer tile the recorded volume
        f["provenance/volume_brick"][...] = t
    report = _verify(luna_volumes, bad, luna_volumes.settings)
    assert not report["ok"] and any("do not tile" in m for m in report["failures"])


def test_verify_catches_a_changed_brick_byte(luna_volumes, tmp_path):
    path = luna_volumes.files[0]
    bad = tmp_path / path.name
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "r") as f:
        info = f["volume_brick"].id.get_chunk_info(3)
    raw = bytearray(bad.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    report = _verify(luna_volumes, bad, luna_volumes.settings)
    assert not report["ok"] and any("volume_brick" in m and "row 3" in m for m in report["failures"]), report


def test_explain_regenerates_patches_of_a_volumes_file(luna_volumes, tmp_path):
    from ctpatch.report.explain import explain

    for kind, row in (("nodule", 30), ("non_nodule", 7)):
        e = explain(luna_volumes.files[0], row, kind, luna_volumes.workdir)
        assert e.equal, e.differences
    bad = tmp_path / luna_volumes.files[0].name
    bad.write_bytes(luna_volumes.files[0].read_bytes())
    with h5py.File(bad, "r+") as f:
        centre = f["provenance/non_nodule"]["centre_voxel"][7]
        b = int(np.ravel_multi_index(tuple(centre // 32), tuple(f["provenance/volume_brick"]["brick"].max(0) + 1)))
        brick = f["volume_brick"][b]
        x, y, z = centre % 32
        brick[x, y, z, 0] += 0.5  # the negative's centre voxel
        f["volume_brick"][b] = brick
    e = explain(bad, 7, "non_nodule", luna_volumes.workdir)
    assert not e.equal and e.largest == pytest.approx(0.5, abs=1e-6)


def test_sanity_pictures_of_a_volumes_file_equal_the_full_layout(luna, luna_volumes, tmp_path):
    from ctpatch.report.sanity import write_png

    a = write_png(luna.files, tmp_path / "full.png", n=6, seed=2)
    b = write_png(luna_volumes.files, tmp_path / "volumes.png", n=6, seed=2)
    assert a == b and any("negative" in t for t in b)
    assert (tmp_path / "full.png").read_bytes() == (tmp_path / "volumes.png").read_bytes()


# ---------------------------------------------------------------- the layout strategies
def test_layout_for_names_every_layout_and_refuses_others():
    assert crop_reader.LAYOUTS == ("full", "crops", "volumes")
    for name in crop_reader.LAYOUTS:
        assert crop_reader.layout_for(name).name == name
    with pytest.raises(ValueError, match="luna16.output.layout: expected one of"):
        crop_reader.layout_for("bricks")


def test_layout_of_tells_files_apart_and_what_each_reads():
    cases = [  # datasets in the file -> its layout, and which kinds it can read
        (("nodule", "non_nodule"), "full", (True, True)),
        (("nodule_crop", "nodule_view", "non_nodule"), "crops", (True, True)),
        (("nodule_crop", "non_nodule"), "full", (False, True)),  # no view: not a crops file
        (("volume_brick", "provenance/volume_brick", "provenance/nodule"), "volumes", (True, False)),
        (("volume_brick", "provenance/nodule"), "full", (False, False)),  # no brick table: not a volumes file
    ]
    for i, (names, want, readable) in enumerate(cases):
        with h5py.File(f"layout-{i}.h5", "w", driver="core", backing_store=False) as f:
            for name in names:
                f.create_dataset(name, data=np.zeros(1))
            assert crop_reader.layout_of(f).name == want, names
            assert tuple(crop_reader.has_images(f, k) for k in ("nodule", "non_nodule")) == readable, names
            assert crop_reader.has_images(f, "provenance/nodule") == ("provenance/nodule" in names)


def test_layout_specs_keep_the_stored_images_and_add_their_own_boxes():
    sizes = crop_reader.CutSizes(patch=8, crop=24, brick=16, dtype="float16")
    img, lab = ((8, 8, 8, 1), np.dtype("float16")), ((4, 4, 4, 2), np.dtype("float32"))
    datasets = {"nodule": img, "label_nodule": lab, "non_nodule": img, "label_non_nodule": lab}
    tables = {"nodule": np.dtype([("a", "<i4")]), "non_nodule": np.dtype([("b", "<i4")])}
    groups = {"nodule": ("nodule", "label_nodule"), "non_nodule": ("non_nodule", "label_non_nodule")}
    full, crops, volumes = (
        crop_reader.layout_for(n).specs(datasets, tables, groups, sizes, "gzip") for n in crop_reader.LAYOUTS
    )
    assert (full.datasets, full.tables, full.groups, full.compression) == (datasets, tables, groups, "gzip")
    assert not full.one_file and full.finish is None and full.attrs == {}
    assert list(crops.datasets) == ["nodule_crop", "label_nodule", "non_nodule", "label_non_nodule"]
    assert crops.datasets["nodule_crop"] == ((24, 24, 24, 1), np.dtype("float16"))
    assert crops.tables == {**tables, "nodule_crop": crop_reader.PROV_CROP}
    assert crops.groups == {
        "nodule": ("label_nodule",),
        "non_nodule": ("non_nodule", "label_non_nodule"),
        "nodule_crop": ("nodule_crop",),
    }
    assert crops.attrs == {"nodule_crop": {"patch_edge": 8}} and crops.unshuffled == ("nodule_crop",)
    assert crops.one_file and crops.finish is crop_reader.write_nodule_view
    assert list(volumes.datasets) == ["volume_brick", "label_nodule", "label_non_nodule"]
    assert volumes.datasets["volume_brick"] == ((16, 16, 16, 1), np.dtype("float16"))
    assert volumes.tables == {**tables, "volume_brick": crop_reader.PROV_BRICK}
    assert volumes.groups == {
        "nodule": ("label_nodule",),
        "non_nodule": ("label_non_nodule",),
        "volume_brick": ("volume_brick",),
    }
    assert volumes.attrs == {"volume_brick": {"patch_edge": 8}} and volumes.one_file and volumes.finish is None


def test_layouts_items_per_scan_own_rows_and_image_datasets():
    sizes = crop_reader.CutSizes(patch=8, crop=24, brick=32, dtype="float32")
    layouts = [crop_reader.layout_for(n) for n in crop_reader.LAYOUTS]
    assert [lay.scan_items((40, 20, 70), sizes) for lay in layouts] == [0, 0, 2 * 1 * 3]  # ceil(size / 32) per axis
    assert [lay.own_rows(5, 6) for lay in layouts] == [{}, {"nodule_crop": 5}, {"volume_brick": 6}]
    assert [lay.image_datasets for lay in layouts] == [
        ("nodule", "non_nodule"),
        ("nodule_crop", "non_nodule"),
        ("volume_brick",),
    ]


def test_each_layout_stores_what_it_keeps_of_a_cut_patch():
    from ctpatch.core.nodules import PatchLocation
    from ctpatch.store.sink import MemorySink

    rng = np.random.default_rng(3)
    vol = rng.normal(size=(20, 18, 16)).astype(np.float32)  # (x, y, z)
    sizes = crop_reader.CutSizes(patch=6, crop=10, brick=8, dtype="float32")
    loc = PatchLocation((8, 9, 10), 6)  # (z, y, x) centre
    centre = np.array([10, 9, 8])  # the nodule's voxel (x, y, z)
    want = vol[7:13, 6:12, 5:11]  # [c - 3, c + 3) per axis
    want_crop = vol[5:15, 4:14, 3:13]  # [c - 5, c + 5)
    kept = {}
    for name in crop_reader.LAYOUTS:
        lay = crop_reader.layout_for(name)
        boxes = (("nodule", 6), ("non_nodule", 6), ("nodule_crop", 10), ("volume_brick", 8))
        sink = MemorySink({n: ((e,) * 3 + (1,), "float32") for n, e in boxes})
        for shift in (0, 1):
            nodule = crop_reader.NodulePatch(4, b"uid", 2, 7, centre, shift)
            lay.store(sink, "nodule", vol, -9.0, loc, sizes, nodule)
        lay.store(sink, "non_nodule", vol, -9.0, loc, sizes, None)
        kept[name] = {n: len(p) for n, p in sink.patches.items() if p}
        for n in ("nodule", "non_nodule"):
            assert all(np.array_equal(p[..., 0], want) for p in sink.patches[n])
        if name == "crops":
            assert np.array_equal(sink.patches["nodule_crop"][0][..., 0], want_crop)
            (row,) = sink.rows["nodule_crop"]
            assert (
                row[:4] == (4, b"uid", 2, 7) and np.array_equal(row[4], centre) and np.array_equal(row[5], centre - 5)
            )
            assert row[6] == 10
    assert kept == {"full": {"nodule": 2, "non_nodule": 1}, "crops": {"nodule_crop": 1, "non_nodule": 1}, "volumes": {}}


def test_volumes_cut_each_scan_into_its_bricks_first():
    from ctpatch.store.sink import MemorySink

    vol = np.arange(20 * 9 * 5, dtype=np.float32).reshape(20, 9, 5)  # (x, y, z)
    sizes = crop_reader.CutSizes(patch=6, crop=10, brick=8, dtype="float16")
    lay = crop_reader.layout_for("volumes")
    n = lay.scan_items(vol.shape, sizes)
    assert n == 3 * 2 * 1
    sink = MemorySink({"volume_brick": ((8, 8, 8, 1), "float16")})
    assert lay.cut_scan_items(sink, vol, -1.5, sizes, 2, b"uid", 1, 4) == {"volume_bricks": 3}
    padded = np.pad(vol, [(0, 4), (0, 7), (0, 3)], constant_values=-1.5)
    for brick, row, (bx, by) in zip(sink.patches["volume_brick"], sink.rows["volume_brick"], ((0, 1), (1, 0), (1, 1))):
        assert np.array_equal(brick[..., 0], padded[8 * bx : 8 * bx + 8, 8 * by : 8 * by + 8, :8].astype(np.float16))
        assert row[:2] == (2, b"uid") and row[2].tolist() == [bx, by, 0] and row[3].tolist() == [8 * bx, 8 * by, 0]
        assert row[4].tolist() == [20, 9, 5] and row[5] == -1.5
    assert crop_reader.layout_for("full").scan_items(vol.shape, sizes) == 0


def test_layout_plans_turn_the_full_estimate_into_theirs():
    sizes = crop_reader.PlanSizes(patch=10, crop=20, itemsize=4, image_raw=4000, overhead=3.0)
    stored = {"nodule": 900.0, "non_nodule": 500.0, "voxel": 500.0 / 1000}  # a voxel as the negatives' (10³)
    combos = [("float32", "gzip")]

    def group():
        return {
            "nodules": 2,
            "patches": {"nodule": 114, "non_nodule": 10},
            "brick_voxels": 50_000,
            "bricks": 7,
            "raw_bytes": 1_000_000,
            "file_bytes": {"float32/gzip": 200_000.0},
        }

    full, crops, volumes = group(), group(), group()
    for name, g in zip(crop_reader.LAYOUTS, (full, crops, volumes)):
        crop_reader.layout_for(name).plan(g, sizes, lambda kind, d, c: stored[kind], combos)
    assert full == group()
    # crops: 2 crops of 8 patches' voxels each instead of 114 nodule images; a 16-byte view row per patch
    assert crops["raw_bytes"] == 1_000_000 + 2 * 8 * 4000 - 114 * 4000
    assert crops["file_bytes"]["float32/gzip"] == pytest.approx(
        200_000 + 2 * 8 * 900 - 114 * 900 + 114 * 16 + 2 * crop_reader.PROV_CROP.itemsize
    )
    # volumes: the bricks' voxels (the stored bytes of a voxel) instead of every image
    assert volumes["raw_bytes"] == 1_000_000 + 50_000 * 4 - 124 * 4000
    assert volumes["file_bytes"]["float32/gzip"] == pytest.approx(
        200_000
        + 50_000 * 500 / 1000
        + 7 * (3.0 + crop_reader.PROV_BRICK.itemsize)
        - 114 * (900 + 3.0)
        - 10 * (500 + 3.0)
    )
