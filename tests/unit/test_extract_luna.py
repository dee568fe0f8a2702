"""Tests of ctpatch.luna16.job: ``Job.run`` on one generated, converted scan, without MPI.

The inputs are built as the workflow builds them (convert -> ``<uid>.npy`` + ``<uid>.json`` in one
folder; make_labels -> ``masks/<uid>.npy`` + ``nodules.tsv``).  Every patch is compared with a crop
computed here from the ``.npy`` with ``np.pad``, every nodule centre with the annotation mapped by
the direction-cosine formula written here, and every label patch with a brute-force sphere mask
pooled by a loop.
"""

from __future__ import annotations

import itertools
import types
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from _patchfiles import write_canonical
from demos import EXTRACT_DEMO

from ctpatch.luna16 import labels as make_labels
from ctpatch.luna16.convert import convert
from ctpatch.luna16.demo import write_dataset
from ctpatch.luna16.job import Job
from ctpatch.settings import defaults, validate
from ctpatch.store.atomic import save_npy, write_json
from ctpatch.store.codecs import codec_of

SMALL_PATCH = {"size": 20, "stride": 4, "shifts_per_side": 2, "label_pool": 9}


# ---------------------------------------------------------------- inputs, as the workflow makes them
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    (plan,) = write_dataset(root / "luna", EXTRACT_DEMO, seed=0)
    settings = defaults("convert").to_dict()
    settings["resample"]["interpolator"] = "linear"
    volume, sidecar = convert(root / "luna" / plan.subset / f"{plan.series_uid}.mhd", settings)
    vol_dir = root / "volumes" / "subset0"
    save_npy(vol_dir / f"{plan.series_uid}.npy", volume)
    write_json(vol_dir / f"{plan.series_uid}.json", sidecar)
    ann = root / "luna" / "CSVFILES" / "annotations.csv"
    labels = root / "labels" / "subset0"
    assert (
        make_labels.main(
            [
                "--subset",
                "subset0",
                "--sidecars",
                str(vol_dir / f"{plan.series_uid}.json"),
                "--annotations",
                str(ann),
                "--masks-dir",
                str(labels / "masks"),
                "--table-out",
                str(labels / "nodules.tsv"),
            ]
        )
        == 0
    )
    return types.SimpleNamespace(
        root=root,
        uid=plan.series_uid,
        sidecar=sidecar,
        volume=np.load(vol_dir / f"{plan.series_uid}.npy"),
        ann=pd.read_csv(ann, dtype={"seriesuid": str}),
        cand=pd.read_csv(root / "luna" / "CSVFILES" / "candidates.csv", dtype={"seriesuid": str}),
        paths={
            "sidecars": [str(vol_dir / f"{plan.series_uid}.json")],
            "masks_dir": str(labels / "masks"),
            "nodules": str(labels / "nodules.tsv"),
            "candidates": str(root / "luna" / "CSVFILES" / "candidates.csv"),
        },
    )


def job_settings(patch=None, negatives=None, seed=0):
    cfg = validate({"luna16": {"patch": patch or {}, "negatives": negatives or {}}})["luna16"]
    s = {k: cfg[k] for k in ("patch", "negatives", "output", "normalize")}
    s["seed"] = seed
    return s


def run_job(inputs, path, **kw):
    job = Job(job_settings(**kw), inputs.paths)
    return write_canonical(job, path)


def read_shard(path):
    with h5py.File(path, "r") as h5:
        return {k: h5[k][...] for k in ("nodule", "label_nodule", "non_nodule", "label_non_nodule")}, {
            k: h5[f"provenance/{k}"][...] for k in ("nodule", "non_nodule")
        }


# ---------------------------------------------------------------- independent computations
def grid_parts(sidecar):
    g = sidecar["grid"]
    return (
        np.asarray(g["origin"], float),
        np.asarray(g["spacing"], float),
        np.asarray(g["direction"], float).reshape(3, 3),
        np.asarray(g["size"]),
    )


def my_voxels(sidecar, worlds):
    """World (N, 3) -> nearest voxel (x, y, z): rint(D^T (w - o) / spacing)."""
    o, s, D, _ = grid_parts(sidecar)
    return np.rint(((np.asarray(worlds, float) - o) @ D) / s).astype(int)


def my_mask(inputs):
    _, s, _, size = grid_parts(inputs.sidecar)
    rows = inputs.ann[inputs.ann["seriesuid"] == inputs.uid]
    z, y, x = np.indices(tuple(size[::-1]))
    mask = np.zeros(tuple(size[::-1]), bool)
    for (cx, cy, cz), d in zip(
        my_voxels(inputs.sidecar, rows[["coordX", "coordY", "coordZ"]].to_numpy()), rows["diameter_mm"]
    ):
        r = int((d / s[1]) // 2)
        mask |= (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r
    return mask


_PADDED = {}


def padded_crop_xyz(volume_zyx, centre_xyz, size, fill, pad):
    """The (x, y, z) patch of edge ``size`` around ``centre_xyz`` from ``volume_zyx`` padded with ``fill``."""
    key = (id(volume_zyx), volume_zyx.shape, float(fill), pad)
    if key not in _PADDED:
        _PADDED.clear()
        _PADDED[key] = (volume_zyx, np.pad(volume_zyx, pad, mode="constant", constant_values=fill))
    padded = _PADDED[key][1]
    cx, cy, cz = (int(c) - size // 2 + pad for c in centre_xyz)
    assert min(cx, cy, cz) >= 0, "pad too small for this centre"
    return padded[cz : cz + size, cy : cy + size, cx : cx + size].transpose(2, 1, 0)


def pooled_one_hot(crop_xyz, block):
    n = -(-crop_xyz.shape[0] // block)
    out = np.zeros((n, n, n, 2), np.float32)
    for i, j, k in itertools.product(range(n), repeat=3):
        hit = crop_xyz[i * block : (i + 1) * block, j * block : (j + 1) * block, k * block : (k + 1) * block].any()
        out[i, j, k, int(hit)] = 1.0
    return out


def spec_shifts(stride, m):
    out = {(0, 0, 0)}
    for axes in [c for r in (1, 2, 3) for c in itertools.combinations(range(3), r)]:
        for k, sign in itertools.product(range(1, m + 1), (1, -1)):
            out.add(tuple(sign * stride * k if a in axes else 0 for a in range(3)))
    return out


# ---------------------------------------------------------------- the reference settings
@pytest.fixture(scope="module")
def default_run(inputs, tmp_path_factory):
    path = tmp_path_factory.mktemp("shard") / "rank0000.h5"
    counts = run_job(inputs, path)
    data, prov = read_shard(path)
    with h5py.File(path, "r") as h5:
        layout = {k: (h5[k].chunks, codec_of(h5[k]), h5[k].dtype) for k in data}
    return counts, data, prov, layout


def test_counts_are_57_per_nodule_and_3_negatives_per_patch(inputs, default_run):
    counts, data, prov, _ = default_run
    n_nodules = int((inputs.ann["seriesuid"] == inputs.uid).sum())
    assert n_nodules == 2
    assert counts == [{"nodules": 2, "nodule_patches": 57 * 2, "negatives": 3 * 57 * 2}]
    assert data["nodule"].shape == (114, 68, 68, 68, 1)
    assert data["label_nodule"].shape == (114, 8, 8, 8, 2)
    assert data["non_nodule"].shape == (342, 68, 68, 68, 1)
    assert data["label_non_nodule"].shape == (342, 8, 8, 8, 2)
    assert len(prov["nodule"]) == 114 and len(prov["non_nodule"]) == 342


def test_layout_is_float32_one_patch_per_chunk_blosc2_zstd(default_run):
    layout = default_run[3]
    assert layout["nodule"] == ((1, 68, 68, 68, 1), "blosc2-zstd", np.float32)
    assert layout["label_nodule"] == ((1, 8, 8, 8, 2), "blosc2-zstd", np.float32)


def test_nodule_centres_are_the_annotations_on_the_converted_grid(inputs, default_run):
    _, _, prov, _ = default_run
    p = prov["nodule"]
    rows = inputs.ann[inputs.ann["seriesuid"] == inputs.uid]
    expected = my_voxels(inputs.sidecar, rows[["coordX", "coordY", "coordZ"]].to_numpy())
    for n in range(2):
        sel = p[p["nodule_index"] == n]
        assert len(sel) == 57
        assert np.all(sel["nodule_voxel"] == expected[n])
        np.testing.assert_allclose(sel["nodule_world"][0], rows[["coordX", "coordY", "coordZ"]].to_numpy()[n])
        assert {tuple(s) for s in sel["shift"].tolist()} == spec_shifts(8, 4)
        np.testing.assert_array_equal(sel["centre_voxel"], expected[n] + sel["shift"])
        assert set(sel["annotation_row"].tolist()) == {int(rows.index[n]) + 2}
    assert (p["seriesuid"] == inputs.uid.encode()).all()
    # the edge nodule is within 2 slices of an end: its patches need padding on z
    z = expected[:, 2]
    assert min(z.min(), inputs.volume.shape[0] - 1 - z.max()) <= 2
    o, s, D, _ = grid_parts(inputs.sidecar)
    np.testing.assert_allclose(p["centre_world"], o + (p["centre_voxel"] * s) @ D.T, atol=1e-9)


def test_nodule_patches_equal_the_np_pad_crop(inputs, default_run):
    _, data, prov, _ = default_run
    vol, fill = inputs.volume, float(inputs.volume.min())
    assert fill == inputs.sidecar["min"]
    padded_any = False
    for i, centre in enumerate(prov["nodule"]["centre_voxel"]):
        expected = padded_crop_xyz(vol, centre, 68, fill, pad=34 + 8 * 4)
        np.testing.assert_array_equal(data["nodule"][i, ..., 0], expected)
        padded_any |= bool(np.any(np.asarray(centre) - 34 < 0) or np.any(np.asarray(centre) + 34 > vol.shape[::-1]))
    assert padded_any


def test_nodule_label_patches(inputs, default_run):
    _, data, prov, _ = default_run
    mask = my_mask(inputs)
    masks_npy = np.load(Path(inputs.paths["masks_dir"]) / f"{inputs.uid}.npy")
    np.testing.assert_array_equal(masks_npy, mask)
    for i, centre in enumerate(prov["nodule"]["centre_voxel"]):
        lab = data["label_nodule"][i]
        np.testing.assert_array_equal(lab, pooled_one_hot(padded_crop_xyz(mask, centre, 68, False, 66), 9))
        assert lab[..., 1].max() == 1.0


def test_random_negatives(inputs, default_run):
    _, data, prov, _ = default_run
    p = prov["non_nodule"]
    vol, fill, mask = inputs.volume, float(inputs.volume.min()), my_mask(inputs)
    size_xyz = np.asarray(vol.shape[::-1])
    assert (p["source"] == b"random").all() and (p["candidate_row"] == -1).all()
    assert p["negative_index"].tolist() == list(range(342))
    assert np.all(p["centre_voxel"] >= 0) and np.all(p["centre_voxel"] < size_xyz)
    assert len({tuple(c) for c in p["centre_voxel"].tolist()}) > 300
    for i in range(0, 342, 3):
        centre = p["centre_voxel"][i]
        np.testing.assert_array_equal(data["non_nodule"][i, ..., 0], padded_crop_xyz(vol, centre, 68, fill, 34))
        mcrop = padded_crop_xyz(mask, centre, 68, False, 34)
        np.testing.assert_array_equal(data["label_non_nodule"][i], pooled_one_hot(mcrop, 9))
        assert bool(p["touches_nodule"][i]) == bool(mcrop.any())


# ---------------------------------------------------------------- negative strategies (small patches)
def test_avoid_nodules_never_touches_a_nodule(inputs, tmp_path):
    (counts,) = run_job(inputs, tmp_path / "s.h5", patch=SMALL_PATCH, negatives={"strategy": "avoid_nodules"})
    per_nodule = 1 + 7 * 2 * 2
    assert counts == {"nodules": 2, "nodule_patches": 2 * per_nodule, "negatives": 3 * 2 * per_nodule}
    data, prov = read_shard(tmp_path / "s.h5")
    assert data["nodule"].shape == (2 * per_nodule, 20, 20, 20, 1)
    assert data["label_nodule"].shape == (2 * per_nodule, 3, 3, 3, 2)
    p, mask = prov["non_nodule"], my_mask(inputs)
    assert (p["source"] == b"avoid_nodules").all()
    assert not p["touches_nodule"].any()
    for i, centre in enumerate(p["centre_voxel"]):
        assert not padded_crop_xyz(mask, centre, 20, False, 10).any()
        assert data["label_non_nodule"][i, ..., 1].max() == 0.0
    for i, centre in enumerate(prov["nodule"]["centre_voxel"]):
        np.testing.assert_array_equal(
            data["nodule"][i, ..., 0], padded_crop_xyz(inputs.volume, centre, 20, inputs.volume.min(), 20)
        )


@pytest.mark.parametrize("ratio", [1, 0.1])
def test_candidates_strategy(inputs, tmp_path, ratio):
    (counts,) = run_job(
        inputs, tmp_path / "s.h5", patch=SMALL_PATCH, negatives={"strategy": "candidates", "ratio": ratio}
    )
    wanted = int(round(ratio * 2 * 29))
    assert counts["negatives"] == wanted
    data, prov = read_shard(tmp_path / "s.h5")
    p = prov["non_nodule"]
    rows = inputs.cand[(inputs.cand["seriesuid"] == inputs.uid) & (inputs.cand["class"] == 0)]
    assert len(rows) == 10
    vox = dict(
        zip(
            (rows.index + 2).tolist(),
            my_voxels(inputs.sidecar, rows[["coordX", "coordY", "coordZ"]].to_numpy()).tolist(),
        )
    )
    cand = p[p["source"] == b"candidate"]
    fill = p[p["source"] == b"fill"]
    assert len(cand) == min(wanted, 10) and len(fill) == wanted - len(cand)
    assert len(set(cand["candidate_row"].tolist())) == len(cand)
    for r in cand:
        assert int(r["candidate_row"]) in vox  # a class-0 row of this scan
        assert r["centre_voxel"].tolist() == vox[int(r["candidate_row"])]
    mask = my_mask(inputs)
    assert (fill["candidate_row"] == -1).all()
    for r in fill:
        assert not padded_crop_xyz(mask, r["centre_voxel"], 20, False, 10).any()
    for i, centre in enumerate(p["centre_voxel"]):
        np.testing.assert_array_equal(
            data["non_nodule"][i, ..., 0], padded_crop_xyz(inputs.volume, centre, 20, inputs.volume.min(), 10)
        )


def test_draws_identical_when_run_twice_and_keyed_by_seed(inputs, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_job(inputs, tmp_path / f"{name}.h5", patch=SMALL_PATCH, seed=seed)
    (da, pa), (db, pb), (dc, pc) = (read_shard(tmp_path / f"{n}.h5") for n in "abc")
    for k in da:
        np.testing.assert_array_equal(da[k], db[k])
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    np.testing.assert_array_equal(pa["nodule"], pc["nodule"])  # nodule patches do not depend on the seed
    assert not np.array_equal(pa["non_nodule"]["centre_voxel"], pc["non_nodule"]["centre_voxel"])


def test_nodules_of_a_scan_outside_the_subset_are_refused(inputs, tmp_path):
    table = pd.read_csv(inputs.paths["nodules"], sep="\t", dtype={"seriesuid": str})
    table.loc[0, "seriesuid"] = "9.9.9"
    other = tmp_path / "nodules.tsv"
    table.to_csv(other, sep="\t", index=False)
    with pytest.raises(ValueError, match="9.9.9"):
        Job(job_settings(), {**inputs.paths, "nodules": str(other)})
