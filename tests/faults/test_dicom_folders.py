"""Fault catalog: LDCT DICOM folders and files, refused by the pairing (``ctpatch.ldct.pairing``),
which reads headers only, before any patch is cut."""

from __future__ import annotations

import os
import shutil

import pydicom
import pytest

from ctpatch.ldct import pairing as pair_ldct

from .conftest import FULL, QUARTER, SHARED_LDCT, assert_refused, call, pairs_args, tree_digest


def _slice(patient, folder=FULL, i=0):
    return sorted((patient / folder).glob("*.IMA"))[i]


def _edit(folder, change, i=0):
    def mutate(patient):
        path = _slice(patient, folder, i)
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)
        return [path.name]

    return mutate


def _truncate(patient):
    path = _slice(patient)
    with path.open("r+b") as fh:
        fh.truncate(os.path.getsize(path) - 1000)
    return [path.name, "pixel data truncated"]


def _no_pixels(patient):
    path = _slice(patient)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    return [path.name, "no pixel data"]


def _short_pixels(patient):
    path = _slice(patient)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:4096]
    ds.save_as(path)
    return [path.name, "pixel data too short"]


def _not_dicom(patient):
    path = _slice(patient)
    path.write_text("not a DICOM file\n")
    return [path.name, "Cannot read DICOM header"]


def _empty_file(patient):
    path = _slice(patient, QUARTER)
    path.write_bytes(b"")
    return [path.name]


def _missing_partner(patient):
    path = _slice(patient, FULL, 2)
    path.unlink()
    return [path.name, "no partner"]


def _duplicate_position(patient):
    path = _slice(patient)
    shutil.copyfile(path, path.with_name("copy_" + path.name))
    return ["duplicate slice"]


def _no_target_folder(patient):
    shutil.rmtree(patient / FULL)
    return [FULL, "folder not found"]


def _empty_input_folder(patient):
    for p in (patient / QUARTER).iterdir():
        p.unlink()
    return [QUARTER, "no slice files"]


def _full_dose_slice_in_the_low_dose_folder(patient):
    """A full-dose slice copied over its low-dose partner: same name and position, another series."""
    low, full = _slice(patient, QUARTER, 1), _slice(patient, FULL, 1)
    shutil.copyfile(full, low)
    return [low.name, "SeriesInstanceUID"]


def _target_holds_the_low_dose_series(patient):
    for low in (patient / QUARTER).iterdir():
        shutil.copyfile(low, patient / FULL / low.name)
    return [QUARTER, FULL, "same series"]


def _slice_of_another_patient(patient):
    """A slice of patient L143 with its position edited to that of a slice of this patient."""
    here = _slice(patient, QUARTER, 2)
    ds = pydicom.dcmread(sorted((SHARED_LDCT / "L143" / QUARTER).glob("*.IMA"))[0])
    ds.ImagePositionPatient = pydicom.dcmread(here).ImagePositionPatient
    ds.save_as(here)
    return [here.name, "SeriesInstanceUID"]


def _jpeg_without_decoder(patient):
    """A JPEG Lossless slice: pydicom has no decoder for it without pylibjpeg or GDCM."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    path = _slice(patient)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\0" * 1000 + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return [path.name, "no decoder", "JPEG Lossless"]


DICOM_CASES = {
    "pixel_data_truncated": _truncate,
    "pixel_data_missing": _no_pixels,
    "pixel_data_short": _short_pixels,
    "not_dicom": _not_dicom,
    "empty_file": _empty_file,
    "missing_partner": _missing_partner,
    "duplicate_position": _duplicate_position,
    "target_folder_missing": _no_target_folder,
    "input_folder_empty": _empty_input_folder,
    "no_PixelSpacing": _edit(FULL, lambda ds: delattr(ds, "PixelSpacing")),
    "rows_differ": _edit(FULL, lambda ds: setattr(ds, "Rows", 256)),
    "rescale_slope_differs": _edit(FULL, lambda ds: setattr(ds, "RescaleSlope", 2)),
    "full_dose_slice_in_the_low_dose_folder": _full_dose_slice_in_the_low_dose_folder,
    "target_folder_holds_the_low_dose_series": _target_holds_the_low_dose_series,
    "slice_of_another_patient": _slice_of_another_patient,
    "jpeg_slice_without_decoder": _jpeg_without_decoder,
}


@pytest.mark.parametrize("case", DICOM_CASES, ids=str)
def test_dicom_fault_refused_at_pairing(case, ldct, tmp_path, capsys):
    names = DICOM_CASES[case](ldct)
    before = tree_digest(ldct.parent)
    table, report = tmp_path / "pairs" / "L096.tsv", tmp_path / "pairs" / "L096.json"
    rc, err = call(pair_ldct.main, [*pairs_args(ldct, tmp_path), "--table-out", table, "--report-out", report], capsys)
    assert_refused(rc, err, names, inputs=(ldct.parent, before), absent=[table, report])


def test_input_folder_given_as_the_target_refused(ldct, tmp_path, capsys):
    """ldct.target_dir equal to ldct.input_dir: every slice would be paired with itself."""
    before = tree_digest(ldct.parent)
    table, report = tmp_path / "pairs" / "L096.tsv", tmp_path / "pairs" / "L096.json"
    args = pairs_args(ldct, tmp_path, target_dir=QUARTER)
    rc, err = call(pair_ldct.main, [*args, "--table-out", table, "--report-out", report], capsys)
    assert_refused(rc, err, ["share", "two different folders"], inputs=(ldct.parent, before), absent=[table, report])


def test_deflated_slice_is_read_not_refused(ldct, tmp_path, capsys):
    """Not a refusal: Deflated Explicit VR Little Endian is valid DICOM; it pairs, and its pixels are the
    same values as the slice it was written from."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from ctpatch.io.dicom import read_pixels

    path = _slice(ldct)
    plain = read_pixels(path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    table, report = tmp_path / "pairs" / "L096.tsv", tmp_path / "pairs" / "L096.json"
    rc, err = call(pair_ldct.main, [*pairs_args(ldct, tmp_path), "--table-out", table, "--report-out", report], capsys)
    assert rc == 0 and table.is_file(), err
    assert (read_pixels(path) == plain).all()
