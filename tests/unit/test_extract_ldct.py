"""Tests of ctpatch.ldct.job (the LDCT mode of the MPI extraction) on real slice pairs.

Expected values are computed here independently: raw pixels with pydicom, normalization and
area downscaling written out with numpy (cumulative sums instead of overlap matrices), the
patch grid from SPEC section 2's rule, the air test from its three numbers.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
from _patchfiles import pair_patient, write_canonical
from paths import SHARED_DATA, SHARED_LDCT

from ctpatch.ldct.job import Job, read_pair_tables
from ctpatch.settings import defaults, ldct_settings, write_settings

PATIENTS = ("L096", "L143", "L192", "L286")
QUARTER, FULL = "quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"

pytestmark = pytest.mark.skipif(not SHARED_LDCT.is_dir(), reason=f"real LDCT data not found under {SHARED_DATA}")

ALL_ON = {
    "patch": {"code": "p55"},
    "ds_augment": {"enabled": True},
    "air_threshold": {"enabled": True},
    "rot_augment": {"enabled": True},
    "dose_blend": {"enabled": True},
    "blur_noise": {"enabled": True},
    "output": {"dtype": "float32"},
}


# ------------------------------------------------------------------ independent references
def raw(path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array.astype(np.float64)


def spec_starts(length, edge, padding):
    stride = edge - padding
    starts, x = [0], stride
    while x < length:
        starts.append(x - padding)
        x += stride
    return starts


def resize_axis0(a: np.ndarray, n_out: int) -> np.ndarray:
    """Area resize along axis 0 by integrating the piecewise-constant signal (cumulative sums)."""
    n_in = a.shape[0]
    c = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    x = np.arange(n_out + 1) * (n_in / n_out)
    i = np.minimum(np.floor(x).astype(int), n_in - 1)
    t = (x - i)[:, None]
    cx = c[i] * (1 - t) + c[i + 1] * t
    return (cx[1:] - cx[:-1]) / (n_in / n_out)


def area_ref(img: np.ndarray, f: float) -> np.ndarray:
    if f == 1.0:
        return img
    rows, cols = (int(n * f) for n in img.shape)  # SPEC 2b: truncated, as the reference (512 x 0.8 -> 409)
    return resize_axis0(resize_axis0(img, rows).T, cols).T


def window(img: np.ndarray, r: int, c: int, edge: int) -> np.ndarray:
    out = np.full((edge, edge), img.min())
    part = img[r : r + edge, c : c + edge]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def air_ok(p: np.ndarray) -> bool:
    return np.count_nonzero(p > 200) > 0.10 * p.size and p.mean() > 100


def blur3(img: np.ndarray) -> np.ndarray:
    p = np.pad(img.astype(np.float64), 1, mode="edge")
    return sum(p[i : i + img.shape[0], j : j + img.shape[1]] for i in range(3) for j in range(3)) / 9.0


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    paths = {}
    for p in PATIENTS:
        t = out / f"{p}.tsv"
        assert pair_patient(SHARED_LDCT / p, t, out / f"{p}.json", input_dir=QUARTER, target_dir=FULL) == 0
        paths[p] = t
    return paths


def extract(path: Path, settings: dict, pair_tables, indices=None):
    job = Job(settings, {"pairs": [str(t) for t in pair_tables]})
    units = job.units()
    write_canonical(job, path, units if indices is None else [units[i] for i in indices])
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("input", "target", "provenance/patch", "provenance/pair")}


@pytest.fixture(scope="module")
def all_on(tables, tmp_path_factory):
    """Pair 0 of L096 with every augmentation on (float32, p55)."""
    return extract(tmp_path_factory.mktemp("allon") / "s.h5", ALL_ON, [tables["L096"]], [0])


# ------------------------------------------------------------------ counts and values
def test_patch_count_matches_grid_air_and_copies(tables, all_on):
    prow = all_on["provenance/pair"][0]
    fd = raw(prow["target_file"].decode())
    edge, padding = 55, 8
    cut = kept = 0
    for f in (1.0, 0.8, 0.6):
        img = area_ref(fd, f).astype(np.float32)
        rs, cs = spec_starts(img.shape[0], edge, padding), spec_starts(img.shape[1], edge, padding)
        cut += len(rs) * len(cs)
        kept += sum(air_ok(window(img, r, c, edge)) for r in rs for c in cs)
    assert 0 < kept < cut
    n = all_on["input"].shape[0]
    assert n == kept * 3 * 2
    assert (int(prow["patches_cut"]), int(prow["patches_kept"]), int(prow["patches_written"])) == (cut, kept, n)
    assert all_on["target"].shape == all_on["input"].shape == (n, 1, 55, 55)
    assert len(all_on["provenance/patch"]) == n


def test_patches_equal_normalized_slices_at_grid_corners(tables, tmp_path):
    settings = {
        "patch": {"code": "p55"},
        "normalization": "unity_wrt_ld",
        "ds_augment": {"enabled": True},
        "output": {"dtype": "float32"},
    }
    out = extract(tmp_path / "s.h5", settings, [tables["L143"]], [1])
    prow = out["provenance/pair"][0]
    ld, fd = raw(prow["input_file"].decode()), raw(prow["target_file"].decode())
    lo, span = ld.min(), ld.max() - ld.min()
    ld_n, fd_n = (ld - lo) / span, (fd - lo) / span
    prov = out["provenance/patch"]
    for f in (1.0, 0.8, 0.6):
        a, b = area_ref(ld_n, f), area_ref(fd_n, f)
        rows = np.flatnonzero(prov["downscale"] == f)
        expect = {(r, c) for r in spec_starts(a.shape[0], 55, 8) for c in spec_starts(a.shape[1], 55, 8)}
        assert {tuple(v) for v in prov["corner"][rows]} == expect
        assert np.all(prov["copy_shape"][rows] == a.shape)
        for i in rows:
            r, c = (int(v) for v in prov["corner"][i])
            np.testing.assert_allclose(out["input"][i, 0], window(a, r, c, 55), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out["target"][i, 0], window(b, r, c, 55), rtol=1e-5, atol=1e-6)
    assert len(prov) == prow["patches_written"] == prow["patches_cut"]


def test_uint16_tf_layout_holds_the_raw_values_exactly(tables, tmp_path):
    settings = {
        "patch": {"code": "p96"},
        "rot_augment": {"enabled": True},
        "output": {"dtype": "uint16", "layout": "tf"},
    }
    out = extract(tmp_path / "s.h5", settings, [tables["L192"]], [0])
    prow = out["provenance/pair"][0]
    ld, fd = raw(prow["input_file"].decode()), raw(prow["target_file"].decode())
    assert out["input"].dtype == np.uint16 and out["input"].shape[1:] == (96, 96, 1)
    prov = out["provenance/patch"]
    plain = np.flatnonzero((prov["rot_k"] == 0) & (prov["flip"] == b""))
    assert len(plain) == 49  # 7 x 7 grid of p96 on 512 x 512
    for i in plain:
        r, c = (int(v) for v in prov["corner"][i])
        assert np.array_equal(out["input"][i, ..., 0], window(ld, r, c, 96).astype(np.uint16))
        assert np.array_equal(out["target"][i, ..., 0], window(fd, r, c, 96).astype(np.uint16))


# ------------------------------------------------------------------ augmentations
def test_every_patch_records_the_real_pixel_spacing_of_its_copy(all_on):
    """Issue 22: the spacing is in the file (a reader needs no DICOM); a downscaled copy's pixels cover the
    slice's field of view: PixelSpacing x 512 / 409 for the 0.8 copy, not PixelSpacing / 0.8."""
    prov, pair = all_on["provenance/patch"], all_on["provenance/pair"][0]
    header = pydicom.dcmread(pair["input_file"].decode(), stop_before_pixels=True)
    spacing = np.array([float(v) for v in header.PixelSpacing])
    full = np.array([int(header.Rows), int(header.Columns)])
    assert np.array_equal(pair["pixel_spacing"], spacing) and pair["slice_thickness"] == float(header.SliceThickness)
    assert np.all(prov["slice_thickness"] == float(header.SliceThickness))
    for factor in (1.0, 0.8, 0.6):
        rows = prov[prov["downscale"] == factor]
        assert len(rows), factor
        copy = np.array([int(v * factor) for v in full])  # the copy's shape (area resize to int(n * f))
        assert np.all(rows["copy_shape"] == copy)
        assert np.allclose(rows["spacing"], spacing * full / copy, rtol=1e-12, atol=0)
        if factor != 1.0:
            assert not np.allclose(rows["spacing"], spacing / factor, rtol=1e-6, atol=0)


def test_augmentation_provenance_is_consistent(all_on):
    prov, inp, tgt = all_on["provenance/patch"], all_on["input"][:, 0], all_on["target"][:, 0]
    n = len(prov)
    assert np.array_equal(prov["patch_index"], np.arange(n))
    f = float(all_on["provenance/pair"][0]["blend"])
    assert 0.5 <= f <= 1.2
    # blur and noise: disjoint shares of round(0.4 n) each
    assert int(prov["blur"].sum()) == math.floor(0.4 * n + 0.5) == int(prov["noise"].sum())
    assert not np.any(prov["blur"] & prov["noise"])
    clean = ~(prov["blur"] | prov["noise"])
    for g in range(0, n, 6):
        rows = prov[g : g + 6]
        assert len({tuple(v) for v in rows["corner"]}) == 1 and len(set(rows["downscale"])) == 1
        k = int(rows["rot_k"][1])
        fl = rows["flip"][2].decode()
        assert rows["rot_k"].tolist() == [0, k, 0, 0, k, 0] and 1 <= k <= 3
        assert rows["flip"].tolist() == [b"", b"", fl.encode(), b"", b"", fl.encode()] and fl in ("lr", "ud")
        assert np.all(np.isnan(rows["blend"][:3])) and np.all(rows["blend"][3:] == f)
        t0 = tgt[g]
        assert np.array_equal(tgt[g + 1], np.rot90(t0, k))
        assert np.array_equal(tgt[g + 2], t0[:, ::-1] if fl == "lr" else t0[::-1, :])
        for i in range(3):
            a, b = g + i, g + 3 + i
            shift = tgt[b] - tgt[a]
            assert np.ptp(shift) < 1e-3 and shift.min() >= 0  # the same constant shift for the whole patch
            if clean[a] and clean[b]:
                np.testing.assert_allclose(inp[b] - tgt[b], f * (inp[a] - tgt[a]), atol=2e-3)
                assert inp[b].min() >= 0
        if clean[g] and prov["blur"][g + 1]:
            np.testing.assert_allclose(inp[g + 1], blur3(np.rot90(inp[g], k)), rtol=1e-5, atol=1e-3)
        if clean[g] and prov["noise"][g + 1]:
            pre = np.rot90(inp[g], k).astype(np.float64)
            assert np.linalg.norm(inp[g + 1] - pre) / np.linalg.norm(pre) == pytest.approx(0.01, rel=1e-3)
    # rot_augment.draw per_copy (default, the reference): one k and one flip for all patches of a copy
    for factor in (1.0, 0.8, 0.6):
        of_copy = prov[prov["downscale"] == factor]
        assert len(of_copy) > 0
        assert len(set(of_copy["rot_k"][of_copy["rot_k"] > 0].tolist())) == 1
        assert len(set(of_copy["flip"][of_copy["flip"] != b""].tolist())) == 1


def test_per_patch_draws_turn_patches_of_one_copy_differently(tables, tmp_path):
    settings = {**ALL_ON, "rot_augment": {"enabled": True, "draw": "per_patch"}, "blur_noise": {"enabled": False}}
    out = extract(tmp_path / "p.h5", settings, [tables["L096"]], [0])
    prov = out["provenance/patch"]
    full = prov[prov["downscale"] == 1.0]
    assert len(set(full["rot_k"][full["rot_k"] > 0].tolist())) == 3
    assert set(full["flip"][full["flip"] != b""].tolist()) == {b"lr", b"ud"}
    tgt = out["target"][:, 0]
    for g in range(0, len(prov), 6):  # still the same turn for the patch and its blended copy
        k = int(prov["rot_k"][g + 1])
        assert prov["rot_k"][g + 4] == k and prov["flip"][g + 5] == prov["flip"][g + 2]
        assert np.array_equal(tgt[g + 1], np.rot90(tgt[g], k))


def test_same_seed_same_patches_other_seed_other_augmentations(tables, tmp_path, all_on):
    again = extract(tmp_path / "a.h5", ALL_ON, [tables["L096"]], [0])
    for k in all_on:
        assert all_on[k].tobytes() == again[k].tobytes()
    other = extract(tmp_path / "b.h5", {**ALL_ON, "seed": 1}, [tables["L096"]], [0])
    p0, p1 = all_on["provenance/patch"], other["provenance/patch"]
    assert len(p0) == len(p1)  # the grid and the air test do not depend on the seed
    assert not np.array_equal(p0["rot_k"], p1["rot_k"]) or not np.array_equal(p0["flip"], p1["flip"])
    assert p0["blend"][3] != p1["blend"][3]
    assert not np.array_equal(p0["blur"], p1["blur"])
    plain = (
        (p0["rot_k"] == 0)
        & (p0["flip"] == b"")
        & np.isnan(p0["blend"])
        & ~p0["blur"]
        & ~p0["noise"]
        & ~p1["blur"]
        & ~p1["noise"]
    )
    assert plain.any()
    assert np.array_equal(all_on["input"][plain], other["input"][plain])


def test_units_over_several_tables(tables, tmp_path):
    t = tmp_path / "L096.tsv"
    assert (
        pair_patient(
            SHARED_LDCT / "L096", t, tmp_path / "r.json", seed=3, input_dir=QUARTER, target_dir=FULL, random_n=2
        )
        == 0
    )
    job = Job({}, {"pairs": [str(t), str(tables["L143"])]})
    units = job.units()
    assert [u.index for u in units] == list(range(6))
    assert [u.key.split("/")[0] for u in units] == ["L096"] * 2 + ["L143"] * 4
    assert all(u.cost == 1.0 for u in units)
    table = read_pair_tables([t, tables["L143"]])
    assert table["selected"].all() and table["pair_index"].tolist() == list(range(6))
    with pytest.raises(ValueError, match="more than once"):
        read_pair_tables([tables["L143"], tables["L143"]])


# ------------------------------------------------------------------ settings
def test_settings_default_to_the_reference_values():
    s = ldct_settings({})
    assert s["patch"] == {"code": "p55", "edge": None, "padding": None, "last": "fill"}
    assert s["normalization"] == "none" and s["output"]["dtype"] == "float16" and s["output"]["layout"] == "torch"
    # count: the judged patch's pixels; the same count as the reference's in plain mode (int(0.1 x 55²) = 302),
    # its super-resolution count is `count: reference` (README, differences)
    assert s["air_threshold"] == {"enabled": False, "value": 200.0, "fraction": 0.10, "mean": 100.0, "count": "target"}
    assert list(s["ds_augment"]["factors"]) == [0.8, 0.6]
    assert s["dose_blend"]["low"] == 0.5 and s["dose_blend"]["high"] == 1.2
    assert s["normalization_constants"] == {"dicom_scale": 4096.0, "max_value": 4094.0}
    assert s["output"]["nsplit"] == 1 and s["output"]["shuffle"] is False
    assert defaults("pairs", "ldct")["random_n"] == 0  # the pairs' scope: every pair
    assert not any(s[k]["enabled"] for k in ("ds_augment", "air_threshold", "rot_augment", "dose_blend", "blur_noise"))
    assert s["seed"] == 0 and s["mode"] == "ldct"


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"output": {"dtype": "int16"}, "normalization": "dicom_unity"}, "output.dtype"),
        ({"output": {"dtype": "uint16"}, "ds_augment": {"enabled": True}}, "output.dtype"),
        ({"output": {"dtype": "uint16"}, "dose_blend": {"enabled": True}}, "output.dtype"),
        ({"output": {"dtype": "float64"}}, "output.dtype"),
        ({"patch": {"code": "p99"}}, "patch.code"),
        ({"patch": {"code": None, "edge": 10, "padding": 10}}, "patch"),
        ({"patch": {"size": 3}}, "patch"),
        ({"normalization": "zscore"}, "normalization"),
        ({"blur_noise": {"blur_share": 0.7, "noise_share": 0.5}}, "blur_noise"),
        ({"dose_blend": {"low": 2.0, "high": 1.0}}, "dose_blend"),
        ({"ds_augment": {"factors": [0.8, 1.5]}}, "ds_augment.factors"),
        ({"output": {"layout": "nchw"}}, "output.layout"),
        ({"rot_augment": {"draw": "per_slice"}}, "rot_augment.draw"),
    ],
)
def test_settings_reject_naming_the_key(settings, key):
    with pytest.raises(ValueError, match=f"(^|: )ldct\\.{key.replace('.', '[.]')}"):
        ldct_settings(settings)


def test_recorded_statistics_are_those_of_the_stored_patches(all_on):
    prov = all_on["provenance/patch"]
    for name in ("input", "target"):
        flat = all_on[name].reshape(len(prov), -1)  # the stored (float32) values, reduced here
        assert np.array_equal(prov[f"{name}_min"], flat.min(axis=1))
        assert np.array_equal(prov[f"{name}_max"], flat.max(axis=1))
        assert np.array_equal(prov[f"{name}_nonfinite"], np.count_nonzero(~np.isfinite(flat), axis=1))
        assert not prov[f"{name}_at_limits"].any()


@pytest.mark.parametrize("dtype", ["float16", "float32", "int16", "uint16"])
def test_statistics_taken_before_the_cast_are_those_of_the_cast_patch(dtype):
    """The job takes min and max of the float32 patch and casts them; numpy on the cast patch must agree,
    also where float16 rounds (values between its steps, ties) and at the integer limits."""
    import pandas as pd

    job = Job({"output": {"dtype": dtype}}, {"pairs": pd.DataFrame(columns=["patient", "input_path", "target_path"])})
    rng = np.random.default_rng(5)
    row = {"input_path": "a", "target_path": "b"}
    limits = {"int16": [-32768, 32767], "uint16": [65535]}.get(dtype, [])
    for k in range(200):
        if dtype.startswith("float"):
            patch = (rng.random((9, 9)) * 4000 - 1000).astype(np.float32)
            patch.flat[0] = np.float32(2049.0 + k % 2 + 0.5 * (k % 3))  # float16 steps of 2 above 2048, ties
        else:
            info = np.iinfo(dtype)
            patch = rng.integers(info.min, int(info.max) + 1, (9, 9)).astype(np.float32)
            patch.flat[: k % 3] = limits[k % len(limits)]
        stored = patch.astype(dtype)
        lo, hi, bad, at = job._check_values(patch, "input", row)
        assert (lo, hi) == (float(stored.min()), float(stored.max()))
        assert bad == 0 and at == sum(int((stored == v).sum()) for v in limits)
        assert (at > 0) == (k % 3 > 0 and bool(limits))


def test_integer_dtype_accepted_when_values_stay_integers():
    s = ldct_settings(
        {"output": {"dtype": "uint16"}, "rot_augment": {"enabled": True}, "air_threshold": {"enabled": True}}
    )
    assert s["output"]["dtype"] == "uint16"


# ------------------------------------------------------------------ MPI
def _mpi_run(ranks: int, out: Path, settings: dict, pair_tables) -> list[Path]:
    # the ranks share the cores, so no BLAS threads on top of them
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    settings_file = out / "patches.settings.json"
    write_settings(ldct_settings(settings), settings_file, "patches")
    parts = [out / f"run.part{i}.h5" for i in range(settings["output"].get("nsplit", 1))]
    cmd = [
        "mpiexec",
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "ctpatch.ldct.extract",
        "--ranks",
        str(ranks),
        "--out",
        *map(str, parts),
        "--settings-file",
        str(settings_file),
        "--pairs",
        *map(str, pair_tables),
        "--group",  # every patient in one file
        "run",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return parts


@pytest.mark.mpi
@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec not found")
def test_mpi_runs_byte_identical_for_1_2_3_ranks(tables, tmp_path):
    """Whole files (sha256), shuffled and split in two parts (which needs the counting pass)."""
    import hashlib

    from ctpatch.ldct.verify import verify_ldct

    settings = {**ALL_ON, "output": {"dtype": "float16", "shuffle": True, "nsplit": 2}, "seed": 7}
    pair_tables = [tables[p] for p in PATIENTS]
    contents = {}
    for ranks in (1, 2, 3):
        out = tmp_path / f"r{ranks}"
        t = time.perf_counter()
        parts = _mpi_run(ranks, out, settings, pair_tables)
        print(f"{ranks} ranks: {time.perf_counter() - t:.1f} s")
        contents[ranks] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in parts]
        assert not list(out.glob(".*"))
        if ranks == 3:
            provs = []
            for p in parts:
                with h5py.File(p, "r") as f:
                    provs.append(f["provenance/patch"][...])
                    written = int(f["provenance/pair"]["patches_written"].sum())
            prov = np.concatenate(provs)
            assert sorted(set(prov["pair_index"].tolist())) == list(range(16))
            names = {(r["patient"].decode(), Path(r["input_file"].decode()).name) for r in prov}
            assert len(names) == 16
            assert {p for p, _ in names} == set(PATIENTS)
            assert len(prov) == written and abs(len(provs[0]) - len(provs[1])) <= 1
            assert not np.array_equal(prov["pair_index"], np.sort(prov["pair_index"]))  # shuffled
    assert contents[1] == contents[2] == contents[3]
    report = verify_ldct([str(p) for p in parts], [str(t) for t in pair_tables], settings)
    assert report["ok"], report["failures"]
    assert report["selected_pairs"] == 16 and report["dtype_worst_case_error"] == 1.0


# ------------------------------------------------------------------ super-resolution (SPEC 2c)
def block3(img: np.ndarray) -> np.ndarray:
    """Area downscaling by 3 written out: the mean of each 3 x 3 block (sides multiples of 3)."""
    r, c = img.shape[0] // 3, img.shape[1] // 3
    return sum(img[a::3, b::3][:r, :c] for a in range(3) for b in range(3)) / 9.0


SR = {
    "patch": {"code": "p55"},
    "super_resolution": {"enabled": True},
    "ds_augment": {"enabled": True},
    "normalization": "unity_wrt_ld",
    "output": {"dtype": "float32"},
}


def test_sr_pairs_equal_an_independent_computation(tables, tmp_path):
    out = extract(tmp_path / "sr.h5", SR, [tables["L286"]], [2])
    prow = out["provenance/pair"][0]
    ld, fd = raw(prow["input_file"].decode()), raw(prow["target_file"].decode())
    lo, span = ld.min(), ld.max() - ld.min()
    ld_n, fd_n = (ld - lo) / span, (fd - lo) / span
    prov = out["provenance/patch"]
    assert out["input"].shape[1:] == (1, 18, 18) and out["target"].shape[1:] == (1, 55, 55)  # int(55 / 3) = 18
    cut = 0
    for f in (1.0, 0.8, 0.6):
        a, b = area_ref(ld_n, f), area_ref(fd_n, f)
        rows, cols = (n - n % 3 for n in a.shape)  # modcrop
        lr_img, hr_img = block3(a[:rows, :cols]), b[:rows, :cols]
        sel = np.flatnonzero(prov["downscale"] == f)
        expect = [(r, c) for r in spec_starts(lr_img.shape[0], 18, 8) for c in spec_starts(lr_img.shape[1], 18, 8)]
        cut += len(expect)
        assert [tuple(v) for v in prov["corner"][sel]] == expect
        assert np.all(prov["copy_shape"][sel] == lr_img.shape) and np.all(prov["hr_copy_shape"][sel] == hr_img.shape)
        assert np.array_equal(prov["hr_corner"][sel], prov["corner"][sel] * 3)
        for i in sel:
            r, c = (int(v) for v in prov["corner"][i])
            np.testing.assert_allclose(out["input"][i, 0], window(lr_img, r, c, 18), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out["target"][i, 0], window(hr_img, 3 * r, 3 * c, 55), rtol=1e-5, atol=1e-6)
            R, C = (int(v) for v in prov["hr_corner"][i])
            if R + 54 <= hr_img.shape[0] and C + 54 <= hr_img.shape[1]:
                # footprint relation: the input is the low-dose image over the target's region (HR
                # corner, 3 x 18 pixels) area-downscaled by 3; the target covers that region (+1 pixel)
                np.testing.assert_allclose(block3(a[R : R + 54, C : C + 54]), out["input"][i, 0], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(
                    out["target"][i, 0, :54, :54], b[R : R + 54, C : C + 54], rtol=1e-5, atol=1e-6
                )
    assert int(prow["patches_cut"]) == cut == len(prov)


def test_sr_exact_footprint_and_scale_one_is_plain_mode(tables, tmp_path):
    exact = extract(
        tmp_path / "e.h5", {**SR, "super_resolution": {"enabled": True, "footprint": "exact"}}, [tables["L096"]], [0]
    )
    assert exact["target"].shape[1:] == (1, 54, 54)
    plain_settings = {k: v for k, v in SR.items() if k != "super_resolution"}
    plain = extract(tmp_path / "p.h5", plain_settings, [tables["L096"]], [0])
    one = extract(tmp_path / "1.h5", {**SR, "super_resolution": {"enabled": True, "scale": 1}}, [tables["L096"]], [0])
    for k in ("input", "target"):
        assert plain[k].tobytes() == one[k].tobytes()
    assert np.array_equal(one["provenance/patch"]["hr_corner"], plain["provenance/patch"]["corner"])


def test_sr_with_every_option_verifies(tables, tmp_path):
    from ctpatch.ldct.verify import verify_ldct

    settings = {
        **ALL_ON,
        "super_resolution": {"enabled": True},
        "normalization": "max_val_wrt_ld",
        "output": {"dtype": "float16", "layout": "tf"},
    }
    path = tmp_path / "all.h5"
    out = extract(path, settings, [tables["L143"]], [0])
    prov = out["provenance/patch"]
    assert out["input"].shape[1:] == (18, 18, 1) and out["target"].shape[1:] == (55, 55, 1)
    assert len(prov) == int(out["provenance/pair"][0]["patches_kept"]) * 6
    # rotation and flip turn LR and HR alike; the air threshold was judged on the raw HR target
    for g in range(0, len(prov), 6):
        k = int(prov["rot_k"][g + 1])
        assert np.array_equal(out["target"][g + 1, ..., 0], np.rot90(out["target"][g, ..., 0], k))
        if not (prov["blur"][g + 1] or prov["noise"][g + 1] or prov["blur"][g] or prov["noise"][g]):
            assert np.array_equal(out["input"][g + 1, ..., 0], np.rot90(out["input"][g, ..., 0], k))
    report = verify_ldct(
        [str(path)], [str(tables["L143"])], {**settings}, sample=0
    )  # the file holds pair 0 only: counts of the other pairs would fail
    assert report["input_patch_shape"] == [18, 18, 1]
    from ctpatch.readers import load_all  # ctpatch's reader takes input and target of different sizes

    batch = load_all(str(path), "patch", workers=0, layout="torch")
    assert batch.images.shape[1:] == (1, 18, 18) and batch.labels.shape[1:] == (1, 55, 55)
    assert np.array_equal(batch.images[:, 0], out["input"][..., 0])
    assert not [m for m in report["failures"] if "missing from table 'pair'" not in m], report["failures"]


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"super_resolution": {"enabled": True}, "patch": {"code": "p12"}}, "super_resolution.scale"),
        ({"patch": {"code": "p54"}}, "patch.code"),
        ({"super_resolution": {"enabled": True}, "output": {"dtype": "uint16"}}, "output.dtype"),
        ({"super_resolution": {"enabled": True, "footprint": "tight"}}, "super_resolution.footprint"),
        ({"super_resolution": {"enabled": True, "scale": 0}}, "super_resolution.scale"),
    ],
)
def test_sr_settings_rejected_naming_the_key(settings, key):
    with pytest.raises(ValueError, match=f"(^|: )ldct\\.{key.replace('.', '[.]')}"):
        ldct_settings(settings)


def test_sr_reference_air_count_is_the_reference_programs(tables, tmp_path):
    """air_threshold.count reference: a patch is kept when more than int(0.1 x 18²) = 32 pixels of its 55² raw
    target patch, cut from the raw target before the crop to a multiple of 3, exceed 200 (and its mean 100):
    counted here with numpy, pair by pair; it keeps at least the patches the target-share rule keeps."""
    base = {"patch": {"code": "p55"}, "super_resolution": {"enabled": True}, "output": {"dtype": "float32"}}
    ours = {**base, "air_threshold": {"enabled": True}}
    ref = {**base, "air_threshold": {"enabled": True, "count": "reference"}}
    kept_ours = kept_ref = 0
    for name in ("L096", "L143"):
        a = extract(tmp_path / f"{name}-ours.h5", ours, [tables[name]])["provenance/pair"]
        b = extract(tmp_path / f"{name}-ref.h5", ref, [tables[name]])["provenance/pair"]
        kept_ours += int(a["patches_kept"].sum())
        kept_ref += int(b["patches_kept"].sum())
        for row in b:
            fd = raw(row["target_file"].decode())
            ld = raw(row["input_file"].decode())
            lr = (
                ld[: ld.shape[0] // 3 * 3, : ld.shape[1] // 3 * 3].reshape(ld.shape[0] // 3, 3, -1, 3).mean(axis=(1, 3))
            )
            keep = 0
            for r in spec_starts(lr.shape[0], 18, 8):
                for c in spec_starts(lr.shape[1], 18, 8):
                    patch = np.full((55, 55), fd.min())
                    box = fd[r * 3 : r * 3 + 55, c * 3 : c * 3 + 55]
                    patch[: box.shape[0], : box.shape[1]] = box
                    keep += int(np.count_nonzero(patch > 200) > 32 and patch.mean() > 100)
            assert int(row["patches_kept"]) == keep, row["input_file"]
    assert kept_ref >= kept_ours > 0
