"""Tests of ctpatch.io.dicom on the real LDCT slices in /work/shared/data (never copied into
the repository; modified copies live in pytest's tmp_path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from paths import SHARED_DATA, SHARED_LDCT

from ctpatch.io.dicom import SliceHeader, pair_slices, read_header, read_pixels

LONG = SHARED_DATA / "ldct_longnames"
QUARTER, FULL = "quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"

pytestmark = pytest.mark.skipif(
    not (SHARED_LDCT.is_dir() and LONG.is_dir()),
    reason=f"real LDCT DICOM data not found under {SHARED_DATA}",
)


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.IMA"))


@pytest.fixture
def patient(tmp_path):
    """A writable copy of patient L096: (input folder, target folder) with 4 slices each."""
    out = []
    for sub in (QUARTER, FULL):
        dst = tmp_path / "L096" / sub
        dst.mkdir(parents=True)
        for f in files(SHARED_LDCT / "L096" / sub):
            shutil.copyfile(f, dst / f.name)
        out.append(dst)
    return out[0], out[1]


def z_of(path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


# --- headers and pixels ------------------------------------------------------------------


def test_read_header_fields():
    path = SHARED_LDCT / "L096" / FULL / "000061.IMA"
    h = read_header(path)
    assert isinstance(h, SliceHeader)
    assert (h.rows, h.cols) == (512, 512)
    assert h.slope == 1.0 and h.intercept == -1024.0  # data README
    assert len(h.pixel_spacing) == 2 and all(s > 0 for s in h.pixel_spacing)
    assert h.position is not None and len(h.position) == 3
    assert h.z == pytest.approx(z_of(path))
    assert isinstance(h.instance, int)


def test_read_header_rejects_non_dicom_file(tmp_path):
    junk = tmp_path / "notes.IMA"
    junk.write_text("not a DICOM file\n")
    with pytest.raises(ValueError, match="notes.IMA"):
        read_header(junk)


def test_read_header_rejects_missing_file(tmp_path):
    with pytest.raises(ValueError, match="absent.IMA"):
        read_header(tmp_path / "absent.IMA")


def test_read_pixels_are_raw_stored_values():
    path = SHARED_LDCT / "L096" / QUARTER / "000061.IMA"
    pixels = read_pixels(path)
    assert pixels.dtype == np.float32 and pixels.shape == (512, 512)
    # independent decode: the uncompressed little-endian uint16 PixelData bytes
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<u2").reshape(512, 512)
    np.testing.assert_array_equal(pixels, raw.astype(np.float32))
    assert pixels.min() >= 0  # no -1024 intercept applied


# --- pairing of real data ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["L143", "L192"])
def test_longnames_pair_by_position_although_names_differ(name):
    inputs = files(LONG / name / "quarter_3mm")
    targets = files(LONG / name / "full_3mm")
    pairs, problems = pair_slices(inputs, targets)
    assert problems == []
    assert len(pairs) == len(inputs) == 7
    for p in pairs:
        a, b = Path(p.input.path), Path(p.target.path)
        assert a.name != b.name
        assert "_QD_" in a.name and "_FD_" in b.name
        # the challenge's names carry the slice number in the 4th dot-separated field
        assert a.name.split(".")[3] == b.name.split(".")[3]
        assert p.input.instance == p.target.instance == p.instance
        assert z_of(a) == pytest.approx(z_of(b), abs=1e-3)
        assert p.position_z == pytest.approx(z_of(a))
    zs = [p.position_z for p in pairs]
    assert zs == sorted(zs)


@pytest.mark.parametrize("name", ["L096", "L143", "L192", "L286"])
@pytest.mark.parametrize("by", ["position", "name"])
def test_plain_set_pairs_same_names(name, by):
    pairs, problems = pair_slices(files(SHARED_LDCT / name / QUARTER), files(SHARED_LDCT / name / FULL), by=by)
    assert problems == []
    assert len(pairs) == 4
    assert all(Path(p.input.path).name == Path(p.target.path).name for p in pairs)
    zs = [z_of(p.input.path) for p in pairs]
    assert zs == sorted(zs)


def test_shuffled_path_lists_give_the_same_pairs():
    inputs = files(SHARED_LDCT / "L143" / QUARTER)
    targets = files(SHARED_LDCT / "L143" / FULL)
    a, _ = pair_slices(inputs, targets)
    b, _ = pair_slices(inputs[::-1], targets[1:] + targets[:1])
    assert [(p.input.path, p.target.path) for p in a] == [(p.input.path, p.target.path) for p in b]


# --- failure modes -----------------------------------------------------------------------


def test_removed_target_slice_names_the_orphan(patient):
    inp, tgt = patient
    (tgt / "000078.IMA").unlink()
    with pytest.raises(ValueError) as info:
        pair_slices(files(inp), files(tgt))
    msg = str(info.value)
    assert str(inp / "000078.IMA") in msg and "no partner" in msg
    assert "count mismatch: 4 input slices" in msg and str(tgt) in msg


def test_removed_target_slice_dropped_with_message(patient):
    inp, tgt = patient
    (tgt / "000078.IMA").unlink()
    pairs, problems = pair_slices(files(inp), files(tgt), on_error="drop")
    kept = sorted(Path(p.input.path).name for p in pairs)
    assert kept == ["000052.IMA", "000061.IMA", "000114.IMA"]
    assert any(str(inp / "000078.IMA") in m and "no partner" in m for m in problems)


def test_removed_slice_with_name_pairing_reports_misaligned_positions(patient):
    inp, tgt = patient
    (tgt / "000052.IMA").unlink()
    with pytest.raises(ValueError) as info:
        pair_slices(files(inp), files(tgt), by="name")
    msg = str(info.value)
    # name order now pairs 000052 with 000061 etc.: the positions disagree
    assert f"input slice {inp / '000052.IMA'} and target slice {tgt / '000061.IMA'} differ" in msg
    assert "slice position z" in msg


def test_duplicated_slice_names_both_files(patient):
    inp, tgt = patient
    shutil.copyfile(tgt / "000061.IMA", tgt / "000061_copy.IMA")
    with pytest.raises(ValueError) as info:
        pair_slices(files(inp), files(tgt))
    msg = str(info.value)
    assert "duplicate slice" in msg and "target folder" in msg
    assert str(tgt / "000061.IMA") in msg and str(tgt / "000061_copy.IMA") in msg


def test_duplicated_slice_dropped_with_message(patient):
    inp, tgt = patient
    shutil.copyfile(tgt / "000061.IMA", tgt / "000061_copy.IMA")
    pairs, problems = pair_slices(files(inp), files(tgt), on_error="drop")
    kept = sorted(Path(p.input.path).name for p in pairs)
    assert kept == ["000052.IMA", "000078.IMA", "000114.IMA"]
    assert any("duplicate slice" in m and "000061_copy.IMA" in m for m in problems)
    # the input partner at that position is dropped too, and says so
    assert any(str(inp / "000061.IMA") in m and "dropped" in m for m in problems)


MISMATCHES = {
    "shape": ({"Rows": 256, "Columns": 256}, "rows x cols 512x512 vs 256x256"),
    "spacing": ({"PixelSpacing": [0.9, 0.9]}, "pixel spacing"),
    "slope": ({"RescaleSlope": 2}, "rescale slope"),
    "intercept": ({"RescaleIntercept": -1000}, "rescale intercept -1024.0 vs -1000.0"),
}


def _write_modified(path: Path, changes: dict) -> None:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    path.unlink()
    ds.save_as(path)


@pytest.mark.parametrize("what", sorted(MISMATCHES))
def test_mismatched_partner_names_both_files_and_difference(patient, what):
    inp, tgt = patient
    changes, expected = MISMATCHES[what]
    _write_modified(tgt / "000114.IMA", changes)
    with pytest.raises(ValueError) as info:
        pair_slices(files(inp), files(tgt))
    msg = str(info.value)
    assert f"input slice {inp / '000114.IMA'} and target slice {tgt / '000114.IMA'} differ" in msg
    assert expected in msg


def test_mismatched_partner_dropped_with_message(patient):
    inp, tgt = patient
    _write_modified(tgt / "000114.IMA", {"PixelSpacing": [0.9, 0.9]})
    pairs, problems = pair_slices(files(inp), files(tgt), on_error="drop")
    assert len(pairs) == 3 and "000114.IMA" not in {Path(p.input.path).name for p in pairs}
    assert len(problems) == 1 and "pixel spacing" in problems[0]


def test_unreadable_file_dropped_with_message(patient):
    inp, tgt = patient
    (tgt / "zz_broken.IMA").write_bytes(b"\x00" * 64)
    pairs, problems = pair_slices(files(inp), files(tgt), on_error="drop")
    assert len(pairs) == 4
    assert any("unreadable target slice" in m and "zz_broken.IMA" in m for m in problems)


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    inputs, targets = [], []
    for sub, out in ((QUARTER, inputs), (FULL, targets)):
        (tmp_path / sub).mkdir()
        for f in files(SHARED_LDCT / "L192" / sub):
            ds = pydicom.dcmread(f)
            instance = int(ds.InstanceNumber)
            del ds.ImagePositionPatient
            # rename so that name order would be wrong in one folder
            dst = tmp_path / sub / (f"{1000 - instance:04d}.IMA" if sub == FULL else f.name)
            ds.save_as(dst)
            out.append(dst)
    pairs, problems = pair_slices(inputs, targets)
    assert problems == []
    assert len(pairs) == 4
    for p in pairs:
        assert p.position_z is None
        assert pydicom.dcmread(p.input.path).InstanceNumber == pydicom.dcmread(p.target.path).InstanceNumber
    instances = [p.instance for p in pairs]
    assert instances == sorted(instances)


def test_invalid_arguments_rejected():
    some = files(SHARED_LDCT / "L096" / QUARTER)
    with pytest.raises(ValueError, match="by"):
        pair_slices(some, some, by="z")
    with pytest.raises(ValueError, match="on_error"):
        pair_slices(some, some, on_error="ignore")
    with pytest.raises(ValueError, match="at least one"):
        pair_slices(some, [])
