"""MetaImage (.mhd + .raw) scans: header checks before any pixel is read, then the volume.

LUNA16 ships each scan as ``<seriesuid>.mhd`` (text header) beside ``<seriesuid>.raw``
(MET_SHORT HU values).  :func:`check_scan` reads the header alone and verifies that the data
file exists and has exactly the size the header promises, so a missing or truncated ``.raw`` is
reported before hours of work are spent on the other scans.

The keys that decide how the bytes are read are required, never guessed: ``NDims`` (3),
``DimSize``, ``ElementSpacing``, ``ElementType``, the byte order (``BinaryDataByteOrderMSB``,
``ElementByteOrderMSB`` or ``ByteOrderMSB``) and ``ElementDataFile``.  The data file is the one
the header names (``<uid>.raw``, or ``<uid>.zraw`` with ``CompressedData = True``, which
SimpleITK writes and reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctpatch.core.geometry import VolumeGrid

ELEMENT_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 8,
    "MET_ULONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


class ScanError(ValueError):
    """A scan file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ScanHeader:
    """What the .mhd header says: geometry in (x, y, z) order and the data file."""

    path: Path
    series_uid: str
    grid: VolumeGrid
    element_type: str
    data_file: Path
    compressed: bool


def parse_header(path: str | Path) -> dict[str, str]:
    """The ``Key = Value`` pairs of a MetaImage header (keys as written).

    A header that two readers could read two ways is refused naming the file and the keys: a key
    given twice with different values, and any key after ``ElementDataFile`` (MetaIO, and so
    SimpleITK, stops reading there; ctpatch would read it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise ScanError(f"{path}: cannot read the header ({exc.strerror})") from None
    fields: dict[str, str] = {}
    lines: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ScanError(f"{path}: line {n} is not 'Key = Value': {line[:80]!r}")
        key, value = (s.strip() for s in line.split("=", 1))
        if "ElementDataFile" in fields:
            raise ScanError(
                f"{path}: ambiguous header: {key} (line {n}) comes after ElementDataFile (line "
                f"{lines['ElementDataFile']}), where MetaImage readers such as SimpleITK stop reading"
            )
        if key in fields and fields[key] != value:
            raise ScanError(
                f"{path}: ambiguous header: {key} given twice, {fields[key]!r} (line {lines[key]}) and {value!r} (line {n})"
            )
        fields[key], lines[key] = value, n
    return fields


def _synonym(path: Path, fields: dict, keys: tuple[str, ...], n: int):
    """The one key of ``keys`` (MetaIO's synonyms, e.g. Offset/Origin/Position) the header gives, or None;
    several that differ are refused naming them (readers pick different ones)."""
    given = [k for k in keys if k in fields]
    if len(given) > 1:
        values = {k: _floats(path, fields, k, n) for k in given}
        if len(set(values.values())) > 1:
            raise ScanError(
                f"{path}: ambiguous header: "
                + " and ".join(f"{k} = {fields[k]}" for k in given)
                + " differ (they are synonyms; readers take different ones)"
            )
    return given[0] if given else None


def _floats(path: Path, fields: dict, key: str, n: int, default=None) -> tuple[float, ...]:
    if key not in fields:
        if default is not None:
            return default
        raise ScanError(f"{path}: header has no {key}")
    try:
        values = tuple(float(v) for v in fields[key].split())
    except ValueError:
        raise ScanError(f"{path}: {key} = {fields[key]!r} is not {n} numbers") from None
    if not all(np.isfinite(values)):
        raise ScanError(f"{path}: {key} = {fields[key]!r} is not {n} finite numbers")
    if len(values) != n:
        raise ScanError(f"{path}: expected {n} values for {key}, got {fields[key]!r}")
    return values


BYTE_ORDER_KEYS = ("BinaryDataByteOrderMSB", "ElementByteOrderMSB", "ByteOrderMSB")


def _boolean(path: Path, fields: dict, key: str) -> bool:
    value = fields[key].strip().lower()
    if value not in ("true", "false"):
        raise ScanError(f"{path}: expected {key} = True or False, got {fields[key]!r}")
    return value == "true"


def _check_storage(path: Path, fields: dict) -> None:
    """Byte order given (and one), binary one-channel data: what decides how the bytes are read."""
    given = [k for k in BYTE_ORDER_KEYS if k in fields]
    if not given:
        raise ScanError(f"{path}: header has no byte order (one of {', '.join(BYTE_ORDER_KEYS)})")
    if len({_boolean(path, fields, k) for k in given}) > 1:
        raise ScanError(f"{path}: contradicting byte order: " + ", ".join(f"{k} = {fields[k]}" for k in given))
    if "BinaryData" in fields and not _boolean(path, fields, "BinaryData"):
        raise ScanError(f"{path}: BinaryData = False (text voxel data) is not supported")
    channels = fields.get("ElementNumberOfChannels", "1").strip()
    if channels != "1":
        raise ScanError(f"{path}: expected ElementNumberOfChannels = 1 (one value per voxel), got {channels!r}")
    if "CompressedData" in fields:
        _boolean(path, fields, "CompressedData")


def read_header(path: str | Path) -> ScanHeader:
    """Parse and check a .mhd header (3D only); does not open the data file."""
    path = Path(path)
    fields = parse_header(path)
    ndims = fields.get("NDims")
    if ndims != "3":
        raise ScanError(f"{path}: expected NDims = 3, got {ndims!r}")
    size = _floats(path, fields, "DimSize", 3)
    if any(s < 1 or s != int(s) for s in size):
        raise ScanError(f"{path}: expected positive whole DimSize, got {fields['DimSize']!r}")
    spacing = _floats(path, fields, "ElementSpacing", 3)  # never 1 mm by default: a wrong size, silently
    if any(s <= 0 for s in spacing):
        raise ScanError(f"{path}: expected positive ElementSpacing, got {fields['ElementSpacing']!r}")
    origin_key = _synonym(path, fields, ("Offset", "Origin", "Position"), 3) or "Offset"
    origin = _floats(path, fields, origin_key, 3, default=(0.0, 0.0, 0.0))
    dir_key = _synonym(path, fields, ("TransformMatrix", "Rotation", "Orientation"), 9)
    # MetaIO writes the direction matrix column by column (each group of 3 is one index axis);
    # VolumeGrid, like SimpleITK's GetDirection(), holds it row-major: transpose.
    direction = (
        tuple(np.reshape(_floats(path, fields, dir_key, 9), (3, 3)).T.ravel().tolist())
        if dir_key
        else VolumeGrid.direction
    )
    if "ElementType" not in fields:
        raise ScanError(f"{path}: header has no ElementType")
    element_type = fields["ElementType"]
    if element_type not in ELEMENT_BYTES:
        raise ScanError(
            f"{path}: unsupported ElementType {element_type!r} (expected one of {', '.join(ELEMENT_BYTES)})"
        )
    _check_storage(path, fields)
    data_name = fields.get("ElementDataFile")
    if not data_name or data_name.upper() == "LOCAL" or data_name.upper().startswith("LIST"):
        raise ScanError(f"{path}: expected ElementDataFile naming a separate data file (.raw/.zraw), got {data_name!r}")
    try:
        grid = VolumeGrid(origin, spacing, tuple(int(s) for s in size), direction)
    except ValueError as exc:
        raise ScanError(f"{path}: {exc}") from None
    return ScanHeader(
        path=path,
        series_uid=path.stem,
        grid=grid,
        element_type=element_type,
        data_file=path.parent / data_name,
        compressed=fields.get("CompressedData", "False").lower() == "true",
    )


def check_scan(path: str | Path) -> ScanHeader:
    """Header checks plus: the data file exists and holds exactly the voxels the header declares."""
    header = read_header(path)
    if not header.data_file.is_file():
        raise ScanError(f"{header.path}: its data file {header.data_file} is missing")
    if header.compressed:
        _check_compressed(header)
    else:
        expected = int(np.prod(header.grid.size)) * ELEMENT_BYTES[header.element_type]
        found = header.data_file.stat().st_size
        if found != expected:
            what = "truncated" if found < expected else "larger than declared"
            raise ScanError(
                f"{header.data_file}: {what}: expected {expected} bytes for DimSize "
                f"{' '.join(map(str, header.grid.size))} of {header.element_type}, found {found}"
            )
    return header


def _check_compressed(header: ScanHeader) -> None:
    """A zlib data file: its size as declared (``CompressedDataSize``, when given), and a complete zlib
    stream that inflates to exactly the voxels the header declares (decompressed in 4 MiB pieces,
    nothing kept: SimpleITK fills a short stream's missing slices with zeros and says nothing)."""
    import zlib

    fields = parse_header(header.path)
    found = header.data_file.stat().st_size
    declared = fields.get("CompressedDataSize")
    if declared is not None:
        try:
            declared_n = int(declared)
        except ValueError:
            raise ScanError(f"{header.path}: CompressedDataSize = {declared!r} is not a whole number") from None
        if declared_n != found:
            what = "truncated" if found < declared_n else "larger than declared"
            raise ScanError(f"{header.data_file}: {what}: CompressedDataSize says {declared_n} bytes, found {found}")
    expected = int(np.prod(header.grid.size)) * ELEMENT_BYTES[header.element_type]
    inflated = 0
    stream = zlib.decompressobj()
    with header.data_file.open("rb") as fh:
        head = fh.read(2)
        # RFC 1950: compression method 8 (deflate) in the low nibble, and the 16-bit head divisible by 31
        if len(head) < 2 or head[0] & 0x0F != 8 or (head[0] * 256 + head[1]) % 31:
            raise ScanError(
                f"{header.data_file}: CompressedData = True but the file is not zlib data "
                f"(starts with {head.hex() or 'nothing'})"
            )
        piece = head
        try:
            while piece and not stream.eof:
                inflated += len(stream.decompress(piece, 0))
                if inflated > expected:
                    break
                piece = fh.read(4 << 20)
            inflated += len(stream.flush())
        except zlib.error as exc:
            raise ScanError(f"{header.data_file}: corrupt zlib data after {inflated} bytes ({exc})") from None
    if inflated != expected or not stream.eof:
        what = "larger than declared" if inflated > expected else "truncated"
        raise ScanError(
            f"{header.data_file}: {what}: inflates to {inflated} bytes{'' if stream.eof else ' (the zlib stream ends early)'}, "
            f"expected {expected} for DimSize {' '.join(map(str, header.grid.size))} of {header.element_type}"
        )


NUMPY_TYPES = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i8",
    "MET_ULONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}


def read_slice(header: ScanHeader, k: int) -> np.ndarray | None:
    """Slice ``k`` (z index) of an uncompressed scan as the header reads it, (y, x); None for .zraw.

    Reads ``size_x * size_y`` values only (memory-mapped), with the header's ElementType and byte
    order: what the full read would give for that slice, at a fraction of its cost.
    """
    if header.compressed:
        return None
    fields = parse_header(header.path)
    msb = next((fields[k_].strip().lower() == "true" for k_ in BYTE_ORDER_KEYS if k_ in fields), False)
    dtype = np.dtype(NUMPY_TYPES[header.element_type]).newbyteorder(">" if msb else "<")
    nx, ny, nz = header.grid.size
    if not 0 <= k < nz:
        raise ValueError(f"Expected a slice index in [0, {nz}), got {k}")
    data = np.memmap(header.data_file, dtype=dtype, mode="r", offset=k * nx * ny * dtype.itemsize, shape=(ny, nx))
    return np.array(data)


def data_file_of(path: str | Path) -> Path:
    """The data file a header names, or ``<uid>.raw`` beside it when the header cannot be read yet
    (the demo's scans are made by a rule; a bad header is reported by the pre-flight check)."""
    path = Path(path)
    try:
        name = parse_header(path).get("ElementDataFile") if path.is_file() else None
    except ScanError:
        name = None
    if not name or name.upper() == "LOCAL" or name.upper().startswith("LIST"):
        return path.with_suffix(".raw")
    return path.parent / name


def read_image(path: str | Path) -> sitk.Image:
    """Check the scan, then read it with SimpleITK; the geometry SimpleITK read must be the one
    :func:`read_header` checked (origin, spacing, size, direction), else the scan is refused naming
    what differs: one reading of each header, whoever reads it."""
    header = check_scan(path)
    try:
        image = sitk.ReadImage(str(header.path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise ScanError(f"{header.path}: SimpleITK cannot read it: {first}") from None
    read = grid_of(image)
    differ = [
        f"{name} {list(a)} (SimpleITK) vs {list(b)} (header)"
        for name, a, b in (
            ("origin", read.origin, header.grid.origin),
            ("spacing", read.spacing, header.grid.spacing),
            ("size", read.size, header.grid.size),
            ("direction", read.direction, header.grid.direction),
        )
        if not np.allclose(a, b, rtol=1e-6, atol=1e-6)
    ]
    if differ:
        raise ScanError(f"{header.path}: the header reads two ways: " + "; ".join(differ))
    return image


def grid_of(image: sitk.Image) -> VolumeGrid:
    """The (x, y, z) geometry of a SimpleITK image."""
    return VolumeGrid(image.GetOrigin(), image.GetSpacing(), image.GetSize(), image.GetDirection())


def write_scan(path: str | Path, volume_zyx: np.ndarray, grid: VolumeGrid) -> None:
    """Write an int16 (z, y, x) volume as ``.mhd`` + ``.raw`` with the given geometry."""
    if tuple(volume_zyx.shape) != grid.shape_zyx:
        raise ValueError(f"Expected a volume of shape {grid.shape_zyx} (z, y, x), got {volume_zyx.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume_zyx))
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    sitk.WriteImage(image, str(path), useCompression=False)
