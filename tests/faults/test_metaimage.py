"""Fault catalog: MetaImage headers and data files.

Header and data-file faults are refused by the pre-flight check (``ctpatch.luna16.check``) before any
scan is converted; faults only the voxel values show (a wrong ElementType or byte order over the
right number of bytes) are refused by ``ctpatch.luna16.convert`` before it writes anything.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from ctpatch.luna16 import check as check_luna
from ctpatch.luna16 import convert
from ctpatch.settings import defaults

from .conftest import assert_refused, call, check_args, first_scan, preflight_args, tree_digest


def _set(key, value):
    """Replace (or, with value None, remove) one header key of the first scan."""

    def mutate(root):
        mhd = first_scan(root)
        lines = [ln for ln in mhd.read_text().splitlines() if ln.split("=")[0].strip() != key]
        if value is not None:
            lines.insert(3, f"{key} = {value}")
        mhd.write_text("\n".join(lines) + "\n")
        return [mhd.name]

    return mutate


def _data_file(edit):
    def mutate(root):
        raw = first_scan(root).with_suffix(".raw")
        edit(raw)
        return [raw.name]

    return mutate


def _zraw_not_zlib(root):
    mhd = first_scan(root)
    mhd.write_text(mhd.read_text().replace("CompressedData = False", "CompressedData = True"))
    return [mhd.with_suffix(".raw").name, "not zlib"]


def _zraw_wrong_size(root):
    mhd = first_scan(root)
    raw = mhd.with_suffix(".raw")
    zraw = raw.with_suffix(".zraw")
    zraw.write_bytes(zlib.compress(raw.read_bytes()))
    raw.unlink()
    text = mhd.read_text().replace("CompressedData = False", "CompressedData = True\nCompressedDataSize = 99")
    mhd.write_text(text.replace(raw.name, zraw.name))
    return [zraw.name, "CompressedDataSize"]


def _zraw_truncated_no_declared_size(root):
    """A .zraw cut short, without CompressedDataSize: SimpleITK would fill the missing slices with zeros."""
    mhd = first_scan(root)
    raw = mhd.with_suffix(".raw")
    zraw = raw.with_suffix(".zraw")
    data = zlib.compress(raw.read_bytes())
    zraw.write_bytes(data[: len(data) // 2])
    raw.unlink()
    mhd.write_text(
        mhd.read_text().replace("CompressedData = False", "CompressedData = True").replace(raw.name, zraw.name)
    )
    return [zraw.name, "truncated"]


def _key_after_data_file(root):
    """ElementSpacing moved after ElementDataFile: MetaIO (SimpleITK) stops reading at ElementDataFile."""
    mhd = first_scan(root)
    lines = mhd.read_text().splitlines()
    spacing = next(ln for ln in lines if ln.startswith("ElementSpacing"))
    lines = [ln for ln in lines if ln != spacing]
    mhd.write_text("\n".join(lines + ["ElementSpacing = 0.877 0.877 1.25"]) + "\n")
    return [mhd.name, "ElementSpacing", "after ElementDataFile"]


def _offset_and_origin_differ(root):
    mhd = first_scan(root)
    offset = next(ln for ln in mhd.read_text().splitlines() if ln.startswith("Offset")).split("=")[1].split()
    origin = " ".join(str(float(v) + 3.0) for v in offset)
    mhd.write_text(mhd.read_text().replace("ElementSpacing", f"Origin = {origin}\nElementSpacing", 1))
    return [mhd.name, "Offset", "Origin"]


def _key_twice(root):
    mhd = first_scan(root)
    mhd.write_text(mhd.read_text().replace("ElementSpacing", "ElementType = MET_USHORT\nElementSpacing", 1))
    return [mhd.name, "ElementType given twice"]


def _garbage_header(root):
    mhd = first_scan(root)
    mhd.write_bytes(bytes(range(256)) * 3)
    return [mhd.name]


def _line_without_equals(root):
    mhd = first_scan(root)
    mhd.write_text(mhd.read_text() + "just words\n")
    return [mhd.name, "line 14"]


def _header_is_a_folder(root):
    (root / "subset0" / "1.2.3.mhd").mkdir()
    return ["1.2.3.mhd", "cannot read the header"]


HEADER_CASES = {
    "no_ElementSpacing": _set("ElementSpacing", None),
    "no_ElementType": _set("ElementType", None),
    "unknown_ElementType": _set("ElementType", "MET_BOGUS"),
    "no_byte_order": _set("BinaryDataByteOrderMSB", None),
    "contradicting_byte_order": _set("ElementByteOrderMSB", "True"),
    "NDims_2": _set("NDims", "2"),
    "DimSize_fraction": _set("DimSize", "48 48.5 16"),
    "DimSize_zero": _set("DimSize", "48 0 16"),
    "ElementSpacing_negative": _set("ElementSpacing", "0.8 -0.8 1"),
    "ElementSpacing_nan": _set("ElementSpacing", "0.8 nan 1"),
    "Offset_text": _set("Offset", "a b c"),
    "TransformMatrix_not_orthonormal": _set("TransformMatrix", "2 0 0 0 2 0 0 0 2"),
    "ElementDataFile_LOCAL": _set("ElementDataFile", "LOCAL"),
    "no_ElementDataFile": _set("ElementDataFile", None),
    "two_channels": _set("ElementNumberOfChannels", "2"),
    "text_voxels": _set("BinaryData", "False"),
    "raw_missing": _data_file(lambda raw: raw.unlink()),
    "raw_truncated": _data_file(lambda raw: raw.write_bytes(raw.read_bytes()[:-2])),
    "raw_oversize": _data_file(lambda raw: raw.write_bytes(raw.read_bytes() + b"\0\0")),
    "raw_empty": _data_file(lambda raw: raw.write_bytes(b"")),
    "zraw_not_zlib": _zraw_not_zlib,
    "zraw_wrong_size": _zraw_wrong_size,
    "zraw_truncated_without_CompressedDataSize": _zraw_truncated_no_declared_size,
    "ElementSpacing_after_ElementDataFile": _key_after_data_file,
    "Offset_and_Origin_differ": _offset_and_origin_differ,
    "key_twice_with_two_values": _key_twice,
    "garbage_header": _garbage_header,
    "header_line_without_equals": _line_without_equals,
    "header_is_a_folder": _header_is_a_folder,
}


@pytest.mark.parametrize("case", HEADER_CASES, ids=str)
def test_header_or_data_file_fault_refused_before_any_conversion(case, luna, tmp_path, capsys):
    names = HEADER_CASES[case](luna)
    before = tree_digest(luna)
    out = tmp_path / "checks"
    rc, err = call(
        check_luna.main,
        [
            *preflight_args(luna, tmp_path, out),
        ],
        capsys,
    )
    assert_refused(rc, err, names, inputs=(luna, before), absent=[out / "scans.tsv", out / "inputs.json"])


# ---------------------------------------------------------------- values that only the voxels show
def _as_unsigned(mhd):
    mhd.write_text(mhd.read_text().replace("MET_SHORT", "MET_USHORT"))
    return ["MET_USHORT", "no air"]


def _big_endian(mhd):
    mhd.write_text(mhd.read_text().replace("BinaryDataByteOrderMSB = False", "BinaryDataByteOrderMSB = True"))
    return ["implausible", "at or above the window top", "outside hu_range"]


def _all_zero(mhd):
    raw = mhd.with_suffix(".raw")
    raw.write_bytes(b"\0" * raw.stat().st_size)
    return ["no air"]


def _attenuation_units(mhd):
    """A float scan in 1/mm (0 .. 0.03), the right size for MET_FLOAT."""
    raw = mhd.with_suffix(".raw")
    hu = np.fromfile(raw, dtype="<i2").astype(np.float32)
    raw.write_bytes((0.0192 * (1 + hu / 1000.0)).clip(0).astype("<f4").tobytes())
    mhd.write_text(mhd.read_text().replace("MET_SHORT", "MET_FLOAT"))
    return ["MET_FLOAT", "no air"]


def _clipped_at_the_top(mhd):
    raw = mhd.with_suffix(".raw")
    hu = np.fromfile(raw, dtype="<i2")
    raw.write_bytes((hu.astype(np.int32) + 1500).clip(-32768, 32767).astype("<i2").tobytes())
    return ["at or above the window top"]


VALUE_CASES = {
    "signed_read_as_unsigned": _as_unsigned,
    "wrong_byte_order": _big_endian,
    "all_zero": _all_zero,
    "attenuation_units": _attenuation_units,
    "shifted_1500_HU": _clipped_at_the_top,
}


@pytest.mark.parametrize("case", VALUE_CASES, ids=str)
def test_implausible_values_refused_before_anything_is_written(case, luna, tmp_path, capsys):
    mhd = first_scan(luna)
    words = VALUE_CASES[case](mhd)
    before = tree_digest(luna)
    out = tmp_path / "volumes"
    rc, err = call(convert.main, ["--scan", mhd, "--npy-out", out / "x.npy", "--json-out", out / "x.json"], capsys)
    assert_refused(rc, err, [str(mhd), *words], inputs=(luna, before), absent=[out])


@pytest.mark.parametrize("case", VALUE_CASES, ids=str)
def test_implausible_values_refused_by_the_preflight_check(case, luna, tmp_path, capsys):
    """The same scans, refused before any conversion: the pre-flight check reads each scan's middle slice."""
    mhd = first_scan(luna)
    words = [w for w in VALUE_CASES[case](mhd) if w != "implausible"]
    before = tree_digest(luna)
    out = tmp_path / "checks"
    rc, err = call(
        check_luna.main,
        [
            *preflight_args(luna, tmp_path, out),
        ],
        capsys,
    )
    assert_refused(rc, err, [str(mhd), "middle slice", *words], inputs=(luna, before), absent=[out])
    relaxed = check_args(luna, tmp_path, plausibility={"enabled": False})
    rc, err = call(
        check_luna.main,
        [
            *relaxed,
            "--subsets",
            "subset0",
            "subset1",
            "--scans-out",
            out / "scans.tsv",
            "--report-out",
            out / "inputs.json",
        ],
        capsys,
    )
    assert rc == 0, err


def test_compressed_zraw_scan_is_accepted_and_converts_like_the_raw(luna, tmp_path, capsys):
    """Not a refusal: SimpleITK's .zraw (CompressedData = True) is valid MetaImage."""
    mhd = first_scan(luna)
    plain, _ = convert.convert(mhd, defaults("convert"))
    image = sitk.ReadImage(str(mhd))
    mhd.with_suffix(".raw").unlink()
    sitk.WriteImage(image, str(mhd), useCompression=True)
    assert mhd.with_suffix(".zraw").is_file() and not mhd.with_suffix(".raw").exists()
    out = tmp_path / "checks"
    rc, err = call(
        check_luna.main,
        [
            *preflight_args(luna, tmp_path, out),
        ],
        capsys,
    )
    assert rc == 0, err
    again, _ = convert.convert(mhd, defaults("convert"))
    np.testing.assert_array_equal(again, plain)
