"""ctpatch.readers with real PyTorch: default collate for every mix of kinds, dict items, transforms,
the balanced sampler, spacing per item and the one default layout.

torch is part of the ``test`` extra (CI installs the CPU build first): these tests run, never skip.
"""

from __future__ import annotations

import h5py
import numpy as np
import pydicom
import pytest
import torch
from torch.utils.data import DataLoader

from ctpatch.readers import DEFAULT_LAYOUT, BalancedSampler, PatchDataset, folds, iter_batches, load_all

LUNA_COMBOS = [("nodule",), ("non_nodule",), ("nodule", "non_nodule"), ("non_nodule", "nodule")]


def table_fields(path, kind) -> list[str]:
    with h5py.File(path, "r") as f:
        return list(f[f"provenance/{kind}"].dtype.names)


def small_rows(files, kinds, n=5):
    """The first ``n`` rows of each kind of each file: small datasets with every kind in them."""
    return {(str(p), k): np.arange(n) for p in files for k in kinds}


def mixed_order(n):
    """A fixed order that interleaves the kinds (positions of kind blocks alternate)."""
    return list(np.random.default_rng(1).permutation(n))


def flip_image(item):
    """A transform that works on tuples and dicts (module level: pickled into workers)."""
    if isinstance(item, dict):
        return {**item, "image": item["image"][::-1].copy(), "seen": True}
    image, label, prov = item
    return image[::-1].copy(), label, {**prov, "seen": True}


def check_loader(ds, workers, items):
    """Collate the whole dataset in a mixed order; compare every batch entry with ds[i]."""
    order = mixed_order(len(ds))
    loader = DataLoader(ds, batch_size=4, sampler=order, num_workers=workers)
    keys = None
    got = 0
    for batch in loader:
        if items == "dict":
            images, labels, kinds, prov = batch["image"], batch["label"], batch["kind"], batch["provenance"]
        else:
            images, labels, prov = batch
            kinds = prov["kind"]
        keys = keys or set(prov)
        assert set(prov) == keys
        for j in range(images.shape[0]):
            i = order[got + j]
            item = ds[i]
            image, label, p = (item["image"], item["label"], item["provenance"]) if items == "dict" else item
            assert np.array_equal(images[j].numpy(), image) and np.array_equal(labels[j].numpy(), label)
            assert kinds[j] == ds.where(i)[1] and int(prov["row"][j]) == ds.where(i)[2]
            for name, value in p.items():
                col = prov[name][j]
                col = col.numpy() if isinstance(col, torch.Tensor) else col
                same = col == value if isinstance(value, str) else np.array_equal(col, value, equal_nan=True)
                assert same, name
        got += images.shape[0]
    assert got == len(ds)
    return keys


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("items", ["tuple", "dict"])
@pytest.mark.parametrize("kinds", LUNA_COMBOS, ids="+".join)
def test_every_luna_kind_mix_collates_with_the_default_collate(luna, kinds, items, workers):
    ds = PatchDataset(luna.files, kinds, layout="torch", rows=small_rows(luna.files, kinds), items=items)
    keys = check_loader(ds, workers, items)
    expected = set().union(*(table_fields(luna.files[0], k) for k in kinds)) | {"file", "kind", "row", "spacing"}
    assert keys == expected


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("items", ["tuple", "dict"])
def test_ldct_parts_collate_with_the_default_collate(ldct, items, workers):
    ds = PatchDataset(ldct.files, "patch", layout="torch", rows=small_rows(ldct.files, ["patch"], 6), items=items)
    keys = check_loader(ds, workers, items)
    assert keys == set(table_fields(ldct.files[0], "patch")) | {"file", "kind", "row", "spacing"}


def test_fields_of_another_kind_hold_fill_values(luna):
    ds = PatchDataset(luna.files, ("nodule", "non_nodule"))
    nodule, negative = ds.provenance(0), ds.provenance(len(ds) - 1)
    assert nodule["kind"] == "nodule" and negative["kind"] == "non_nodule"
    assert negative["nodule_index"] == -1 and negative["annotation_row"] == -1
    assert negative["shift"].tolist() == [-1, -1, -1] and np.isnan(negative["nodule_world"]).all()
    assert nodule["source"] == "" and nodule["candidate_row"] == -1 and nodule["touches_nodule"] is False
    for name in set(nodule) - {"spacing"}:  # one type per key across kinds
        assert type(nodule[name]) is type(negative[name]), name
        if isinstance(nodule[name], np.ndarray):
            assert nodule[name].dtype == negative[name].dtype and nodule[name].shape == negative[name].shape


def test_dict_items_and_the_transform(luna):
    plain = PatchDataset(luna.files, "nodule", layout="torch")
    ds = PatchDataset(luna.files, "nodule", layout="torch", items="dict", transform=flip_image)
    item = ds[3]
    image, label, prov = plain[3]
    assert set(item) == {"image", "label", "kind", "provenance", "seen"} and item["kind"] == "nodule"
    assert np.array_equal(item["image"], image[::-1]) and np.array_equal(item["label"], label)
    assert item["provenance"]["seriesuid"] == prov["seriesuid"]
    tuples = PatchDataset(luna.files, "nodule", transform=flip_image)
    image_tf = PatchDataset(luna.files, "nodule")[3][0]
    assert tuples[3][2]["seen"] and np.array_equal(tuples[3][0], image_tf[::-1])
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=2)))  # the transform runs in the workers
    assert batch["seen"].tolist() == [True] * 3
    assert np.array_equal(batch["image"][0].numpy(), plain[0][0][::-1])
    fold_item = folds(luna.files)[0].dataset("nodule", layout="torch", items="dict", transform=flip_image)[0]
    assert fold_item["seen"] and fold_item["image"].shape == (1, 68, 68, 68)
    with pytest.raises(ValueError, match="items"):
        PatchDataset(luna.files, items="list")


def test_balanced_sampler_draws_the_chosen_ratio_reproducibly(luna):
    ds = PatchDataset(luna.files, ("nodule", "non_nodule"))
    kinds = np.array([ds.where(i)[1] for i in range(len(ds))])
    assert (kinds == "non_nodule").sum() == 3 * (kinds == "nodule").sum()  # the files' 1 : 3
    sampler = BalancedSampler(ds, {"nodule": 1, "non_nodule": 1}, num_samples=200, seed=7)
    first = list(sampler)
    assert len(first) == len(sampler) == 200
    assert (kinds[first] == "nodule").sum() == 100 and (kinds[first] == "non_nodule").sum() == 100
    nodules = [i for i in first if kinds[i] == "nodule"]
    assert len(set(nodules)) == 100  # 114 nodule patches: none repeats within one epoch
    assert first == list(BalancedSampler(ds, {"nodule": 1, "non_nodule": 1}, num_samples=200, seed=7))
    assert first != list(BalancedSampler(ds, {"nodule": 1, "non_nodule": 1}, num_samples=200, seed=8))
    sampler.set_epoch(1)
    assert list(sampler) != first and len(list(sampler)) == 200
    sampler.set_epoch(0)
    assert list(sampler) == first
    many = list(BalancedSampler(ds, {"nodule": 2, "non_nodule": 1}, num_samples=600, seed=0))
    assert (kinds[many] == "nodule").sum() == 400  # 400 of 114 patches: each 3 or 4 times
    assert set(np.bincount(np.array(many)[kinds[many] == "nodule"])[np.flatnonzero(kinds == "nodule")]) <= {3, 4}
    loader = DataLoader(ds, batch_size=10, sampler=BalancedSampler(ds, {"nodule": 1, "non_nodule": 3}, 40, seed=1))
    counts = sum(np.array(prov["kind"]) == "nodule" for _, _, prov in loader).sum()
    assert counts == 10
    with pytest.raises(ValueError, match="kinds of the dataset"):
        BalancedSampler(PatchDataset(luna.files, "nodule"), {"non_nodule": 1})


def mhd_header(path) -> dict:
    """The keys of a MetaImage header, read as text (independent of ctpatch.io.mhd)."""
    return dict(line.split(" = ", 1) for line in path.read_text().splitlines() if " = " in line)


def test_spacing_per_item_is_the_real_grid_spacing_recorded_in_the_file(luna, monkeypatch):
    """LUNA16: the spacing of the patch's scan after resampling, recorded per patch (issue 22: the
    configured 1.25 mm was given where the real grid spacing differs by up to 0.3 %)."""
    target = luna.config["luna16"]["resample"]["spacing_mm"]
    root = luna.workdir / luna.config["results"] / "demo" / "luna16"
    seen = []
    for kind in ("nodule", "non_nodule"):
        ds = PatchDataset(luna.files, kind)
        for i in (0, len(ds) - 1):
            prov = ds.provenance(i)
            (mhd,) = root.glob(f"subset*/{prov['seriesuid']}.mhd")
            head = mhd_header(mhd)
            size = np.array(head["DimSize"].split(), dtype=float)
            spacing = np.array(head["ElementSpacing"].split(), dtype=float)
            expected = spacing * size / np.maximum(np.rint(size * spacing / target), 1)  # the box over whole voxels
            assert prov["spacing"].shape == (3,) and np.allclose(prov["spacing"], expected, rtol=1e-12), (
                prov["spacing"],
                expected,
            )
            seen.append(prov["spacing"])
    assert any(not np.allclose(s, target, rtol=1e-9, atol=0) for s in seen)  # not the configured value
    with h5py.File(luna.files[0], "r") as f:  # in the file, for readers without ctpatch
        assert "spacing" in f["provenance/nodule"].dtype.names and "spacing" in f["provenance/non_nodule"].dtype.names


def test_ldct_spacing_is_recorded_and_needs_no_source_file(ldct, monkeypatch):
    """LDCT: the pixel spacing of the patch's copy, recorded per patch (issue 22: NaN where the source
    folder was out of reach); the slice thickness too."""
    ds = PatchDataset(ldct.files)
    expected = {}
    for i in (0, 9, len(ds) - 1):
        prov = ds.provenance(i)
        header = pydicom.dcmread(prov["input_file"], stop_before_pixels=True)
        full = np.array([int(header.Rows), int(header.Columns)])
        expected[i] = np.array([float(v) for v in header.PixelSpacing]) * full / prov["copy_shape"]
        assert np.allclose(prov["spacing"], expected[i]) and prov["spacing"].shape == (2,)
        assert prov["slice_thickness"] == pytest.approx(float(header.SliceThickness))

    def unreachable(self, path):
        raise AssertionError(f"the reader opened the source slice {path}")

    monkeypatch.setattr("ctpatch.readers.provenance.DicomSpacing.__call__", unreachable)
    ds = PatchDataset(ldct.files)
    for i, spacing in expected.items():
        assert np.allclose(ds.provenance(i)["spacing"], spacing)


def reader_shapes(files, kind, layout=None) -> dict:
    """The image shape each reader returns for the first rows of ``files`` (``layout`` None: the default)."""
    rows = {str(p): np.arange(3) for p in files}
    return {
        "PatchDataset": PatchDataset(files, kind, rows=rows, layout=layout)[0][0].shape,
        "Fold.dataset": folds(files)[0].dataset(kind, layout=layout)[0][0].shape,
        "load_all": load_all(files, kind, workers=0, rows=rows, layout=layout).images.shape[1:],
        "iter_batches": next(iter_batches(files, kind, 2, workers=0, rows=rows, layout=layout)).images.shape[1:],
    }


def test_one_default_layout_for_every_reader(luna):
    assert DEFAULT_LAYOUT is None  # the layout the files store
    shapes = reader_shapes(luna.files, "nodule")  # LUNA16 files store channel last
    assert set(shapes.values()) == {(68, 68, 68, 1)}, shapes
    shapes = reader_shapes(luna.files, "nodule", "torch")
    assert set(shapes.values()) == {(1, 68, 68, 68)}, shapes


def test_the_default_layout_is_read_from_an_ldct_file(ldct):
    """An LDCT file written with ``output.layout: torch`` reads channel first unless told otherwise
    (issue 22: it read (55, 55, 1))."""
    with h5py.File(ldct.files[0], "r") as f:
        assert f["input"].shape[1:] == (1, 55, 55)  # stored channel first
    shapes = reader_shapes(ldct.files, "patch")
    assert set(shapes.values()) == {(1, 55, 55)}, shapes
    shapes = reader_shapes(ldct.files, "patch", "tf")
    assert set(shapes.values()) == {(55, 55, 1)}, shapes
    assert PatchDataset(ldct.files).layout == "torch" and PatchDataset(ldct.files).image_shape == (1, 55, 55)
    with pytest.raises(ValueError, match="Expected layout"):
        PatchDataset(ldct.files, layout="channels_last")
