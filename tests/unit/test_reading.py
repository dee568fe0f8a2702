"""Tests of ctpatch.store.reading: what a reader outside ctpatch needs, checked against plain h5py itself."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ctpatch.store.codecs import COMPRESSION, create_patch_dataset
from ctpatch.store.reading import PLAIN_H5PY, file_codecs, reader_needs

PLAIN_READ = "import sys, h5py\nwith h5py.File(sys.argv[1], 'r') as f:\n    f['p'][0]\n"


def plain_h5py_reads(path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HDF5_PLUGIN_PATH")}
    return subprocess.run(
        [sys.executable, "-c", PLAIN_READ, str(path)], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("codec", list(COMPRESSION))
def test_sentence_matches_what_plain_h5py_can_read(tmp_path, codec):
    path = tmp_path / f"{codec}.h5"
    with h5py.File(path, "w") as f:
        ds = create_patch_dataset(f, "p", (8, 8), "float32", codec)
        ds.resize(1, axis=0)
        ds[0] = np.arange(64, dtype=np.float32).reshape(8, 8)
    assert file_codecs(path) == [codec]
    proc = plain_h5py_reads(path)
    sentence = reader_needs(file_codecs(path))
    if proc.returncode == 0:
        assert codec in PLAIN_H5PY
        assert sentence.startswith("plain h5py opens these files")
    else:  # the error the issue quotes, and the sentence says how to avoid it
        assert codec not in PLAIN_H5PY
        assert "Can't synchronously read data" in proc.stderr
        assert sentence.startswith("IMPORT hdf5plugin BEFORE READING") and "Can't synchronously read data" in sentence


def test_mixed_codecs_need_the_plugin():
    assert reader_needs(["gzip", "blosc2-zstd"]).startswith("IMPORT hdf5plugin")
    assert reader_needs([]) == "no patch datasets found"
