"""Tests of ctpatch.io.tables: one test per failure mode; each error names the file and the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctpatch.io.tables import TableError, read_annotations, read_candidates

ANN_HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm"
CAND_HEADER = "seriesuid,coordX,coordY,coordZ,class"
UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"


def write(tmp_path, lines, name="annotations.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_good_annotations(tmp_path):
    path = write(tmp_path, [ANN_HEADER, f"{UID},-128.69,-175.31,-298.38,5.65", f"{UID}, 103.7,-4.8,-20.5,21.58"])
    df = read_annotations(path, "fail")
    assert list(df.columns) == ["row", "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert df["row"].tolist() == [2, 3]
    assert df["seriesuid"].tolist() == [UID, UID]  # kept as text, not a float
    assert df["coordX"].tolist() == [-128.69, 103.7]
    assert df["diameter_mm"].tolist() == [5.65, 21.58]


def test_uid_like_a_number_stays_text(tmp_path):
    path = write(tmp_path, [ANN_HEADER, "1.30,1,2,3,4"])
    assert read_annotations(path, "fail")["seriesuid"].tolist() == ["1.30"]


def test_extra_columns_are_dropped(tmp_path):
    path = write(tmp_path, [ANN_HEADER + ",note", f"{UID},1,2,3,4,hello"])
    assert "note" not in read_annotations(path, "fail").columns


def test_missing_file(tmp_path):
    path = tmp_path / "none.csv"
    with pytest.raises(TableError, match="file not found") as err:
        read_annotations(path, "fail")
    assert str(path) in str(err.value)


def test_missing_column(tmp_path):
    path = write(tmp_path, ["seriesuid,coordX,coordY,coordZ", f"{UID},1,2,3"])
    with pytest.raises(TableError, match="diameter_mm") as err:
        read_annotations(path, "fail")
    assert str(path) in str(err.value) and "missing ['diameter_mm']" in str(err.value)


def test_non_number(tmp_path):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,4", f"{UID},1,abc,3,4"])
    with pytest.raises(TableError, match="row 3") as err:
        read_annotations(path, "fail")
    msg = str(err.value)
    assert str(path) in msg and "'coordY'" in msg and "abc" in msg


def test_missing_number(tmp_path):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,4", f"{UID},1,2,,4"])
    with pytest.raises(TableError, match="row 3") as err:
        read_annotations(path, "fail")
    assert "'coordZ'" in str(err.value)


def test_infinite_number(tmp_path):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,inf"])
    with pytest.raises(TableError, match="row 2") as err:
        read_annotations(path, "fail")
    assert "'diameter_mm'" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("uid", ["", "   "])
def test_empty_seriesuid(tmp_path, uid):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,4", f"{UID},1,2,3,4", f"{uid},1,2,3,4"])
    with pytest.raises(TableError, match="row 4: empty seriesuid") as err:
        read_annotations(path, "fail")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("diameter", ["0", "-3.5", "0.0"])
def test_diameter_not_positive(tmp_path, diameter):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,4", f"{UID},1,2,3,{diameter}"])
    with pytest.raises(TableError, match="row 3: expected diameter_mm > 0") as err:
        read_annotations(path, "fail")
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd\x00", b'{"seriesuid": 1}\n']
)
def test_not_a_csv(tmp_path, content):
    path = tmp_path / "annotations.csv"
    path.write_bytes(content)
    with pytest.raises(TableError) as err:
        read_annotations(path, "fail")
    assert str(path) in str(err.value)


def test_good_candidates(tmp_path):
    path = write(tmp_path, [CAND_HEADER, f"{UID},1,2,3,0", f"{UID},4,5,6,1", f"{UID},7,8,9,0.0"], "candidates.csv")
    df = read_candidates(path)
    assert df["class"].tolist() == [0, 1, 0]
    assert df["class"].dtype.kind == "i"
    assert df["row"].tolist() == [2, 3, 4]


@pytest.mark.parametrize("cls", ["2", "-1", "0.5"])
def test_candidates_class_not_0_or_1(tmp_path, cls):
    path = write(tmp_path, [CAND_HEADER, f"{UID},1,2,3,0", f"{UID},1,2,3,1", f"{UID},1,2,3,{cls}"], "candidates.csv")
    with pytest.raises(TableError, match="row 4: expected class 0 or 1") as err:
        read_candidates(path)
    assert str(path) in str(err.value)


def test_candidates_missing_class_column(tmp_path):
    path = write(tmp_path, [ANN_HEADER, f"{UID},1,2,3,4"], "candidates.csv")
    with pytest.raises(TableError, match="missing \\['class'\\]") as err:
        read_candidates(path)
    assert str(path) in str(err.value)
