"""Shell quoting as a class: a data root, results folder and working folder whose names hold
spaces, quotes, ``;`` and ``$()`` work as paths, and nothing in them is run as a command."""

from __future__ import annotations

import copy

import h5py
import hdf5plugin  # noqa: F401 -- the patch files are Blosc2-compressed
import pytest
from snakerun import SMALL_LUNA, snakemake, write_config

from ctpatch.luna16.demo import write_dataset

HOSTILE = "a b 'c\" ; touch PWNED_$(touch PWNED2) `touch PWNED3` &"


@pytest.mark.slow
def test_luna_run_with_hostile_root_results_and_workdir(tmp_path):
    root = tmp_path / f"data {HOSTILE}"
    write_dataset(root, {**SMALL_LUNA["demo"], "subsets": 1, "size_xy": 128}, seed=0)
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"].update(root=str(root), negatives={"ratio": 1})
    cfg["results"] = f"res {HOSTILE}"
    cfg["extract"]["tasks"] = 1
    work = tmp_path / f"work {HOSTILE}"
    write_config(work, cfg)
    snakemake(work, "--cores", "2")
    out = work / cfg["results"] / "luna16"
    with h5py.File(out / "patches" / "subset0.h5", "r") as f:
        assert f["nodule"].shape[0] > 0 and f["nodule"].shape[0] % 57 == 0
    assert (out / "report" / "subset0.verify.json").is_file()
    # no word of a path ran as a command, in any folder a job could have used
    for folder in (tmp_path, work, root, work / cfg["results"]):
        assert not [p for p in folder.iterdir() if p.name.startswith("PWNED")], folder
