"""Tests of ctpatch.store: nothing that looks finished after a failure; one patch per chunk."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ctpatch.store import ShardWriter, atomic_path, copy_chunks, create_patch_dataset, save_npy, write_json

PROV = np.dtype([("id", "<i4"), ("name", "S8"), ("centre", "<i4", (3,))])


class Boom(Exception):
    pass


def files(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- atomic_path
def test_atomic_path_leaves_no_final_file_when_the_block_raises(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            assert tmp != final and tmp.parent == final.parent
            raise Boom
    assert not final.exists()
    assert files(tmp_path / "sub") == []  # and no temporary left either


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.write_text("new")
            raise Boom
    assert final.read_text() == "old" and files(tmp_path) == ["out.txt"]


def test_atomic_path_renames_on_success(tmp_path):
    final = tmp_path / "out.txt"
    with atomic_path(final) as tmp:
        tmp.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done" and files(tmp_path) == ["out.txt"]


def test_save_npy_and_write_json(tmp_path):
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    save_npy(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a)
    write_json(tmp_path / "a.json", {"b": np.int64(3), "a": np.arange(2), "p": tmp_path})
    assert (tmp_path / "a.json").read_text() == '{\n "a": [\n  0,\n  1\n ],\n "b": 3,\n "p": "%s"\n}\n' % tmp_path
    assert files(tmp_path) == ["a.json", "a.npy"]


# ---------------------------------------------------------------- ShardWriter
def writer(path, buffer=2, compression="lzf"):
    specs = {"img": ((6, 7, 8, 1), "float32"), "lab": ((2, 2, 2, 2), "float32")}
    return ShardWriter(path, specs, {"img": PROV}, compression=compression, buffer=buffer, attrs={"mode": "luna16"})


def test_shard_writer_one_patch_per_chunk_lzf(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(5, 6, 7, 8, 1))  # float64 in, float32 stored
    labs = rng.random((5, 2, 2, 2, 2)).astype(np.float32)
    path = tmp_path / "rank0000.h5"
    with writer(path) as w:
        for i in range(5):
            w.add("img", imgs[i])
            w.add("lab", labs[i])
            w.add_row("img", (i, f"s{i}".encode(), (i, 2 * i, 3 * i)))
        assert not path.exists()  # only the temporary name while writing
    assert files(tmp_path) == ["rank0000.h5"]
    with h5py.File(path, "r") as h5:
        img, lab = h5["img"], h5["lab"]
        assert img.shape == (5, 6, 7, 8, 1) and img.dtype == np.float32
        assert img.chunks == (1, 6, 7, 8, 1) and lab.chunks == (1, 2, 2, 2, 2)
        assert img.compression == "lzf" and lab.compression == "lzf"
        assert img.maxshape == (None, 6, 7, 8, 1)
        np.testing.assert_array_equal(img[...], imgs.astype(np.float32))
        np.testing.assert_array_equal(lab[...], labs)
        prov = h5["provenance/img"][...]
        assert prov["id"].tolist() == list(range(5))
        assert prov["name"].tolist() == [f"s{i}".encode() for i in range(5)]
        assert prov["centre"].tolist() == [[i, 2 * i, 3 * i] for i in range(5)]
        assert h5.attrs["mode"] == "luna16"


def test_shard_writer_holds_at_most_buffer_patches(tmp_path):
    w = writer(tmp_path / "s.h5", buffer=3)
    for i in range(7):
        w.add("img", np.full((6, 7, 8, 1), i, np.float32))
        assert len(w._pending["img"]) < 3
        assert w.datasets["img"].shape[0] == 3 * ((i + 1) // 3)
    w.close()
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        assert h5["img"][:, 0, 0, 0, 0].tolist() == list(range(7))


def test_shard_writer_failure_leaves_nothing(tmp_path):
    path = tmp_path / "rank0001.h5"
    with pytest.raises(Boom):
        with writer(path, buffer=1) as w:
            w.add("img", np.zeros((6, 7, 8, 1)))
            raise Boom
    assert files(tmp_path) == []


@pytest.mark.parametrize("compression, expected", [("gzip", "gzip"), ("none", None)])
def test_other_compressions(tmp_path, compression, expected):
    with writer(tmp_path / "s.h5", compression=compression) as w:
        w.add("img", np.ones((6, 7, 8, 1)))
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        assert h5["img"].compression == expected and h5["img"].chunks == (1, 6, 7, 8, 1)


def test_unknown_compression(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        with pytest.raises(ValueError, match="compression"):
            create_patch_dataset(h5, "d", (2, 2), "float32", "zstd")


# ---------------------------------------------------------------- copy_chunks
def test_copy_chunks_copies_compressed_bytes(tmp_path):
    rng = np.random.default_rng(1)
    data = np.round(rng.normal(size=(6, 5, 4, 3)), 1).astype(np.float32)
    with h5py.File(tmp_path / "src.h5", "w") as src_f, h5py.File(tmp_path / "dst.h5", "w") as dst_f:
        src = create_patch_dataset(src_f, "p", (5, 4, 3), "float32", "lzf")
        src.resize(6, axis=0)
        src[...] = data
        dst = create_patch_dataset(dst_f, "p", (5, 4, 3), "float32", "lzf")
        dst.resize(5, axis=0)
        dst[0] = -1.0
        copy_chunks(src, dst, [3, 0, 5, 2], dst_start=1)
        np.testing.assert_array_equal(dst[1:], data[[3, 0, 5, 2]])
        assert np.all(dst[0] == -1.0)
        for i, row in enumerate([3, 0, 5, 2]):
            assert dst.id.read_direct_chunk((1 + i, 0, 0, 0))[1] == src.id.read_direct_chunk((row, 0, 0, 0))[1]
    with h5py.File(tmp_path / "dst.h5", "r") as h5:  # and read back from disk
        np.testing.assert_array_equal(h5["p"][1:], data[[3, 0, 5, 2]])


def test_copy_chunks_rejects_different_layouts(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        a = create_patch_dataset(h5, "a", (4, 4), "float32", "lzf")
        b = create_patch_dataset(h5, "b", (4, 4), "float32", "gzip")
        c = create_patch_dataset(h5, "c", (4, 4), "float16", "lzf")
        d = h5.create_dataset("d", shape=(4, 4, 4), maxshape=(None, 4, 4), chunks=(2, 4, 4), dtype="float32",
                              compression="lzf")
        for other, word in ((b, "filters"), (c, "filters"), (d, "chunks")):
            with pytest.raises(ValueError, match=word):
                copy_chunks(a, other, [0])
