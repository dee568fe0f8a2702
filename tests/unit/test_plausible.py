"""Tests of ctpatch.luna16.plausible and of its use in ctpatch.luna16.convert: a scan whose values are not CT stops.

The figures are compared with counts done here by hand on small arrays; the conversion tests use a
demo scan (LUNA-like: air, body, lungs, -3024 outside the field of view) and the same bytes under a
header that says MET_USHORT (the case the issue found: 76 % of the voxels clipped at the top).
"""

from __future__ import annotations

import numpy as np
import pytest
from demos import TINY_DEMO, TINY_SEED

from ctpatch.io.mhd import ScanError
from ctpatch.luna16.convert import convert, main
from ctpatch.luna16.demo import write_dataset
from ctpatch.luna16.plausible import check, hu_figures, problems
from ctpatch.settings import defaults, write_settings
from ctpatch.settings.types import Plausibility, build


def plausibility(**over) -> Plausibility:
    """``luna16.plausibility`` at the schema's defaults, with ``over``."""
    return build(Plausibility, {**defaults("run")["plausibility"], **over})


@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("plausible")
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    return sorted((root / "subset0").glob("*.mhd"))[0]


def test_figures_count_by_hand():
    hu = np.array([[-3024, -1000, -999], [-600, -400, 0], [399, 400, 3000]], dtype=np.int16)
    f = hu_figures(hu, -1000.0, 400.0, -500.0)
    assert f["air_share"] == pytest.approx(4 / 9)  # -3024 -1000 -999 -600
    assert f["share_at_hu_min"] == pytest.approx(2 / 9)  # -3024 -1000
    assert f["share_at_hu_max"] == pytest.approx(2 / 9)  # 400 3000
    assert (f["min"], f["max"], f["nan"]) == (-3024.0, 3000.0, 0)
    assert problems(f, -1000.0, 400.0, plausibility()) == []


@pytest.mark.parametrize(
    "hu, words",
    [
        (np.full(100, 40, np.int16), "no air: 0.00%"),
        (np.r_[np.full(70, 500), np.full(30, -1000)].astype(np.int16), "70.00% of voxels at or above the window top"),
        (np.r_[np.full(99, -1000), [0]].astype(np.int16), "99.00% of voxels at or below the window bottom"),
        (np.r_[np.full(50, -1000), [40000]].astype(np.float32), "outside hu_range"),
        (np.r_[np.full(50, -1000), [np.nan]].astype(np.float32), "1 voxels are NaN"),
    ],
)
def test_each_problem_is_named(hu, words):
    figures, found = check(hu, -1000.0, 400.0, plausibility())
    assert any(words in p for p in found), found
    assert check(hu, -1000.0, 400.0, plausibility(enabled=False))[1] == []


def test_thresholds_are_settings():
    hu = np.r_[np.full(70, 500), np.full(30, -1000)].astype(np.int16)
    assert check(hu, -1000.0, 400.0, plausibility(max_share_at_hu_max=0.7))[1] == []
    assert check(hu, -1000.0, 400.0, plausibility(max_share_at_hu_max=0.69))[1]


def test_demo_scan_is_plausible_and_figures_recorded(demo_scan):
    _, sidecar = convert(demo_scan, defaults("convert"))
    f = sidecar["plausibility"]
    assert f["air_share"] > 0.3 and f["share_at_hu_max"] < 0.05 and f["min"] == -3024.0


def test_signed_scan_under_unsigned_header_fails_with_file_and_figures(demo_scan, tmp_path, capsys):
    mhd = tmp_path / demo_scan.name
    raw = demo_scan.with_suffix(".raw")
    mhd.write_text(
        demo_scan.read_text()
        .replace("MET_SHORT", "MET_USHORT")
        .replace(f"ElementDataFile = {raw.name}", f"ElementDataFile = {raw}")
    )
    with pytest.raises(ScanError, match="implausible CT values") as err:
        convert(mhd, defaults("convert"))
    msg = str(err.value)
    assert msg.startswith(str(mhd)) and "MET_USHORT" in msg and "no air" in msg and "outside hu_range" in msg
    # the expected share at the top: every int16 value below 0 becomes >= 32768 as uint16, plus those >= 400
    v = np.fromfile(raw, dtype="<i2")
    top = np.count_nonzero(v.view("<u2") >= 400) / v.size
    assert f"{top:.2%} of voxels at or above" in msg
    out = tmp_path / "out"
    code = main(["--scan", str(mhd), "--npy-out", str(out / "x.npy"), "--json-out", str(out / "x.json")])
    first = capsys.readouterr().err.splitlines()[0]
    assert code == 1 and first.startswith(f"error: {mhd}") and not out.exists()
    relaxed = tmp_path / "run.json"  # the plausibility check is a policy of scope 'run'
    off = {**defaults("run")["plausibility"], "enabled": False}
    write_settings({**defaults("run").to_dict(), "plausibility": off}, relaxed, "run")
    assert (
        main(
            [
                "--scan",
                str(mhd),
                "--npy-out",
                str(out / "x.npy"),
                "--json-out",
                str(out / "x.json"),
                "--run-settings-file",
                str(relaxed),
            ]
        )
        == 0
    )
