"""DICOM slices of the LDCT mode: headers, input/target pairing, raw pixels.

The reference paired low-dose and full-dose slices by sorted file name, which silently
misaligns slices when names differ between the dose folders or a slice is missing.  By
default we pair by slice position (the z of ImagePositionPatient) and report every slice
that cannot be paired or whose partner differs in geometry or rescale.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

PAIR_BY = ("position", "name")
ON_ERROR = ("fail", "drop")

#: Positions are compared after rounding to this many millimetres (1e-3 mm).
POSITION_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class SliceHeader:
    """What pairing needs from one DICOM slice (read without its pixels).

    ``rows``/``cols`` are the array shape (row, col); ``pixel_spacing`` is DICOM
    PixelSpacing (row spacing, column spacing) in mm; ``position`` is ImagePositionPatient
    (x, y, z) in mm or None; ``instance`` is InstanceNumber or None; ``slope`` and
    ``intercept`` are RescaleSlope/RescaleIntercept (1 and 0 when absent, as DICOM defines);
    ``series``, ``study``, ``patient`` and ``sop`` are SeriesInstanceUID, StudyInstanceUID, PatientID
    and SOPInstanceUID (None when absent): who the slice belongs to.
    """

    path: str
    rows: int
    cols: int
    pixel_spacing: tuple[float, ...]
    position: tuple[float, float, float] | None
    instance: int | None
    slope: float
    intercept: float
    series: str | None = None
    study: str | None = None
    patient: str | None = None
    sop: str | None = None

    @property
    def z(self) -> float | None:
        """The z of ImagePositionPatient (mm), or None."""
        return None if self.position is None else self.position[2]


@dataclass(frozen=True)
class SlicePair:
    """An input (low-dose) slice and its target (full-dose) partner.

    ``position_z`` is the input slice's z (mm; the target's agrees within 1e-3 mm when
    paired by position), or None when the slices carry no ImagePositionPatient;
    ``instance`` is the input slice's InstanceNumber, or None.
    """

    input: SliceHeader
    target: SliceHeader
    position_z: float | None
    instance: int | None


def read_header(path: str | os.PathLike) -> SliceHeader:
    """Read the header of one DICOM slice (pixels are not read).

    Raises
    ------
    ValueError
        If the file cannot be read as DICOM or lacks Rows, Columns or PixelSpacing; the
        message names the file.
    """
    path = str(path)
    try:
        # defer_size: the pixel data is skipped, not read; its place and length stay known
        ds = pydicom.dcmread(path, defer_size=1024)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"Cannot read DICOM header of {path}: {exc}") from exc
    missing = [k for k in ("Rows", "Columns", "PixelSpacing") if ds.get(k) is None]
    if missing:
        raise ValueError(f"DICOM file {path} lacks {', '.join(missing)}")
    check_pixel_data(path, ds)
    try:
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        raw_pos = ds.get("ImagePositionPatient")
        position = None
        if raw_pos is not None and len(raw_pos) == 3:
            position = tuple(float(v) for v in raw_pos)
        raw_inst = ds.get("InstanceNumber")
        instance = None if raw_inst in (None, "") else int(raw_inst)
        raw_slope = ds.get("RescaleSlope")
        raw_icpt = ds.get("RescaleIntercept")
        slope = 1.0 if raw_slope in (None, "") else float(raw_slope)
        intercept = 0.0 if raw_icpt in (None, "") else float(raw_icpt)
        return SliceHeader(
            path=path,
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            pixel_spacing=spacing,
            position=position,
            instance=instance,
            slope=slope,
            intercept=intercept,
            series=_text(ds.get("SeriesInstanceUID")),
            study=_text(ds.get("StudyInstanceUID")),
            patient=_text(ds.get("PatientID")),
            sop=_text(ds.get("SOPInstanceUID")),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Malformed DICOM header in {path}: {exc}") from exc


def _text(value) -> str | None:
    return None if value in (None, "") else str(value).strip()


def check_pixel_data(path: str, ds) -> None:
    """The pixel data is there, as long as the header promises, and decodable here (found at pairing, not
    mid-extraction).

    For native (uncompressed) transfer syntaxes the value must hold Rows x Columns x
    BitsAllocated/8 x SamplesPerPixel x NumberOfFrames bytes, and the file must hold the whole
    value (a deflated file is inflated to count it); for encapsulated (compressed) pixel data, that
    the value is not cut off and that a decoder for its transfer syntax is installed.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_deflated:  # positions in the file are the deflated stream's
        _check_deflated(path)
        return
    elem = ds.get_item(0x7FE00010) if 0x7FE00010 in ds else None
    if elem is None:
        raise ValueError(f"DICOM file {path} has no pixel data (7FE0,0010)")
    tell = getattr(elem, "file_tell", None) or getattr(elem, "value_tell", None)
    size = os.path.getsize(path)
    if tell is None:  # read in full (smaller than the defer size): its length is the value's
        have = declared = len(elem.value or b"")
    else:
        with open(path, "rb") as fh:  # the 4 bytes before a value are its length, in any LE syntax
            fh.seek(tell - 4)
            declared = int.from_bytes(fh.read(4), "big" if not ds.is_little_endian else "little")
        have = size - tell
    if declared == 0xFFFFFFFF:  # encapsulated: undefined length, items follow
        if have <= 8:
            raise ValueError(f"DICOM file {path}: pixel data truncated: no encapsulated frames after byte {tell}")
        _check_decoder(path, syntax)
        return
    if have < declared:
        raise ValueError(
            f"DICOM file {path}: pixel data truncated: its element declares {declared} bytes, the file holds {have}"
        )
    if syntax is not None and getattr(syntax, "is_compressed", False):
        _check_decoder(path, syntax)
        return
    _check_native_length(path, ds, declared)


def _check_native_length(path: str, ds, have: int) -> None:
    try:
        need = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("BitsAllocated", 16))
            // 8
            * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.get("NumberOfFrames", 1) or 1)
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Malformed DICOM header in {path}: {exc}") from exc
    if have < need:
        raise ValueError(
            f"DICOM file {path}: pixel data too short: Rows x Columns x BitsAllocated "
            f"({ds.Rows} x {ds.Columns} x {ds.get('BitsAllocated', 16)} bits) need {need} bytes, "
            f"the element holds {have}"
        )


def _check_deflated(path: str) -> None:
    """A deflated file (Deflated Explicit VR Little Endian): inflated whole, its pixel data counted."""
    try:
        ds = pydicom.dcmread(path)
        data = ds.PixelData
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"DICOM file {path}: deflated data cannot be read: {exc}") from exc
    _check_native_length(path, ds, len(data))


def _check_decoder(path: str, syntax) -> None:
    """A decoder for the compressed transfer syntax is installed (pydicom finds none for JPEG Lossless
    without pylibjpeg or GDCM, for example)."""
    from pydicom.pixels import get_decoder

    try:
        available = get_decoder(syntax).is_available
    except (NotImplementedError, ValueError):
        available = False
    if not available:
        raise ValueError(
            f"DICOM file {path}: its pixel data is compressed ({syntax.name}, {syntax}) and no decoder for it is "
            f"installed: pip install pylibjpeg pylibjpeg-libjpeg (JPEG), pylibjpeg-openjpeg (JPEG 2000), or "
            f"decompress the slices first"
        )


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Raw stored values of one slice as float32, shape (rows, cols).

    No RescaleSlope/RescaleIntercept is applied (the reference used ``pixel_array`` as
    float32), so the Mayo slices are in [0, 4095] with air near 0, not in HU.
    """
    return read_slice(path)[0]


def read_slice(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float], float]:
    """One slice read once: its raw stored values as :func:`read_pixels` gives them, (rows, cols) float32;
    its PixelSpacing (row spacing, column spacing) in mm (NaN, NaN when absent); its SliceThickness in mm
    (NaN when absent)."""
    path = str(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"Cannot read DICOM pixels of {path}: {exc}") from exc
    if pixels.ndim != 2:
        raise ValueError(f"Expected a single 2D slice in {path}, got shape={pixels.shape!r}")
    spacing, thickness = (math.nan, math.nan), math.nan
    try:
        if ds.get("PixelSpacing") is not None and len(ds.PixelSpacing) == 2:
            spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
        if ds.get("SliceThickness") not in (None, ""):
            thickness = float(ds.SliceThickness)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Malformed DICOM header in {path}: {exc}") from exc
    return pixels.astype(np.float32), spacing, thickness


def _folder(paths: list[str]) -> str:
    parents = sorted({str(Path(p).parent) for p in paths})
    if len(parents) == 1:
        return parents[0]
    try:
        return os.path.commonpath(parents)
    except ValueError:
        return ", ".join(parents)


def _z_key(z: float) -> int:
    """Position rounded to POSITION_TOLERANCE_MM, as an integer bin."""
    return int(round(z / POSITION_TOLERANCE_MM))


def _partner_differences(a: SliceHeader, b: SliceHeader, check_position: bool) -> list[str]:
    diffs = []
    if (a.rows, a.cols) != (b.rows, b.cols):
        diffs.append(f"rows x cols {a.rows}x{a.cols} vs {b.rows}x{b.cols}")
    if len(a.pixel_spacing) != len(b.pixel_spacing) or not np.allclose(
        a.pixel_spacing, b.pixel_spacing, rtol=1e-6, atol=0
    ):
        diffs.append(f"pixel spacing {a.pixel_spacing} vs {b.pixel_spacing}")
    if not math.isclose(a.slope, b.slope, rel_tol=1e-9, abs_tol=1e-12):
        diffs.append(f"rescale slope {a.slope} vs {b.slope}")
    if not math.isclose(a.intercept, b.intercept, rel_tol=1e-9, abs_tol=1e-9):
        diffs.append(f"rescale intercept {a.intercept} vs {b.intercept}")
    if check_position and a.z is not None and b.z is not None and _z_key(a.z) != _z_key(b.z):
        diffs.append(f"slice position z {a.z} vs {b.z} mm")
    return diffs


def _key_name(kind: str, key: int) -> str:
    return f"z={key * POSITION_TOLERANCE_MM:.3f} mm" if kind == "position" else f"instance {key}"


def _read_all(paths: list[str], role: str, problems: list[str]) -> list[SliceHeader]:
    headers = []
    for p in paths:
        try:
            headers.append(read_header(p))
        except ValueError as exc:
            problems.append(f"unreadable {role} slice: {exc}")
    return headers


def _identity_problems(
    inputs: list[SliceHeader], targets: list[SliceHeader], in_dir: str, tg_dir: str
) -> tuple[list[str], set[str]]:
    """Slices that do not belong with the others: (messages naming the files, their paths).

    Each dose folder holds one series of one study of one patient (SeriesInstanceUID,
    StudyInstanceUID, PatientID): a slice whose values differ from the rest of its folder's (the
    fewer, or every slice when the folder is split evenly) does not belong.  The two folders hold
    two different series of one patient: the same series in both (the target folder holding the
    low-dose series, or one folder given twice) or one file in both is refused.
    """
    problems: list[str] = []
    bad: set[str] = set()
    for role, headers, folder in (("input", inputs, in_dir), ("target", targets, tg_dir)):
        for tag, what in (("series", "SeriesInstanceUID"), ("study", "StudyInstanceUID"), ("patient", "PatientID")):
            groups: dict[str | None, list[str]] = defaultdict(list)
            for h in headers:
                groups[getattr(h, tag)].append(h.path)
            if len(groups) < 2:
                continue
            most = max(len(v) for v in groups.values())
            keep = [k for k, v in groups.items() if len(v) == most]
            keep = keep[0] if len(keep) == 1 else object()  # a tie: no value is the folder's
            for value, paths in sorted(groups.items(), key=lambda kv: (len(kv[1]), str(kv[0]))):
                if value is keep:
                    continue
                bad.update(paths)
                problems.append(
                    f"{role} slice(s) {', '.join(paths)} in {folder}: {what} {value!r} is not the folder's "
                    f"({len(groups)} different {what}s among its {len(headers)} slices; one folder holds one "
                    f"series of one patient)"
                )
    if problems:
        return problems, bad
    same_file = {os.path.realpath(h.path) for h in inputs} & {os.path.realpath(h.path) for h in targets}
    if same_file:
        first = sorted(same_file)[0]
        return [
            f"input and target folders share {len(same_file)} file(s), e.g. {first}: ldct.input_dir and "
            f"ldct.target_dir must name two different folders ({in_dir} and {tg_dir})"
        ], {h.path for h in inputs + targets if os.path.realpath(h.path) in same_file}
    series_in = {h.series for h in inputs} - {None}
    series_tg = {h.series for h in targets} - {None}
    if series_in & series_tg:
        return [
            f"input folder {in_dir} and target folder {tg_dir} hold the same series {sorted(series_in & series_tg)[0]} "
            f"(SeriesInstanceUID): the target must be the full-dose series of the patient, not a copy of the input"
        ], {h.path for h in inputs + targets}
    patients_in = {h.patient for h in inputs} - {None}
    patients_tg = {h.patient for h in targets} - {None}
    if patients_in and patients_tg and patients_in != patients_tg:
        return [
            f"input folder {in_dir} (PatientID {sorted(patients_in)[0]!r}) and target folder {tg_dir} (PatientID "
            f"{sorted(patients_tg)[0]!r}) are of two patients"
        ], {h.path for h in inputs + targets}
    return [], set()


def _slice_key(h: SliceHeader, kind: str) -> int | None:
    if kind == "position":
        return None if h.z is None else _z_key(h.z)
    return h.instance


def pair_slices(
    input_paths: list[str | os.PathLike],
    target_paths: list[str | os.PathLike],
    by: str = "position",
    on_error: str = "fail",
) -> tuple[list[SlicePair], list[str]]:
    """Pair the input (low-dose) and target (full-dose) slices of one patient.

    Parameters
    ----------
    input_paths, target_paths : list of path
        The DICOM files of the two dose folders.
    by : {"position", "name"}
        ``"position"``: partners have the same z of ImagePositionPatient, rounded to
        1e-3 mm; when any slice lacks ImagePositionPatient, all slices are paired by
        InstanceNumber instead.  ``"name"``: the reference behaviour, sorted file names
        (base names) zipped; partners whose z differ are reported.
    on_error : {"fail", "drop"}
        ``"fail"``: raise ValueError listing every problem.  ``"drop"``: leave out the
        offending slices and return the problem messages.

    Checks
    ------
    Unreadable files; different slice counts; a slice with no partner; two slices of one
    dose folder at the same position (all slices at that position are dropped, and so are
    their partners, each with its own message); partners that differ in rows x cols, pixel
    spacing, rescale slope or intercept (or, with ``by="name"``, position).  Each message
    names the file(s) and folder and what differs.  A count mismatch alone drops nothing
    (the unpaired slices it implies are reported and dropped individually).

    Returns
    -------
    pairs : list of SlicePair
        Sorted by ascending slice position z (by InstanceNumber when some slice lacks
        ImagePositionPatient), then by file name.
    problems : list of str
        Empty with ``on_error="fail"`` (problems raise instead).
    """
    if by not in PAIR_BY:
        raise ValueError(f"Expected by to be one of {PAIR_BY}, got by={by!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"Expected on_error to be one of {ON_ERROR}, got on_error={on_error!r}")
    inputs_p = [str(p) for p in input_paths]
    targets_p = [str(p) for p in target_paths]
    if not inputs_p or not targets_p:
        raise ValueError(
            "Expected at least one input and one target file, got "
            f"{len(inputs_p)} input and {len(targets_p)} target files"
        )
    in_dir, tg_dir = _folder(inputs_p), _folder(targets_p)
    problems: list[str] = []
    inputs = _read_all(inputs_p, "input", problems)
    targets = _read_all(targets_p, "target", problems)
    count_mismatch = (
        [f"count mismatch: {len(inputs_p)} input slices in {in_dir} vs {len(targets_p)} target slices in {tg_dir}"]
        if len(inputs_p) != len(targets_p)
        else []
    )  # listed after the slices it implies, so that the first line names a file

    identity, bad = _identity_problems(inputs, targets, in_dir, tg_dir)  # paths to drop
    problems += identity
    everyone = inputs + targets
    if all(h.position is not None for h in everyone):
        kind = "position"
    elif all(h.instance is not None for h in everyone):
        kind = "instance"
    else:
        kind = "position"

    # Group each folder by key; flag keys shared by several slices of one folder.
    groups: dict[str, dict[int, list[SliceHeader]]] = {}
    for role, headers, folder in (("input", inputs, in_dir), ("target", targets, tg_dir)):
        by_key: dict[int, list[SliceHeader]] = defaultdict(list)
        for h in headers:
            key = _slice_key(h, kind)
            if key is None:
                if by == "position":  # name order needs no key
                    missing = "ImagePositionPatient" if kind == "position" else "InstanceNumber"
                    problems.append(f"{role} slice {h.path} has no {missing} and cannot be paired")
                    bad.add(h.path)
            else:
                by_key[key].append(h)
        for key, same in sorted(by_key.items()):
            if len(same) > 1:
                names = ", ".join(h.path for h in same)
                problems.append(f"duplicate slice {_key_name(kind, key)} in {role} folder {folder}: {names}")
        groups[role] = by_key

    dups = {role: {k for k, v in g.items() if len(v) > 1} for role, g in groups.items()}
    dup_keys = dups["input"] | dups["target"]
    other = {"input": "target", "target": "input"}
    candidates: list[tuple[SliceHeader, SliceHeader]] = []
    if by == "position":
        keys = sorted(set(groups["input"]) | set(groups["target"]))
        for key in keys:
            ins, tgs = groups["input"].get(key, []), groups["target"].get(key, [])
            if key in dup_keys:
                for role, same in (("input", ins), ("target", tgs)):
                    for h in same:
                        bad.add(h.path)
                        if key not in dups[role]:
                            problems.append(
                                f"{role} slice {h.path} ({_key_name(kind, key)}) dropped: its "
                                f"position is duplicated in the {other[role]} folder"
                            )
                continue
            if not tgs:
                problems.append(
                    f"input slice {ins[0].path} ({_key_name(kind, key)}) has no partner "
                    f"among the target slices in {tg_dir}"
                )
                continue
            if not ins:
                problems.append(
                    f"target slice {tgs[0].path} ({_key_name(kind, key)}) has no partner "
                    f"among the input slices in {in_dir}"
                )
                continue
            candidates.append((ins[0], tgs[0]))
    else:
        ins = sorted(inputs, key=lambda h: Path(h.path).name)
        tgs = sorted(targets, key=lambda h: Path(h.path).name)
        for h in ins[len(tgs) :]:
            problems.append(f"input slice {h.path} has no partner by name order among the target slices in {tg_dir}")
        for h in tgs[len(ins) :]:
            problems.append(f"target slice {h.path} has no partner by name order among the input slices in {in_dir}")
        for a, b in zip(ins, tgs):
            key_a, key_b = _slice_key(a, kind), _slice_key(b, kind)
            if key_a is not None and key_a in dups["input"]:
                bad.add(a.path)
            if key_b is not None and key_b in dups["target"]:
                bad.add(b.path)
            candidates.append((a, b))

    pairs: list[SlicePair] = []
    for a, b in candidates:
        if a.path in bad or b.path in bad:
            if not (a.path in bad and b.path in bad):
                culprit = a.path if a.path in bad else b.path
                problems.append(
                    f"input slice {a.path} and target slice {b.path} dropped: {culprit} cannot be paired (see above)"
                )
            continue
        diffs = _partner_differences(a, b, check_position=(by == "name"))
        if diffs:
            problems.append(f"input slice {a.path} and target slice {b.path} differ: " + "; ".join(diffs))
            continue
        pairs.append(SlicePair(input=a, target=b, position_z=a.z, instance=a.instance))

    problems += count_mismatch
    if problems and on_error == "fail":
        listing = "".join(f"\n- {m}" for m in problems[1:])
        raise ValueError(f"{problems[0]} ({len(problems)} slice pairing problem(s)){listing}")

    def order(p: SlicePair) -> tuple:
        z = p.position_z if p.position_z is not None else math.inf
        inst = p.instance if p.instance is not None else math.inf
        first = (z, inst) if kind == "position" else (inst, z)
        return (*first, Path(p.input.path).name)

    pairs.sort(key=order)
    return pairs, problems
