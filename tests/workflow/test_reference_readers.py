"""Issue 12 item 7: training code written for the reference programs reads the presets' files unchanged.

The reader scripts below are written the way the references' training code reads -- CASED: a
``multiprocessing`` pool reading 64-patch slices of each dataset of ``subset<K>.h5``;
mpi4py_patches: ``f['input'][:]`` and ``f['target'][:]`` -- and run in a subprocess that imports
only h5py and numpy (no ``hdf5plugin``, no ``ctpatch``, no ``HDF5_PLUGIN_PATH``).  They run on
the outputs of ``config/reference-luna16.yaml`` and ``config/reference-ldct.yaml`` (small
overrides: the small demo data set, two LDCT patients), and what they read is compared with
ctpatch's own reader (:mod:`ctpatch.readers`): shapes, dtypes and every value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from paths import REPO, SHARED_LDCT
from snakerun import SMALL_LUNA, snakemake, write_config

CASED_READER = """
import multiprocessing
import sys

import h5py
import numpy as np

PATH, OUT = sys.argv[1], sys.argv[2]
NAMES = ("nodule", "label_nodule", "non_nodule", "label_non_nodule")


def read(job):
    name, start = job
    with h5py.File(PATH, "r") as f:
        return f[name][start:start + 64]


if __name__ == "__main__":
    with h5py.File(PATH, "r") as f:
        sizes = {name: f[name].shape[0] for name in NAMES}
    with multiprocessing.Pool(4) as pool:
        data = {name: np.concatenate(pool.map(read, [(name, s) for s in range(0, sizes[name], 64)]))
                for name in NAMES}
    np.savez(OUT, **data)
    assert not {"hdf5plugin", "ctpatch"} & set(sys.modules), sorted(sys.modules)
"""

MPI4PY_PATCHES_READER = """
import sys

import h5py
import numpy as np

with h5py.File(sys.argv[1], "r") as f:
    x = f["input"][:]
    y = f["target"][:]
np.savez(sys.argv[2], input=x, target=y)
assert not {"hdf5plugin", "ctpatch"} & set(sys.modules), sorted(sys.modules)
"""


def plain_env() -> dict:
    """The environment of a user's training script: no ctpatch on the path, no HDF5 plugin folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HDF5_PLUGIN_PATH")}
    return env


def run_reader(tmp: Path, script: str, h5: Path, out: Path) -> dict:
    path = tmp / "reader.py"
    path.write_text(script)
    proc = subprocess.run(
        [sys.executable, str(path), str(h5), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=plain_env(),
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def preset(name: str, **override) -> dict:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.mark.slow
@pytest.mark.mpi
def test_cased_style_reader_opens_reference_luna16_preset_files(tmp_path):
    from ctpatch.readers import load_all

    # the small demo; linear resampling only to save a minute (the file format does not depend on it)
    config = preset("reference-luna16.yaml", demo=SMALL_LUNA["demo"], extract={"tasks": 2})
    config["luna16"]["resample"] = {**config["luna16"]["resample"], "interpolator": "linear"}
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "config" / "config.yaml"))
    assert config["results"] == "results/reference-luna16"  # its own folder (issue 22): not the default run's
    files = sorted((tmp_path / config["results"] / "luna16" / "patches").glob("subset*.h5"))
    assert [f.name for f in files] == ["subset0.h5", "subset1.h5"]
    for h5 in files:
        got = run_reader(tmp_path, CASED_READER, h5, tmp_path / f"{h5.stem}.npz")
        for kind, image, label in (
            ("nodule", "nodule", "label_nodule"),
            ("non_nodule", "non_nodule", "label_non_nodule"),
        ):
            ours = load_all(str(h5), kind, workers=0, layout="tf")
            assert len(ours.images) > 0
            assert got[image].shape == ours.images.shape == (len(ours.images), 68, 68, 68, 1)
            assert got[label].shape == ours.labels.shape == (len(ours.images), 8, 8, 8, 2)
            assert got[image].dtype == ours.images.dtype == np.float32
            assert got[label].dtype == ours.labels.dtype == np.float32
            assert np.array_equal(got[image], ours.images) and np.array_equal(got[label], ours.labels)


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(not SHARED_LDCT.is_dir(), reason=f"no real CT data at {SHARED_LDCT}")
def test_mpi4py_patches_style_reader_opens_reference_ldct_preset_files(tmp_path):
    from ctpatch.readers import load_all

    config = preset("reference-ldct.yaml", extract={"tasks": 2})
    config["ldct"] = {**config["ldct"], "root": str(SHARED_LDCT), "patients": ["L096", "L143"]}
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "config" / "config.yaml"))
    assert config["results"] == "results/reference-ldct"  # its own folder (issue 22): not the default run's
    patients = sorted((tmp_path / config["results"] / "ldct" / "patches").glob("*.h5"))
    assert [p.stem for p in patients] == ["L096", "L143"]
    combined = tmp_path / config["results"] / "ldct" / "combined" / "all.h5"  # the reference's one file for all
    for h5, pairs in [(p, 4) for p in patients] + [(combined, 8)]:
        got = run_reader(tmp_path, MPI4PY_PATCHES_READER, h5, tmp_path / f"{h5.stem}.npz")
        ours = load_all(str(h5), "patch", workers=0, layout="torch")
        n = len(ours.images)
        assert n == pairs * 11 * 11  # p55 starts 0, 39, 86, ..., 463 on 512 pixels; augmentations off
        assert got["input"].shape == got["target"].shape == ours.images.shape == (n, 1, 55, 55)
        assert got["input"].dtype == got["target"].dtype == ours.images.dtype == np.float16
        assert np.array_equal(got["input"], ours.images) and np.array_equal(got["target"], ours.labels)
    # the combined file is the patients' files one after the other (shuffle off), and self-contained (the
    # preset's `combined: copy`): moved away from patches/, plain h5py still reads every patch
    parts = [load_all(str(p), "patch", workers=0, layout="torch").images for p in patients]
    import h5py

    moved = tmp_path / "elsewhere" / "all.h5"
    moved.parent.mkdir()
    combined.rename(moved)
    with h5py.File(moved, "r") as f:
        assert not f["input"].is_virtual and not f["target"].is_virtual
        assert np.array_equal(np.concatenate(parts), f["input"][:])
