"""Tests of ctpatch.ldct.verify: a correct two-part run verifies, and each kind of damage is found."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from _patchfiles import pair_patient
from paths import SHARED_DATA, SHARED_LDCT

from ctpatch.engine.run import extract, extraction_attrs
from ctpatch.ldct.job import Job
from ctpatch.ldct.verify import stat_fields, verify_ldct

QUARTER, FULL = "quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"

pytestmark = pytest.mark.skipif(not SHARED_LDCT.is_dir(), reason=f"real LDCT data not found under {SHARED_DATA}")

SETTINGS = {
    "patch": {"code": "p96"},
    "ds_augment": {"enabled": True},
    "air_threshold": {"enabled": True},
    "rot_augment": {"enabled": True},
    "dose_blend": {"enabled": True},
    "blur_noise": {"enabled": True},
    "output": {"dtype": "float16", "nsplit": 2, "shuffle": True},
}


def pair_table(out: Path, random_n: int, name: str) -> Path:
    t = out / f"{name}.tsv"
    assert (
        pair_patient(
            SHARED_LDCT / "L143", t, out / f"{name}.json", seed=1, input_dir=QUARTER, target_dir=FULL, random_n=random_n
        )
        == 0
    )
    return t


def run(out: Path, settings: dict, table: Path) -> list[str]:
    """Extract every selected pair of ``table`` into nsplit parts."""
    job = Job(settings, {"pairs": [str(table)]})
    parts = [str(out / f"part{i}.h5") for i in range(settings["output"].get("nsplit", 1))]
    extract(job, parts, extraction_attrs(job, "L143"), buffer=8)  # as the workflow writes
    return parts


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    table = pair_table(out, 2, "two")
    return out, table, run(out, SETTINGS, table)


def damaged(tmp_path, parts, edit):
    """Copies of the parts, the first edited in place by ``edit(h5file)``."""
    copies = []
    for i, p in enumerate(parts):
        dst = tmp_path / f"copy{i}.h5"
        shutil.copyfile(p, dst)
        copies.append(str(dst))
    with h5py.File(copies[0], "r+") as f:
        edit(f)
    return copies


def test_correct_run_verifies(good):
    _, table, parts = good
    report = verify_ldct(parts, str(table), SETTINGS)
    assert report["ok"], report["failures"]
    total = 0
    for p in parts:
        with h5py.File(p, "r") as f:
            total += f["input"].shape[0]
            pair = f["provenance/pair"][...]
    assert len(pair) == 2 == report["selected_pairs"]
    assert report["patches"] == total == int(pair["patches_written"].sum())
    assert report["patches_per_part"][0] > 0 and report["patches_per_part"][1] > 0
    # float16 rounds to nearest: half its spacing at the largest magnitude, computed here from the exponent
    top = max(abs(v) for k in ("input_value_range", "target_value_range") for v in report[k])
    assert report["dtype_worst_case_error"] == 2.0 ** (np.floor(np.log2(top)) - 10) / 2
    assert 0 < report["sample_roundtrip_error"] <= report["dtype_worst_case_error"]
    sampled = [
        i
        for i, r in enumerate(pair)
        if f"{r['patient'].decode()}/{Path(r['input_file'].decode()).name}" in report["sample_pairs"]
    ]
    assert sampled and report["sample_patches"] == int(pair["patches_written"][sampled].sum())


def test_flipped_byte_in_any_part_fails_naming_dataset_and_row(good, tmp_path):
    _, table, parts = good
    copies = damaged(tmp_path, parts, lambda f: None)
    with h5py.File(copies[1], "r") as f:  # the second part, a row far from the first pair's
        row = f["target"].shape[0] - 2
        offset = f["target"].id.get_chunk_info(row).byte_offset + 20
    with open(copies[1], "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 4]))
    report = verify_ldct(copies, str(table), SETTINGS)
    assert not report["ok"]
    # found by the checksum scan of the stored bytes (verify.check_chunks): file, dataset, row
    assert any(f"{copies[1]}:/target: " in m and f" row {row}: " in m for m in report["failures"]), report["failures"]


def test_missing_part_is_found(good):
    _, table, parts = good
    report = verify_ldct(parts[:1], str(table), SETTINGS)
    assert not report["ok"]
    assert any("patches_written" in m for m in report["failures"])


def test_selected_pair_missing_from_the_files(good):
    out, _, parts = good
    everything = pair_table(out, 0, "all")
    report = verify_ldct(parts, str(everything), SETTINGS)
    assert not report["ok"]
    assert any("missing from table 'pair'" in m for m in report["failures"])


def sampled_rows(copies, table) -> tuple[str, list[int]]:
    """The pair the verification of ``copies`` samples in the first part, and its rows there."""
    sampled = verify_ldct(copies, str(table), SETTINGS)["sample_pairs"][0]
    with h5py.File(copies[0], "r") as f:
        names = [f"{r['patient'].decode()}/{Path(r['input_file'].decode()).name}" for r in f["provenance/patch"][...]]
    assert sampled in names  # the first part holds patches of its own sampled pair
    return sampled, [i for i, n in enumerate(names) if n == sampled]


def edit_prov(f, edit):
    rows = f["provenance/patch"][...]
    edit(rows)
    f["provenance/patch"][...] = rows


def test_recorded_statistics_are_those_of_the_decoded_patches(good):
    _, _, parts = good
    for p in parts:
        with h5py.File(p, "r") as f:
            prov = f["provenance/patch"][...]
            for name in ("input", "target"):
                flat = f[name][...].reshape(len(prov), -1)  # decoded here, every patch
                assert flat.dtype == np.float16 and np.isfinite(flat).all()
                assert np.array_equal(prov[f"{name}_min"], flat.min(axis=1).astype(np.float32))
                assert np.array_equal(prov[f"{name}_max"], flat.max(axis=1).astype(np.float32))
                assert not prov[f"{name}_nonfinite"].any() and not prov[f"{name}_at_limits"].any()


def test_report_range_equals_numpy_over_every_part(good):
    _, table, parts = good
    report = verify_ldct(parts, str(table), SETTINGS)
    for name in ("input", "target"):
        values = [h5py.File(p, "r")[name][...] for p in parts]
        lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        assert report[f"{name}_value_range"] == [lo, hi] and report[f"{name}_nonfinite"] == 0


def test_nan_recorded_in_the_statistics_is_reported(good, tmp_path):
    _, table, parts = good

    def edit(f):
        edit_prov(f, lambda rows: rows["input_nonfinite"].__setitem__(3, 1))

    report = verify_ldct(damaged(tmp_path, parts, edit), str(table), SETTINGS)
    assert not report["ok"] and report["input_nonfinite"] == 1
    assert "input: 1 NaN/inf values" in report["failures"], report["failures"]


def test_nan_written_into_a_sampled_patch_is_found_by_the_sample(good, tmp_path):
    _, table, parts = good
    copies = damaged(tmp_path, parts, lambda f: None)  # the sample is keyed by the file names: learn it on the copies
    _, rows = sampled_rows(copies, table)
    with h5py.File(copies[0], "r+") as f:
        block = f["input"][rows[-1]]
        block[0, 3, 4] = np.nan
        f["input"][rows[-1]] = block  # through HDF5: a valid checksum
    report = verify_ldct(copies, str(table), SETTINGS)
    assert not report["ok"]
    assert any("not those of their stored values" in m and f"row {rows[-1]}): " in m for m in report["failures"])


def test_lowered_recorded_max_fails(good, tmp_path):
    _, table, parts = good

    def lower(rows):  # the next float16 below each recorded max, still a consistent record (max >= min)
        m = rows["target_max"].astype(np.float16)
        rows["target_max"] = np.maximum(np.nextafter(m, np.float16(-np.inf)), rows["target_min"].astype(np.float16))

    report = verify_ldct(damaged(tmp_path, parts, lambda f: edit_prov(f, lower)), str(table), SETTINGS)
    assert not report["ok"]
    assert any("recorded value statistics are not those of their stored values" in m for m in report["failures"])
    assert not any("inconsistent" in m for m in report["failures"]), report["failures"]


@pytest.mark.parametrize(
    "field, value",
    [("input_min", 1e9), ("target_max", -1e9), ("input_max", 0.1), ("target_nonfinite", -1), ("input_at_limits", 2)],
)
def test_inconsistent_statistics_fail(good, tmp_path, field, value):
    _, table, parts = good
    # 0.1 is no float16 value; 2 values at the limits of a float dtype; min > max; a negative count
    report = verify_ldct(
        damaged(tmp_path, parts, lambda f: edit_prov(f, lambda rows: rows[field].__setitem__(5, value))),
        str(table),
        SETTINGS,
    )
    assert not report["ok"]
    assert any("inconsistent" in m and " row 5:" in m for m in report["failures"]), report["failures"]


def test_files_without_statistics_fail(good, tmp_path):
    """The values are checked from the statistics every patch row records; a table without them fails."""
    from numpy.lib import recfunctions

    _, table, parts = good
    copies = damaged(tmp_path, parts, lambda f: None)
    for c in copies:
        with h5py.File(c, "r+") as f:
            old = recfunctions.drop_fields(f["provenance/patch"][...], stat_fields(), usemask=False)
            del f["provenance/patch"]
            f["provenance/patch"] = old
    report = verify_ldct(copies, str(table), SETTINGS)
    assert not report["ok"]
    assert f"table 'patch' lacks the value statistics {stat_fields()}" in report["failures"], report["failures"]


def test_altered_patch_fails_the_recomputed_sample(good, tmp_path):
    _, table, parts = good
    copies = damaged(tmp_path, parts, lambda f: None)  # the sample is keyed by the file names: learn it on the copies
    sampled = verify_ldct(copies, str(table), SETTINGS)["sample_pairs"][0]
    with h5py.File(copies[0], "r+") as f:
        names = [f"{r['patient'].decode()}/{Path(r['input_file'].decode()).name}" for r in f["provenance/patch"][...]]
        assert sampled in names  # the first part holds patches of its own sampled pair
        row = names.index(sampled)
        block = f["target"][row]
        block[0, 10, 10] += 8
        f["target"][row] = block  # rewritten through HDF5: a valid checksum, another content
    report = verify_ldct(copies, str(table), SETTINGS)
    assert not report["ok"]
    assert any("recomputation" in m for m in report["failures"])


def test_provenance_count_mismatch_is_found(good, tmp_path):
    _, table, parts = good

    def edit(f):
        rows = f["provenance/pair"][...]
        rows["patches_written"][0] += 6
        rows["patches_kept"][0] += 1
        f["provenance/pair"][...] = rows

    report = verify_ldct(damaged(tmp_path, parts, edit), str(table), SETTINGS)
    assert not report["ok"]
    assert any("table 'pair' differs" in m for m in report["failures"])


@pytest.mark.parametrize(
    "change, words",
    [
        ({"output": {**SETTINGS["output"], "dtype": "float32"}}, "expected dtype float32"),
        ({"output": {**SETTINGS["output"], "layout": "tf"}}, "expected patch shape (96, 96, 1)"),
        ({"patch": {"code": "p75"}}, "expected patch shape (1, 75, 75)"),
    ],
)
def test_settings_that_do_not_match_the_files(good, change, words):
    _, table, parts = good
    report = verify_ldct(parts, str(table), {**SETTINGS, **change})
    assert not report["ok"]
    assert any(words in m for m in report["failures"]), report["failures"]


def test_integer_values_at_the_dtype_limit_are_reported(tmp_path):
    settings = {
        "patch": {"code": "p96"},
        "air_threshold": {"enabled": True},
        "output": {"dtype": "uint16", "layout": "tf"},
    }
    table = pair_table(tmp_path, 1, "one")
    parts = run(tmp_path, settings, table)
    assert verify_ldct(parts, str(table), settings)["ok"]

    def put_limit(f):
        block = f["input"][0]
        block[5, 5, 0] = 65535
        f["input"][0] = block  # through HDF5: a valid checksum

    def put_limit_and_record_it(f):  # as the extraction records a raw 65535
        put_limit(f)
        edit_prov(f, lambda rows: (rows["input_max"].__setitem__(0, 65535), rows["input_at_limits"].__setitem__(0, 1)))

    report = verify_ldct(damaged(tmp_path, parts, put_limit_and_record_it), str(table), settings)
    assert not report["ok"] and report["input_at_dtype_limits"] == 1
    assert "input: 1 values at the limits of uint16 (clipped or wrapped?)" in report["failures"]
    assert report["dtype_worst_case_error"] == 0.0
    # the patch alone changed, its statistics not: the sample (the file's one pair) finds both lies
    report = verify_ldct(damaged(tmp_path, parts, put_limit), str(table), settings)
    assert not report["ok"] and report["input_at_dtype_limits"] == 0
    assert any("recomputation" in m for m in report["failures"])
    assert any("not those of their stored values" in m and "row 0): " in m for m in report["failures"])


def test_statistics_at_the_signed_limits_are_consistent_and_reported():
    """int16: -32768 and 32767 are limits; a row saying min -32768 must count values there, and vice versa."""
    from ctpatch.ldct.verify import _check_recorded

    dt = np.dtype([(f, "<f4" if f.endswith(("_min", "_max")) else "<i4") for f in stat_fields()])
    prov = np.zeros(3, dt)
    for name in ("input", "target"):
        prov[f"{name}_min"], prov[f"{name}_max"] = [-32768, -5, 0], [10, 32767, 7]
        prov[f"{name}_at_limits"] = [2, 1, 0]
    where = np.stack([np.zeros(3, int), np.arange(3)], axis=1)
    shapes = {"input": (1, 4, 4), "target": (1, 4, 4)}
    report = {}
    fails = _check_recorded(prov, where, ["f.h5"], np.dtype("int16"), shapes, report)
    assert fails == [
        "input: 3 values at the limits of int16 (clipped or wrapped?)",
        "target: 3 values at the limits of int16 (clipped or wrapped?)",
    ]
    assert report["input_value_range"] == [-32768.0, 32767.0] and report["input_at_dtype_limits"] == 3
    prov["target_at_limits"][0] = 0  # min at the limit, no value counted there
    prov["input_max"][2] = 7.5  # no int16 value
    fails = _check_recorded(prov, where, ["f.h5"], np.dtype("int16"), shapes, {})
    assert any(
        m.startswith("input: 1 patches whose recorded value statistics are inconsistent, e.g. f.h5 row 2:")
        for m in fails
    ), fails
    assert any(
        m.startswith("target: 1 patches whose recorded value statistics are inconsistent, e.g. f.h5 row 0:")
        for m in fails
    ), fails
