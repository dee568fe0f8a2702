"""Typed, frozen settings: one dataclass per section of the config, built once from a validated mapping.

The schema (``ctpatch/schemas/config.schema.yaml``) stays the only home of defaults: a class here has
no defaults, and :func:`build` takes a mapping that validation has completed.  Every field of every
class is a key of the schema and every ``Literal`` a schema enum (``tests/unit/test_settings_types.py``
walks both), so code that reads ``s.patch.size`` reads exactly what the schema describes.

The two **job** classes (:class:`LunaPatches`, :class:`LdctPatches`) are the ``patches`` scope of each
mode (:func:`ctpatch.settings.scopes.scope_settings`): the section's keys that decide a patch, plus
``seed``; :func:`ctpatch.settings.luna16_job` and
:func:`ctpatch.settings.ldct_job` complete and type a partial mapping.

>>> s = build(Normalize, {"hu_min": -1000.0, "hu_max": 400.0, "clip": True, "center": 0.25})
>>> s.hu_max - s.hu_min
1400.0
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Codec = Literal["blosc2-zstd", "blosc2-lz4", "lzf", "gzip", "none"]
Mode = Literal["luna16", "ldct"]


# ------------------------------------------------------------------------------ top level
@dataclass(frozen=True)
class Extract:
    tasks: int
    nodes: int
    mpi: str
    buffer_patches: int


@dataclass(frozen=True)
class Demo:
    subsets: int
    scans_per_subset: int
    size_xy: int
    slices: tuple[int, ...]
    spacing_xy: tuple[float, ...]
    spacing_z: tuple[float, ...]
    nodules_per_scan: tuple[int, ...]
    diameter_mm: tuple[float, ...]
    scans_without_nodules: int
    edge_nodule_every: int
    candidates_per_scan: int
    noise_hu: float


# ------------------------------------------------------------------------------ LUNA16
@dataclass(frozen=True)
class Resample:
    enabled: bool
    spacing_mm: float
    interpolator: Literal["bspline", "linear", "nearest"]


@dataclass(frozen=True)
class Normalize:
    hu_min: float
    hu_max: float
    clip: bool
    center: float


@dataclass(frozen=True)
class Plausibility:
    enabled: bool
    air_hu: float
    min_air_share: float
    max_share_at_hu_max: float
    max_share_at_hu_min: float
    hu_range: tuple[float, ...]


@dataclass(frozen=True)
class LunaPatch:
    size: int
    stride: int
    shifts_per_side: int
    directions: tuple[Literal["x", "y", "z", "xy", "xz", "yz", "xyz"], ...]
    label_pool: int


@dataclass(frozen=True)
class Negatives:
    ratio: float
    strategy: Literal["random", "avoid_nodules", "candidates"]
    scans: Literal["with_nodules", "all"]
    max_tries: int


@dataclass(frozen=True)
class LunaOutput:
    dtype: Literal["float32", "float16", "float64"]
    compression: Codec
    shuffle: bool
    layout: Literal["full", "crops", "volumes"]
    brick: int


@dataclass(frozen=True)
class Luna16:
    root: str
    subsets: tuple[str, ...]
    annotations: str
    candidates: str
    unknown_series: Literal["fail", "warn"]
    resample: Resample
    normalize: Normalize
    plausibility: Plausibility
    duplicate_annotations: Literal["fail", "drop"]
    patch: LunaPatch
    negatives: Negatives
    output: LunaOutput


# ------------------------------------------------------------------------------ LDCT
@dataclass(frozen=True)
class LdctPatch:
    code: Literal["p96", "p75", "p64", "p55", "p54", "p42", "p32", "p24", "p12", None]
    edge: int | None
    padding: int | None
    last: Literal["fill", "shift"]


@dataclass(frozen=True)
class NormalizationConstants:
    dicom_scale: float
    max_value: float


@dataclass(frozen=True)
class DsAugment:
    enabled: bool
    factors: tuple[float, ...]


@dataclass(frozen=True)
class AirThreshold:
    enabled: bool
    value: float
    fraction: float
    mean: float
    count: Literal["target", "reference"]


@dataclass(frozen=True)
class RotAugment:
    enabled: bool
    draw: Literal["per_copy", "per_patch"]


@dataclass(frozen=True)
class DoseBlend:
    enabled: bool
    low: float
    high: float


@dataclass(frozen=True)
class BlurNoise:
    enabled: bool
    blur_share: float
    noise_share: float
    noise_scale: float
    blur_size: int


@dataclass(frozen=True)
class SuperResolution:
    enabled: bool
    scale: int
    footprint: Literal["reference", "exact"]


@dataclass(frozen=True)
class LdctOutput:
    layout: Literal["torch", "tf"]
    dtype: Literal["float16", "float32", "int16", "uint16"]
    compression: Codec
    nsplit: int
    shuffle: bool
    combined: Literal["none", "virtual", "copy"]


Normalization = Literal[
    "none",
    "unity_independent",
    "unity_wrt_ld",
    "std_independent",
    "std_wrt_ld",
    "max_val_independent",
    "max_val_wrt_ld",
    "dicom_unity",
    "dicom_std",
    "set_max_val",
]


@dataclass(frozen=True)
class Ldct:
    root: str
    patients: tuple[str, ...]
    input_dir: str
    target_dir: str
    pair_by: Literal["position", "name"]
    on_error: Literal["fail", "drop"]
    random_n: int
    patch: LdctPatch
    normalization: Normalization
    normalization_constants: NormalizationConstants
    ds_augment: DsAugment
    air_threshold: AirThreshold
    rot_augment: RotAugment
    dose_blend: DoseBlend
    blur_noise: BlurNoise
    super_resolution: SuperResolution
    output: LdctOutput


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    mode: Mode
    seed: int
    results: str
    extract: Extract
    demo: Demo
    luna16: Luna16
    ldct: Ldct


# ------------------------------------------------------------------------------ what a step reads
@dataclass(frozen=True)
class LunaConvert:
    """What decides a converted LUNA16 volume (scope ``convert``); ``plausibility`` None: not judged."""

    resample: Resample
    normalize: Normalize
    plausibility: Plausibility | None


@dataclass(frozen=True)
class LunaPatches:
    """What decides a LUNA16 patch (scope ``patches``): the section's patch, negatives, output,
    normalize, resample and duplicate-annotation keys, and the seed."""

    mode: Literal["luna16"]
    seed: int
    duplicate_annotations: Literal["fail", "drop"]
    resample: Resample
    normalize: Normalize
    patch: LunaPatch
    negatives: Negatives
    output: LunaOutput


@dataclass(frozen=True)
class LdctPatches:
    """What decides an LDCT patch from its slice pair (scope ``patches``): the ``ldct`` section without
    the keys that choose the pairs (``settings.scopes.LDCT_PAIRING``), and the seed."""

    mode: Literal["ldct"]
    seed: int
    patch: LdctPatch
    normalization: Normalization
    normalization_constants: NormalizationConstants
    ds_augment: DsAugment
    air_threshold: AirThreshold
    rot_augment: RotAugment
    dose_blend: DoseBlend
    blur_noise: BlurNoise
    super_resolution: SuperResolution
    output: LdctOutput


# ------------------------------------------------------------------------------ building and reading back
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _value(kind, value, where: str):
    """``value`` as ``kind``: a dataclass from a mapping, a tuple from a list; other values as they are
    (validation has checked their type)."""
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType) and value is not None:  # X | None: the X
        inner = [k for k in typing.get_args(kind) if k is not type(None)]
        if len(inner) == 1:
            return _value(inner[0], value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def build(cls, data: Mapping, where: str = ""):
    """``cls`` (a dataclass of this module) from a complete mapping; extra keys are ignored.

    Raises ``KeyError`` naming the dotted key a field lacks: a mapping that validation did not complete.
    """
    if isinstance(data, cls):
        return data
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}{f.name}"
        if f.name not in data:
            raise KeyError(f"settings: expected key {key!r} ({cls.__name__}), got only {sorted(data)}")
        values[f.name] = _value(hints[f.name], data[f.name], f"{key}.")
    return cls(**values)


def enums(cls) -> dict[str, tuple]:
    """Field name -> the allowed values of each ``Literal`` field of ``cls`` (tuple items included).

    >>> enums(RotAugment)
    {'draw': ('per_copy', 'per_patch')}
    """
    out = {}
    for name, kind in _hints(cls).items():
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        if typing.get_origin(kind) is Literal:
            out[name] = typing.get_args(kind)
    return out
