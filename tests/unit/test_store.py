"""Tests of ctpatch.store.atomic: nothing that looks finished after a failure; one patch per chunk; codecs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ctpatch.store.atomic import atomic_path, save_npy, write_json
from ctpatch.store.codecs import COMPRESSION, DEFAULT_CODEC, codec_of, create_patch_dataset
from ctpatch.store.writer import copy_chunks


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


# ---------------------------------------------------------------- codecs
BLOSC2_ID = 32026  # the registered HDF5 filter id of Blosc2
#: codec -> the filter pipeline expected in the file: (filter id, parameters checked); Blosc2's
#: parameters 4..6 are (clevel, filters, compressor code), with Blosc's codes BLOSC_LZ4 = 1, BLOSC_ZSTD = 5
PIPELINES = {
    "blosc2-zstd": (BLOSC2_ID, {4: 1, 5: 1, 6: 5}),
    "blosc2-lz4": (BLOSC2_ID, {4: 5, 5: 1, 6: 1}),
    "lzf": (32000, {}),
    "gzip": (1, {0: 1}),
    "none": None,
}


def _ct_like(shape, seed=0):
    """Smooth CT-like float32 values with noise (compressible, but not trivially)."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=shape), axis=-2)
    return np.round(base * 40 + rng.normal(scale=5, size=shape), 1).astype(np.float32)


def test_codecs_cover_the_schema_enum():
    from ctpatch.settings import schema

    assert schema()["$defs"]["codec"]["enum"] == list(COMPRESSION)
    defaults = {}
    for mode in ("luna16", "ldct"):
        comp = schema()["properties"][mode]["properties"]["output"]["properties"]["compression"]
        assert comp["$ref"] == "#/$defs/codec"
        defaults[mode] = comp["default"]
    # per mode, from the codec benchmarks (README): zstd for 68³ float32, lz4 for 55² float16
    assert defaults == {"luna16": DEFAULT_CODEC, "ldct": "blosc2-lz4"} and DEFAULT_CODEC == "blosc2-zstd"
    assert set(PIPELINES) == set(COMPRESSION)


@pytest.mark.parametrize("codec", list(PIPELINES))
def test_every_codec_round_trips_and_records_its_name(tmp_path, codec):
    data = _ct_like((7, 6, 7, 8, 1))
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        create_patch_dataset(h5, "img", data.shape[1:], data.dtype, codec, rows=len(data))[...] = data
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        img = h5["img"]
        assert img.chunks == (1, 6, 7, 8, 1) and img.attrs["codec"] == codec and codec_of(img) == codec
        np.testing.assert_array_equal(img[...], data)
        plist = img.id.get_create_plist()
        filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
        assert filters[-1][0] == h5py.h5z.FILTER_FLETCHER32  # the checksum last: it covers the stored bytes
        filters = filters[:-1]
        if PIPELINES[codec] is None:
            assert filters == [] and img.id.get_storage_size() == data.nbytes + 4 * len(data)
        else:
            fid, params = PIPELINES[codec]
            assert len(filters) == 1 and filters[0][0] == fid
            assert {k: filters[0][2][k] for k in params} == params
        if codec.startswith("blosc2"):  # a Blosc2 frame, not some other filter's bytes
            assert b"b2frame" in img.id.read_direct_chunk((0, 0, 0, 0, 0))[1][:16]


def test_create_patch_dataset_defaults_to_blosc2_zstd(tmp_path):
    with h5py.File(tmp_path / "s.h5", "a") as h5:
        assert codec_of(create_patch_dataset(h5, "other", (2, 2), "float32")) == "blosc2-zstd"


def test_codec_of_refuses_a_dataset_without_the_attribute(tmp_path):
    """Every patch dataset ctpatch writes names its codec; one without the attribute is not guessed."""
    with h5py.File(tmp_path / "old.h5", "w") as h5:
        kw = dict(shape=(2, 4, 4), maxshape=(None, 4, 4), chunks=(1, 4, 4), dtype="float32")
        for name, comp in (("lzf", {"compression": "lzf"}), ("gzip", {"compression": "gzip", "compression_opts": 1})):
            h5.create_dataset(name, **comp, **kw)
        h5.create_dataset("none", **kw)
        h5.create_dataset("gzip9", compression="gzip", compression_opts=9, **kw)
        h5.create_dataset("lzf_shuffle", compression="lzf", shuffle=True, **kw)
        blosc = create_patch_dataset(h5, "blosc", (4, 4), "float32", "blosc2-zstd")
        del blosc.attrs["codec"]
    with h5py.File(tmp_path / "old.h5", "r") as h5:
        for name in ("lzf", "gzip", "none", "gzip9", "lzf_shuffle", "blosc"):
            with pytest.raises(ValueError, match=f"old.h5:/{name} .*without a 'codec' attribute"):
                codec_of(h5[name])


@pytest.mark.parametrize("var, value", [("BLOSC_NTHREADS", "2"), ("BLOSC_CLEVEL", "9"), ("BLOSC_COMPRESSOR", "lz4")])
def test_blosc2_refuses_an_environment_that_changes_its_bytes(tmp_path, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        with pytest.raises(ValueError, match=f"{var}={value}"):
            create_patch_dataset(h5, "b", (4, 4), "float32", "blosc2-zstd")
        assert codec_of(create_patch_dataset(h5, "l", (4, 4), "float32", "lzf")) == "lzf"  # no Blosc: no concern


_WRITE_IN_A_FRESH_PROCESS = """
import json, os, sys
import numpy as np, h5py
from ctpatch.store.codecs import create_patch_dataset
path, codec = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
base = np.cumsum(rng.normal(size=(6, 68, 68, 68, 1)), axis=1)
data = np.round(base * 40 + rng.normal(scale=5, size=base.shape), 1).astype(np.float32)
with h5py.File(path, "w") as h5:
    ds = create_patch_dataset(h5, "img", data.shape[1:], "float32", codec, rows=len(data))
    for i, p in enumerate(data):
        ds[i] = p
print(json.dumps(os.environ.get("BLOSC_NTHREADS")))
"""


@pytest.mark.parametrize("codec", ["blosc2-zstd", "blosc2-lz4"])
def test_blosc2_writes_the_same_bytes_in_separate_processes(tmp_path, codec):
    """The same patches written by two fresh processes give byte-identical chunks (what lzf does not
    guarantee), with ctpatch's own thread setting: BLOSC_NTHREADS is left unset for the children."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOSC_")}
    chunks = []
    for run in ("a", "b"):
        path = tmp_path / f"{run}.h5"
        res = subprocess.run(
            [sys.executable, "-c", _WRITE_IN_A_FRESH_PROCESS, str(path), codec],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == "1"  # set by ``import ctpatch``
        with h5py.File(path, "r") as h5:
            ds = h5["img"]
            assert ds.shape[0] == 6 and codec_of(ds) == codec
            chunks.append([ds.id.read_direct_chunk((i, 0, 0, 0, 0)) for i in range(ds.shape[0])])
    assert all(len(data) < 68**3 * 4 for _, data in chunks[0])  # compressed: several Blosc blocks per chunk
    assert chunks[0] == chunks[1]


def test_import_ctpatch_keeps_an_explicit_blosc_nthreads():
    env = {**os.environ, "BLOSC_NTHREADS": "3"}
    res = subprocess.run(
        [sys.executable, "-c", "import os, ctpatch; print(os.environ['BLOSC_NTHREADS'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stdout.strip() == "3"


def test_unknown_compression(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        with pytest.raises(ValueError, match="compression"):
            create_patch_dataset(h5, "d", (2, 2), "float32", "zstd")


# ---------------------------------------------------------------- copy_chunks
@pytest.mark.parametrize("codec", ["lzf", "blosc2-zstd", "blosc2-lz4"])
def test_copy_chunks_copies_compressed_bytes(tmp_path, codec):
    rng = np.random.default_rng(1)
    data = np.round(rng.normal(size=(6, 5, 4, 3)), 1).astype(np.float32)
    with h5py.File(tmp_path / "src.h5", "w") as src_f, h5py.File(tmp_path / "dst.h5", "w") as dst_f:
        src = create_patch_dataset(src_f, "p", (5, 4, 3), "float32", codec)
        src.resize(6, axis=0)
        src[...] = data
        dst = create_patch_dataset(dst_f, "p", (5, 4, 3), "float32", codec_of(src))
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
        d = h5.create_dataset(
            "d", shape=(4, 4, 4), maxshape=(None, 4, 4), chunks=(2, 4, 4), dtype="float32", compression="lzf"
        )
        for other, word in ((b, "filter pipeline"), (c, "dtypes"), (d, "chunks")):
            with pytest.raises(ValueError, match=word):
                copy_chunks(a, other, [0])


@pytest.mark.parametrize(
    "src_codec, dst_codec",
    [("blosc2-zstd", "lzf"), ("blosc2-zstd", "blosc2-lz4"), ("lzf", "blosc2-zstd"), ("blosc2-lz4", "none")],
)
def test_copy_chunks_refuses_mismatched_pipelines(tmp_path, src_codec, dst_codec):
    """Both Blosc2 codecs are the same HDF5 filter (h5py calls both "unknown"): the parameters must match too."""
    with h5py.File(tmp_path / "src.h5", "w") as src_f, h5py.File(tmp_path / "dst.h5", "w") as dst_f:
        src = create_patch_dataset(src_f, "p", (4, 4), "float32", src_codec)
        src.resize(1, axis=0)
        src[0] = 1.0
        dst = create_patch_dataset(dst_f, "p", (4, 4), "float32", dst_codec)
        dst.resize(1, axis=0)
        with pytest.raises(ValueError, match=r"filter pipeline.*src\.h5:/p .*dst\.h5:/p"):
            copy_chunks(src, dst, [0])
        assert dst.id.get_storage_size() == 0  # nothing copied


def test_a_rerun_removes_the_temp_file_a_killed_writer_left(tmp_path):
    """kill -9 skips every finally: the hidden temp file stays until the next write of that output."""
    import subprocess
    import sys

    from ctpatch.store.atomic import atomic_path, temp_name

    final = tmp_path / "out" / "table.tsv"
    code = (
        "import os, sys; from ctpatch.store.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    open(tmp, 'w').write('half'); os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(final)], capture_output=True)
    assert proc.returncode == -9
    left = list(final.parent.glob(".table.tsv.*.tmp"))
    assert len(left) == 1 and not final.exists()
    running = temp_name(final).with_name(f".table.tsv.{os.getppid()}.tmp")  # a live writer's file stays
    running.write_text("busy")
    with atomic_path(final) as tmp:
        tmp.write_text("whole")
    assert final.read_text() == "whole"
    assert sorted(final.parent.iterdir()) == sorted([final, running])
