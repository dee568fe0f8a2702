"""Tests of ctpatch.ldct.combine: the combined LDCT file as virtual datasets over per-patient files."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from ctpatch.ldct.combine import CombineError, check_combined, combine, combined_order, runs
from ctpatch.ldct.job import pair_dtype, patch_dtype
from ctpatch.store.codecs import create_patch_dataset

COUNTS = {"L001": 7, "L002": 5, "L003": 9}


def patient_file(path, patient: str, n: int, settings: str = "{}") -> np.ndarray:
    """A per-patient file shaped like the merge's output; patch i holds the value (patient number, i)."""
    value = np.array([100.0 * int(patient[1:]) + i for i in range(n)], dtype=np.float32)
    with h5py.File(path, "w") as f:
        for name, sign in (("input", 1), ("target", -1)):
            ds = create_patch_dataset(f, name, (1, 4, 4), "float16", "gzip")
            ds.resize(n, axis=0)
            ds[...] = (sign * value)[:, None, None, None] * np.ones((1, 4, 4), np.float32)
        prov = np.zeros(n, patch_dtype(8, 16))
        prov["patient"], prov["patch_index"] = patient.encode(), np.arange(n)
        f.create_dataset("provenance/patch", data=prov)
        pair = np.zeros(1, pair_dtype(8, 16))
        pair["patient"], pair["patches_written"] = patient.encode(), n
        f.create_dataset("provenance/pair", data=pair)
        f.attrs.update(mode="ldct", settings=settings, group=patient, part=0, parts=1, shuffled=False)
    return value


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "patches").mkdir()
    paths, values = [], []
    for patient, n in COUNTS.items():
        p = tmp_path / "patches" / f"{patient}.h5"
        values.append(patient_file(p, patient, n))
        paths.append(p)
    return paths, np.concatenate(values)


def read_all(paths):
    out = {}
    for p in paths:
        with h5py.File(p, "r") as f:
            for k in ("input", "target", "provenance/patch", "provenance/source"):
                out.setdefault(k, []).append(f[k][...])
    return {k: np.concatenate(v) for k, v in out.items()}


def test_in_order_the_parts_are_the_sources_one_after_the_other(tmp_path, sources):
    paths, values = sources
    outs = [tmp_path / "combined" / f"all.part{i}.h5" for i in range(2)]
    counts = combine(paths, outs, seed=0, shuffle=False, how="virtual")
    assert counts["per_part"] == [11, 10] and counts["patches"] == 21
    assert counts["mappings_per_part"] == [2, 2]  # L001 + 4 rows of L002 | 1 row of L002 + L003
    got = read_all(outs)
    np.testing.assert_array_equal(got["input"][:, 0, 0, 0], values)
    np.testing.assert_array_equal(got["target"][:, 0, 0, 0], -values)
    assert [p.decode() for p in got["provenance/patch"]["patient"]] == [p for p, n in COUNTS.items() for _ in range(n)]
    assert check_combined(outs, paths) == []
    with h5py.File(outs[0], "r") as f:
        assert f["input"].is_virtual and f.attrs["combined"] == "virtual"
        assert list(f.attrs["sources"])[0] == "../patches/L001.h5"
        assert len(f["provenance/pair"]) == 3


def test_shuffled_parts_mix_patients_and_hold_every_patch_once(tmp_path, sources):
    paths, values = sources
    outs = [tmp_path / "combined" / f"all.part{i}.h5" for i in range(3)]
    combine(paths, outs, seed=4, shuffle=True, how="virtual")
    got = read_all(outs)
    v = got["input"][:, 0, 0, 0]
    assert sorted(v.tolist()) == sorted(values.tolist()) and not np.array_equal(v, values)
    # each row is its source row: value = 100 * patient + row (independent of the mapping code)
    src = got["provenance/source"]
    patient_no = np.array([int(p) for p in (1, 2, 3)])[src["source"]]
    np.testing.assert_array_equal(v, 100.0 * patient_no + src["row"])
    np.testing.assert_array_equal(got["provenance/patch"]["patch_index"], src["row"])
    first = got["provenance/patch"]["patient"][:7]
    assert len(set(first.tolist())) > 1  # patients mixed
    assert check_combined(outs, paths) == []
    # the same seed gives the same files
    again = [tmp_path / "again" / o.name for o in outs]
    combine(paths, again, seed=4, shuffle=True, how="virtual")
    assert np.array_equal(read_all(again)["input"], got["input"])


def test_relative_sources_survive_moving_the_results_folder(tmp_path, sources):
    paths, values = sources
    combine(paths, [tmp_path / "combined" / "all.h5"], seed=0, shuffle=True, how="virtual")
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    shutil.rmtree(tmp_path / "patches")
    with h5py.File(moved / "combined" / "all.h5", "r") as f:
        assert sorted(f["input"][:, 0, 0, 0].tolist()) == sorted(values.tolist())


def test_check_finds_a_source_changed_after_combining(tmp_path, sources):
    paths, _ = sources
    outs = [tmp_path / "combined" / "all.h5"]
    combine(paths, outs, seed=0, shuffle=False, how="virtual")
    patient_file(paths[1], "L002", COUNTS["L002"] - 1)  # rewritten with one patch fewer
    fails = check_combined(outs, paths)
    assert fails and any("past the end" in m or "differs" in m for m in fails)


def test_files_of_other_settings_are_refused(tmp_path, sources):
    paths, _ = sources
    patient_file(paths[2], "L003", 3, settings='{"seed": 1}')
    with pytest.raises(CombineError, match="L003.h5: made with other settings"):
        combine(paths, [tmp_path / "c.h5"], seed=0, shuffle=False, how="virtual")


def test_order_and_runs_helpers():
    parts = combined_order([3, 2], 1, 0, False, ["x"])
    assert parts[0].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]
    assert runs(parts[0]) == [(0, 0, 0, 3), (3, 1, 0, 2)]
    shuffled = combined_order([3, 2], 2, 0, True, ["x"])
    assert sorted(map(tuple, np.concatenate(shuffled).tolist())) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_copy_holds_the_same_rows_as_real_datasets(tmp_path, sources):
    paths, _ = sources
    virtual = [tmp_path / "v" / f"all.part{i}.h5" for i in range(2)]
    copied = [tmp_path / "c" / f"all.part{i}.h5" for i in range(2)]
    combine(paths, virtual, seed=9, shuffle=True, how="virtual")
    combine(paths, copied, seed=9, shuffle=True, how="copy")
    a, b = read_all(virtual), read_all(copied)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    with h5py.File(copied[0], "r") as f:
        assert not f["input"].is_virtual and f["input"].chunks == (1, 1, 4, 4) and f.attrs["combined"] == "copy"
    assert check_combined(copied, paths) == []


def test_a_virtual_file_away_from_its_sources_reads_no_patch_as_data(tmp_path, sources):
    """Moved away from the per-patient files, a virtual combined file reads NaN (never a patch) through
    plain h5py, and ctpatch's readers refuse it naming the missing file."""
    from ctpatch.readers import PatchDataset

    paths, values = sources
    out = tmp_path / "combined" / "all.h5"
    combine(paths, [out], seed=0, shuffle=False, how="virtual")
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["input"][:, 0, 0, 0].astype(np.float32), values)  # beside its sources: the data
    moved = tmp_path / "elsewhere" / "deeper" / "all.h5"  # the sources' relative names lead nowhere from here
    moved.parent.mkdir(parents=True)
    shutil.copyfile(out, moved)
    with h5py.File(moved, "r") as f:
        assert np.isnan(f["input"][...].astype(np.float32)).all() and np.isnan(f["target"][...]).all()
    with pytest.raises(ValueError, match=r"deeper/all\.h5: .*not there, e\.g\. .*L001\.h5"):
        PatchDataset([moved])


def test_integer_virtual_files_fill_with_the_dtype_limit():
    from ctpatch.ldct.combine import _fill

    assert _fill("int16") == -32768 and _fill("uint16") == 65535 and np.isnan(_fill("float16"))
