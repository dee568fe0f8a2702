"""Tests of ctpatch.readers on small real patch files: every value is compared with a direct h5py read."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import shutil

import h5py
import numpy as np
import pytest

from ctpatch.readers import Fold, PatchDataset, check_folds, folds, iter_batches, load_all, train_val


def h5_rows(path, name):
    with h5py.File(path, "r") as f:
        return f[name][...]


def decoded(rec) -> dict:
    out = {}
    for name in rec.dtype.names:
        v = rec[name]
        out[name] = v.decode() if isinstance(v, bytes) else v
    return out


# ---------------------------------------------------------------- the dataset
def test_length_is_the_sum_of_the_files_rows(luna):
    counts = {k: sum(h5_rows(p, f"provenance/{k}").shape[0] for p in luna.files) for k in ("nodule", "non_nodule")}
    assert len(PatchDataset(luna.files, "nodule")) == counts["nodule"] == 57 * 2
    assert len(PatchDataset(luna.files, "non_nodule")) == counts["non_nodule"] == 3 * 57 * 2
    assert len(PatchDataset(luna.files, ("nodule", "non_nodule"))) == counts["nodule"] + counts["non_nodule"]


@pytest.mark.parametrize("kind", ["nodule", "non_nodule"])
def test_an_item_is_its_h5_row_with_its_provenance(luna, kind):
    ds = PatchDataset(luna.files, kind)
    n0 = h5_rows(luna.files[0], f"provenance/{kind}").shape[0]
    for i in (0, 7, n0 - 1, n0, len(ds) - 1, -1):
        pos = i % len(ds)
        path, row = (luna.files[0], pos) if pos < n0 else (luna.files[1], pos - n0)
        image, label, prov = ds[i]
        with h5py.File(path, "r") as f:
            assert np.array_equal(image, f[kind][row]) and image.dtype == f[kind].dtype
            assert np.array_equal(label, f[f"label_{kind}"][row])
            expected = decoded(f[f"provenance/{kind}"][row])
        assert image.shape == (68, 68, 68, 1) and label.shape == (8, 8, 8, 2)
        assert prov["file"] == str(path) and prov["row"] == row and prov["kind"] == kind
        for name, value in expected.items():
            assert np.array_equal(prov[name], value), name
        assert ds.where(i) == (str(path), kind, row)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_kinds_concatenate_file_by_file(luna):
    ds = PatchDataset(luna.files, ("nodule", "non_nodule"))
    order = [(str(p), k) for p in luna.files for k in ("nodule", "non_nodule")]
    seen = [ds.where(i)[:2] for i in range(len(ds))]
    assert list(dict.fromkeys(seen)) == order


def test_torch_layout_moves_the_channel_first(luna):
    tf_ds, torch_ds = PatchDataset(luna.files, "nodule"), PatchDataset(luna.files, "nodule", layout="torch")
    image_tf, label_tf, _ = tf_ds[3]
    image, label, _ = torch_ds[3]
    assert image.shape == (1, 68, 68, 68) and label.shape == (2, 8, 8, 8)
    assert torch_ds.image_shape == (1, 68, 68, 68) and torch_ds.label_shape == (2, 8, 8, 8)
    for x, y, z in [(0, 0, 0), (5, 30, 60), (67, 1, 2)]:  # spatial axes keep their (x, y, z) order
        assert image[0, x, y, z] == image_tf[x, y, z, 0]
    for c in (0, 1):
        assert np.array_equal(label[c], label_tf[..., c])
    assert label.flags.c_contiguous


def test_ldct_patches_convert_between_layouts(ldct):
    stored = h5_rows(ldct.files[0], "input")
    assert stored.shape[1:] == (1, 55, 55)  # written in torch layout
    image, target, prov = PatchDataset(ldct.files, layout="tf")[5]
    assert image.shape == (55, 55, 1) and np.array_equal(image[..., 0], stored[5, 0])
    assert np.array_equal(target[..., 0], h5_rows(ldct.files[0], "target")[5, 0])
    assert prov["patient"] in ("L096", "L143") and prov["input_file"].endswith(".IMA")
    image, _, _ = PatchDataset(ldct.files, layout="torch")[5]
    assert image.shape == (1, 55, 55) and np.array_equal(image, stored[5])


def test_a_kind_of_the_other_mode_is_refused_naming_the_file(luna):
    with pytest.raises(ValueError, match="subset0.h5.*kind 'patch' belongs to mode ldct"):
        PatchDataset(luna.files, "patch")
    with pytest.raises(ValueError, match="layout"):
        PatchDataset(luna.files, "nodule", layout="channels_first")


# ---------------------------------------------------------------- processes
def _read_in_child(ds, index):
    inherited = ds._handles
    before = None if inherited is None else inherited.get(0)
    image, label, prov = ds[index]
    mine = ds._handles[0]
    return os.getpid(), ds._pid == os.getpid(), mine is not before, float(image.sum()), prov["row"]


def test_pickling_carries_no_handle_and_each_process_opens_its_own(luna):
    ds = PatchDataset(luna.files, "nodule")
    assert ds._handles is None  # nothing opened by the constructor
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[4][0], ds[4][0])
    parent_handle = ds._handles[0]
    clone2 = pickle.loads(pickle.dumps(ds))  # an open dataset pickles too: without its handle
    assert clone2._handles is None and ds._handles[0] is parent_handle
    sums = {i: float(ds[i][0].sum()) for i in range(6)}
    with mp.get_context("fork").Pool(2) as pool:  # forked children inherit the open dataset
        results = pool.starmap(_read_in_child, [(ds, i) for i in range(6)])
    assert len({pid for pid, *_ in results}) >= 1 and all(pid != os.getpid() for pid, *_ in results)
    for (pid, own_pid, new_handle, total, row), i in zip(results, range(6)):
        assert own_pid and new_handle  # the child opened a handle of its own, never the parent's
        assert total == sums[i] and row == i
    assert ds._handles[0] is parent_handle and bool(parent_handle)  # the parent's handle is untouched
    assert np.array_equal(ds[5][0], h5_rows(luna.files[0], "nodule")[5])


def test_dataloader_workers_read_the_same_patches(luna):
    import torch  # the test extra installs it: this test runs, never skips

    ds = PatchDataset(luna.files, "nodule", layout="torch")
    ds[0]  # opened in the parent before the workers fork
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False, num_workers=2)
    start = 0
    for images, labels, prov in loader:
        n = images.shape[0]
        for j in range(n):
            image, label, p = ds[start + j]
            assert np.array_equal(images[j].numpy(), image) and np.array_equal(labels[j].numpy(), label)
            assert prov["seriesuid"][j] == p["seriesuid"] and int(prov["row"][j]) == p["row"]
        start += n
    assert start == len(ds)


# ---------------------------------------------------------------- bulk loading
@pytest.fixture(scope="module")
def every_third(luna):
    """Every third nodule row of each file (keeps the reads small), and those rows read with h5py."""
    rows = {str(p): np.arange(0, 57, 3) for p in luna.files}
    img = np.concatenate([h5_rows(p, "nodule")[rows[str(p)]] for p in luna.files])
    lab = np.concatenate([h5_rows(p, "label_nodule")[rows[str(p)]] for p in luna.files])
    return rows, img, lab


@pytest.mark.parametrize("backend,workers", [("process", 2), ("thread", 2), ("process", 0)])
def test_load_all_returns_exactly_the_sequential_arrays(luna, every_third, backend, workers):
    rows, img, lab = every_third
    got = load_all(luna.files, "nodule", workers, backend=backend, rows=rows, block=4)
    assert got.images.dtype == img.dtype and np.array_equal(got.images, img)
    assert np.array_equal(got.labels, lab)
    assert np.array_equal(got.index, np.arange(len(img)))


def test_load_all_in_torch_layout(luna, every_third):
    rows, img, lab = every_third
    got = load_all(PatchDataset(luna.files, "nodule", layout="torch", rows=rows), workers=2)
    assert np.array_equal(got.images, np.moveaxis(img, -1, 1)) and np.array_equal(got.labels, np.moveaxis(lab, -1, 1))


@pytest.mark.parametrize("shuffle,copy", [(False, True), (True, True), (True, False)])
def test_iter_batches_covers_every_patch_once_with_its_rows(luna, every_third, shuffle, copy):
    rows, img, lab = every_third
    seen = []
    held = []
    for batch in iter_batches(
        luna.files, "nodule", batch_size=5, workers=2, rows=rows, shuffle=shuffle, seed=5, copy=copy, prefetch=3
    ):
        assert np.array_equal(batch.images, img[batch.index]) and np.array_equal(batch.labels, lab[batch.index])
        seen += batch.index.tolist()
        if copy:
            held.append(batch)
    assert sorted(seen) == list(range(len(img)))
    assert (seen != sorted(seen)) == shuffle
    for batch in held:  # copies stay valid after the buffers were reused
        assert np.array_equal(batch.images, img[batch.index])
    again = [b.index.tolist() for b in iter_batches(luna.files, "nodule", 5, 0, rows=rows, shuffle=shuffle, seed=5)]
    assert sum(again, []) == seen  # the same order without workers


def test_iter_batches_stopped_early_leaves_no_worker(luna, every_third):
    before = len(mp.active_children())
    for i, _ in enumerate(iter_batches(luna.files, "nodule", 4, workers=2, rows=every_third[0])):
        if i == 1:
            break
    assert len(mp.active_children()) == before


# ---------------------------------------------------------------- folds
def test_luna_subsets_are_the_folds(luna):
    fl = folds(luna.files)
    assert [f.name for f in fl] == ["subset0", "subset1"]
    assert [f.paths for f in fl] == [[str(luna.files[0])], [str(luna.files[1])]]
    assert len(fl[0].dataset("nodule")) == 57 and len(fl[0].dataset(("nodule", "non_nodule"))) == 4 * 57
    train, val = train_val(fl, 1)
    assert train.paths == [str(luna.files[0])] and val.groups == ("subset1",)
    check_folds(fl)
    check_folds({"train": [luna.files[0]], "val": [luna.files[1]]})


def test_a_scan_in_two_folds_is_named(luna, tmp_path):
    uid = h5_rows(luna.files[1], "provenance/nodule")["seriesuid"][0].decode()
    with pytest.raises(ValueError, match=f"scan {uid} is in two folds: 'train'.*'val'"):
        check_folds({"train": luna.files, "val": [luna.files[1]]})
    copy = tmp_path / "subset7.h5"  # the same scan under another subset name
    shutil.copyfile(luna.files[1], copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["group"] = "subset7"  # the subset the extraction records
    with pytest.raises(ValueError, match=f"scan {uid} is in two folds: 'subset1'.*'subset7'"):
        folds([luna.files[0], luna.files[1], copy])


def test_ldct_folds_split_by_patient(ldct):
    fl = folds(ldct.files)
    assert sorted(f.name for f in fl) == ["L096", "L143"]
    patients = {}
    total = 0
    for fold in fl:
        ds = fold.dataset()
        total += len(ds)
        names = {ds.provenance(i)["patient"] for i in range(0, len(ds), 37)}
        assert names == set(fold.groups)
        for path, kind in fold.rows:
            prov = h5_rows(path, "provenance/patch")
            expected = np.flatnonzero(prov["patient"].astype(str) == fold.groups[0])
            assert np.array_equal(fold.rows[(path, kind)], expected)
        patients[fold.name] = fold
    assert total == sum(h5_rows(p, "input").shape[0] for p in ldct.files)
    two = folds(ldct.files, k=1)
    assert len(two) == 1 and sorted(two[0].groups) == ["L096", "L143"]


def test_a_patient_in_two_folds_is_named(ldct):
    a, b = folds(ldct.files)
    leak = Fold(
        "leaky",
        "ldct",
        b.groups,
        {
            **b.rows,
            (str(ldct.files[0]), "patch"): np.array(
                [
                    int(
                        np.flatnonzero(
                            h5_rows(ldct.files[0], "provenance/patch")["patient"].astype(str) == a.groups[0]
                        )[0]
                    )
                ]
            ),
        },
    )
    with pytest.raises(ValueError, match=f"patient {a.groups[0]} is in two folds: '{a.name}'.*'leaky'"):
        check_folds([a, leak])
