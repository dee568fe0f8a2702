"""Tests of ctpatch.io.mhd: header checks (one test per failure mode) and geometry read back.

Every error must name the file it is about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ctpatch.core.geometry import VolumeGrid
from ctpatch.io.mhd import ScanError, check_scan, grid_of, read_header, read_image, write_scan

ROT_FLIP = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
GRID = VolumeGrid((-100.5, 20.25, -300.0), (0.7, 0.8, 2.5), (4, 5, 6), ROT_FLIP)
VOLUME = (np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4) * 7 - 1000).astype(np.int16)

HEADER = """ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 1 0 0 0 1
Offset = -100 -50 -300
ElementSpacing = 0.7 0.7 2.5
DimSize = 4 5 6
ElementType = MET_SHORT
ElementDataFile = scan.raw
"""


@pytest.fixture
def scan(tmp_path) -> Path:
    path = tmp_path / "scan.mhd"
    write_scan(path, VOLUME, GRID)
    return path


def handmade(tmp_path, header=HEADER, raw_bytes=4 * 5 * 6 * 2) -> Path:
    path = tmp_path / "scan.mhd"
    path.write_text(header)
    (tmp_path / "scan.raw").write_bytes(b"\0" * raw_bytes)
    return path


def edit(header: str, key: str, value: str | None) -> str:
    lines = [ln for ln in header.splitlines() if not ln.startswith(key + " ")]
    if value is not None:
        lines.insert(2, f"{key} = {value}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- good scans
def test_written_scan_reads_back(scan):
    header = check_scan(scan)
    assert header.series_uid == "scan"
    assert header.element_type == "MET_SHORT"
    assert header.data_file == scan.with_suffix(".raw")
    img = read_image(scan)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), VOLUME)
    assert grid_of(img).size == GRID.size


def test_header_geometry_equals_simpleitk_for_a_rotated_scan(scan):
    """The header parser and SimpleITK must agree on origin, spacing and direction cosines."""
    img = sitk.ReadImage(str(scan))
    g = read_header(scan).grid
    np.testing.assert_allclose(g.origin, img.GetOrigin())
    np.testing.assert_allclose(g.spacing, img.GetSpacing())
    assert g.size == tuple(img.GetSize())
    np.testing.assert_allclose(g.direction, img.GetDirection())
    np.testing.assert_allclose(g.direction, ROT_FLIP)
    # and so the world position of a voxel agrees with SimpleITK's
    idx = (1.0, 3.0, 4.0)
    np.testing.assert_allclose(g.index_to_world(idx), img.TransformContinuousIndexToPhysicalPoint(idx))


def test_handmade_header_defaults_and_fields(tmp_path):
    path = handmade(tmp_path, edit(edit(HEADER, "TransformMatrix", None), "Offset", None))
    g = check_scan(path).grid
    assert g.origin == (0.0, 0.0, 0.0) and g.direction == VolumeGrid.direction
    assert g.size == (4, 5, 6) and g.spacing == (0.7, 0.7, 2.5)


def test_write_scan_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(6, 5, 4\)"):
        write_scan(tmp_path / "x.mhd", VOLUME.transpose(2, 1, 0), GRID)


# ---------------------------------------------------------------- one test per failure mode
def test_missing_raw(scan):
    scan.with_suffix(".raw").unlink()
    with pytest.raises(ScanError, match="missing") as err:
        check_scan(scan)
    assert str(scan) in str(err.value) and "scan.raw" in str(err.value)
    with pytest.raises(ScanError, match="missing"):
        read_image(scan)


def test_truncated_raw(scan):
    raw = scan.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(ScanError, match="truncated") as err:
        check_scan(scan)
    msg = str(err.value)
    assert str(raw) in msg and str(4 * 5 * 6 * 2) in msg and str(4 * 5 * 6 * 2 - 10) in msg


def test_oversize_raw(scan):
    raw = scan.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes() + b"\0\0")
    with pytest.raises(ScanError, match="larger than declared") as err:
        check_scan(scan)
    assert str(raw) in str(err.value)


def test_unreadable_header(tmp_path):
    path = tmp_path / "nothere.mhd"
    with pytest.raises(ScanError, match="cannot read the header") as err:
        read_header(path)
    assert str(path) in str(err.value)
    folder = tmp_path / "dir.mhd"
    folder.mkdir()
    with pytest.raises(ScanError, match="cannot read the header") as err:
        read_header(folder)
    assert str(folder) in str(err.value)


def test_garbage_header(tmp_path):
    path = tmp_path / "scan.mhd"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ScanError) as err:
        read_header(path)
    assert str(path) in str(err.value)


def test_header_line_without_equals(tmp_path):
    path = handmade(tmp_path, HEADER + "this is not a field\n")
    with pytest.raises(ScanError, match="line 12") as err:
        read_header(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("ndims", ["2", "4", None])
def test_ndims_not_3(tmp_path, ndims):
    path = handmade(tmp_path, edit(HEADER, "NDims", ndims))
    with pytest.raises(ScanError, match="NDims = 3") as err:
        read_header(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("data_file", ["LOCAL", "local", "LIST", None, ""])
def test_local_or_missing_data_file(tmp_path, data_file):
    path = handmade(tmp_path, edit(HEADER, "ElementDataFile", data_file))
    with pytest.raises(ScanError, match="ElementDataFile") as err:
        read_header(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("DimSize", "4 x 6", "not 3 numbers"),
        ("DimSize", "4 5", "expected 3 values"),
        ("DimSize", "4 5.5 6", "whole DimSize"),
        ("DimSize", "4 0 6", "whole DimSize"),
        ("DimSize", "4 nan 6", "finite"),
        ("DimSize", None, "no DimSize"),
        ("ElementSpacing", "0.7 -0.7 2.5", "positive ElementSpacing"),
        ("ElementSpacing", "0.7 nan 2.5", "finite"),
        ("ElementSpacing", "0.7 0.7", "expected 3 values"),
        ("Offset", "0 inf 0", "finite"),
        ("Offset", "a b c", "not 3 numbers"),
        ("TransformMatrix", "1 0 0 0 1 0 0 0", "expected 9 values"),
        ("TransformMatrix", "2 0 0 0 2 0 0 0 2", "orthonormal"),
        ("ElementType", "MET_BOGUS", "ElementType"),
    ],
)
def test_bad_numbers(tmp_path, key, value, words):
    path = handmade(tmp_path, edit(HEADER, key, value))
    with pytest.raises(ScanError, match=words) as err:
        check_scan(path)
    assert str(path) in str(err.value)


def test_compressed_zraw_scan_is_valid_and_reads_back(tmp_path):
    """SimpleITK's own compressed MetaImage (.zraw, CompressedData = True) is a valid scan."""
    path = tmp_path / "scan.mhd"
    image = sitk.GetImageFromArray(VOLUME)
    image.SetSpacing(GRID.spacing)
    sitk.WriteImage(image, str(path), useCompression=True)
    header = check_scan(path)
    assert header.compressed and header.data_file == tmp_path / "scan.zraw"
    assert not (tmp_path / "scan.raw").exists()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), VOLUME)
    from ctpatch.io.mhd import data_file_of

    assert data_file_of(path) == tmp_path / "scan.zraw"
    assert data_file_of(tmp_path / "absent.mhd") == tmp_path / "absent.raw"


def test_compressed_scan_with_wrong_size_or_not_zlib(tmp_path):
    path = handmade(tmp_path, edit(HEADER, "CompressedData", "True"), raw_bytes=17)
    with pytest.raises(ScanError, match="not zlib data") as err:
        check_scan(path)
    assert "scan.raw" in str(err.value)
    path.write_text(edit(edit(HEADER, "CompressedData", "True"), "CompressedDataSize", "40"))
    with pytest.raises(ScanError, match="truncated: CompressedDataSize says 40 bytes, found 17"):
        check_scan(path)


@pytest.mark.parametrize("key", ["ElementSpacing", "ElementType", "DimSize", "BinaryDataByteOrderMSB"])
def test_required_key_missing_is_an_error_not_a_default(tmp_path, key):
    """A header without spacing was read as 1 mm; without byte order the bytes could be swapped."""
    path = handmade(tmp_path, edit(HEADER, key, None))
    with pytest.raises(ScanError, match="ElementSpacing|ElementType|DimSize|byte order") as err:
        check_scan(path)
    assert str(err.value).startswith(str(path)) and ("byte order" in str(err.value) or key in str(err.value))


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("ElementByteOrderMSB", "True", "contradicting byte order"),
        ("BinaryDataByteOrderMSB", "maybe", "True or False"),
        ("BinaryData", "False", "text voxel data"),
        ("ElementNumberOfChannels", "3", "ElementNumberOfChannels = 1"),
    ],
)
def test_storage_keys(tmp_path, key, value, words):
    path = handmade(tmp_path, edit(HEADER, key, value))
    with pytest.raises(ScanError, match=words) as err:
        check_scan(path)
    assert str(path) in str(err.value)


def test_other_byte_order_key_is_accepted(tmp_path):
    path = handmade(tmp_path, edit(edit(HEADER, "BinaryDataByteOrderMSB", None), "ElementByteOrderMSB", "False"))
    assert check_scan(path).element_type == "MET_SHORT"


@pytest.mark.parametrize("msb", [False, True])
def test_read_slice_equals_simpleitk(tmp_path, msb):
    """One slice through the header's type and byte order, compared with SimpleITK's whole read."""
    from ctpatch.io.mhd import read_slice

    path = tmp_path / "scan.mhd"
    path.write_text(edit(HEADER, "BinaryDataByteOrderMSB", "True" if msb else "False"))
    (tmp_path / "scan.raw").write_bytes(VOLUME.astype(">i2" if msb else "<i2").tobytes())
    header = check_scan(path)
    whole = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(whole, VOLUME)
    for k in range(6):
        np.testing.assert_array_equal(read_slice(header, k), whole[k])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        read_slice(header, 6)
