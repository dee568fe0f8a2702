"""LDCT input/target mode for the MPI extraction: one work unit per selected slice pair.

Inputs: ``{"pairs": [T1.tsv, T2.tsv, ...]}``, one or more pair tables written by
:mod:`ctpatch.ldct.pairing` (a single path string is accepted too; on the command line ``--pairs``
of :mod:`ctpatch.ldct.extract`, one table per group).  Several tables are several patients in one
run.  Only the rows with ``selected`` true are used; they are
concatenated in the given table order (within a table in its ``pair_index`` order), and the
**pair_index of this run is the row number in that concatenation** (0, 1, ...).  So the
same tables in the same order give the same pair_index; changing the order of the tables
renumbers the pairs (the provenance still names patient and files).  Each unit is one
pair, key ``"<patient>/<input file name>"``, cost 1; (patient, input file name) must be
unique over the run because it keys the random draws.

Settings: the ``ldct`` section of the config (keys, defaults and meanings are in the schema,
``ctpatch/schemas/config.schema.yaml``, and in ``config/README.md``) plus ``seed`` and
``buffer_patches``, as :func:`ctpatch.settings.ldct_settings` completes and checks them.  The
defaults are the reference program's (patch p55, no normalization, torch layout, float16, one
file, no shuffling, every augmentation off).

An integer ``output.dtype`` is only accepted when every value stays an integer: normalization
``none`` and no downscaling, dose blending or blur/noise (:func:`ctpatch.settings.check_ldct`
raises naming the key); the range of each patch is checked again when it is written (the error
names the files).  float16 is checked against overflow (65504); its rounding is reported by the
verification.

Per pair, in SPEC section 2's order: read both slices (raw stored values), normalize the pair,
make the downscaled copies of the normalized input and target and of the *raw* target,
compute each copy's patch grid, keep the corners whose raw-target patch passes the air
threshold, then for each kept corner cut input and target at that corner (filled with the
copy's minimum), add the rotated and the flipped copy, then the dose-blended copies of those,
and finally blur or noise a share of the pair's inputs.  Patches are written one by one, so a
rank holds at most ``buffer_patches`` patches per dataset plus one slice pair and its copies.

Random draws: ``keyed_rng(seed, patient, input file name, name)`` with ``name`` =
``("rot_flip", c)`` (k and the flip of copy number c, 0 for the slice itself, with
``rot_augment.draw`` per_copy, the reference's way), ``"rot_flip"`` (k and the flip of each kept
patch, in patch order, with per_patch), ``"dose_blend"`` (one
``f ~ U(low, high)`` per slice pair, as the reference drew one per image), ``"blur_noise"``
(which patches: ``round(blur_share·n)`` blurred, then ``round(noise_share·n)`` of the others
noised; a patch is never both, as in the reference) and ``"noise"`` (the noise fields).
Nothing depends on the rank.

Within a pair the patches come in this order (``patch_index`` 0, 1, ...): for each copy
(factor 1, then the factors in order), for each kept corner (row-major): the patch, its
rotation, its flip, then the blended versions of these three.

Super-resolution (``super_resolution.enabled``, SPEC section 2c, :mod:`ctpatch.core.sr`): after the
downscale copies, each copy of the input and target (and of the raw target) is cropped to a
multiple of ``scale`` and the input copy is block-averaged by ``scale``; the grid is cut on the LR
input copy (LR edge, padding), the target patch at LR corner x scale with the HR edge, the air
threshold judged on the raw HR target patch.  Rotation and flip turn the LR and the HR patch the
same way; dose blending uses the target's LR version (block mean of the HR patch's footprint) as
its base (:func:`ctpatch.core.sr.sr_dose_blend`).  The blend is computed before the turn (for
equal-sized patches the result is the same bit for bit: the blend is pixelwise with one shift
per patch).

Provenance: table ``patch`` (:func:`patch_dtype`, one row per patch, aligned with the
datasets ``input`` and ``target``) and table ``pair`` (:func:`pair_dtype`, one row per pair).
In super-resolution ``corner`` and ``copy_shape`` are the LR input's and ``hr_corner``,
``hr_copy_shape`` the target's (``hr_corner = corner x scale``).  Each row also records the
value statistics of its stored patches (:data:`STAT_FIELDS`: min, max, NaN/inf and dtype-limit
counts of ``input`` and ``target`` after the cast), taken from the min and max the value check
computes anyway, so they cost nothing measurable; being rows, they travel with their patch through
the blocks to rank 0, the shuffle and the parts, and the files stay byte-identical for any rank
count.  The verification takes the values from them instead of decoding every patch.

One pass over a slice pair in SPEC order, shared by the plain and the super-resolution modes (what
differs is the pair unit, :mod:`ctpatch.ldct.units`), with the provenance record types it fills; the
numerics it calls live in grid, normalize, augment and sr.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.augment import (
    box_blur,
    choose_share,
    downscale_copies,
    draw_blend_factor,
    draw_rot_flip,
    passes_air_threshold,
    white_noise,
)
from ctpatch.core.grid import cut_patch, grid_corners
from ctpatch.core.normalize import normalize_pair
from ctpatch.core.rng import keyed_rng
from ctpatch.core.values import dtype_limits
from ctpatch.engine.blocks import Unit
from ctpatch.io.dicom import read_slice
from ctpatch.ldct.units import unit_for
from ctpatch.settings import ldct_job
from ctpatch.settings.types import LdctPatches
from ctpatch.store.sink import PatchSink
from ctpatch.store.writer import Specs

INTEGER_DTYPES = ("int16", "uint16")
#: per-patch value statistics in table ``patch``, each field once per dataset (``input_min``, ...)
STAT_FIELDS = (("min", "<f4"), ("max", "<f4"), ("nonfinite", "<i4"), ("at_limits", "<i4"))
PAIR_COLUMNS = (
    "patient",
    "pair_index",
    "input_path",
    "target_path",
    "slice_z",
    "instance",
    "rows",
    "cols",
    "selected",
    "input_series",
    "target_series",
    "input_sha256",
    "target_sha256",
)


# ------------------------------------------------------------------------------- settings
def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def grid_sizes(settings: LdctPatches) -> tuple[int, int, int, int]:
    """(scale, LR edge, HR edge, padding): the input patch edge, the target patch edge, the grid's
    overlap on the input; in plain mode (scale 1) both edges are the patch edge (:mod:`ctpatch.ldct.units`)."""
    unit = unit_for(settings)
    return unit.scale, unit.lr_edge, unit.edge, unit.padding


def copy_factors(settings: LdctPatches) -> tuple[float, ...]:
    """Scale of every copy of a slice: 1.0, then the downscale factors when enabled."""
    ds = settings.ds_augment
    return (1.0, *(float(f) for f in ds.factors)) if ds.enabled else (1.0,)


def multiplier(settings: LdctPatches) -> int:
    """Patches written per kept grid patch: x3 with rotation, x2 with dose blending."""
    return (3 if settings.rot_augment.enabled else 1) * (2 if settings.dose_blend.enabled else 1)


def patch_shapes(settings: LdctPatches) -> dict[str, tuple[int, int, int]]:
    """Shape of one stored patch per dataset (``input``, ``target``): (1, H, W) for torch,
    (H, W, 1) for tf; in super-resolution the input is the LR edge, the target the HR edge."""
    _, lr, hr, _ = grid_sizes(settings)
    torch = settings.output.layout == "torch"
    return {name: ((1, e, e) if torch else (e, e, 1)) for name, e in (("input", lr), ("target", hr))}


# ------------------------------------------------------------------------------- pair tables
def read_pair_tables(paths) -> pd.DataFrame:
    """The selected rows of one or more pair tables, concatenated in the given order.

    Adds the columns ``table`` (the file) and ``table_pair_index`` (the row's pair_index in its
    table) and renumbers ``pair_index`` 0, 1, ... over the concatenation.  Raises ValueError
    naming the file for a missing table or column, and for a (patient, input file name) that
    occurs twice.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("inputs.pairs: expected at least one pair table, got none")
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"{path}: pair table not found")
        df = pd.read_csv(
            path,
            sep="\t",
            dtype={k: str for k in ("patient", "input_path", "target_path", "input_series", "target_series")},
            keep_default_na=False,
            na_values={"slice_z": [""], "instance": [""]},
        )
        missing = [c for c in PAIR_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: not a pair table: missing columns {missing} (found {list(df.columns)})")
        sel = df["selected"]
        if sel.dtype != bool:
            sel = sel.astype(str).str.strip().str.lower().map({"true": True, "false": False, "1": True, "0": False})
            if sel.isna().any():
                raise ValueError(f"{path}: column 'selected' must be True or False")
        df = df[sel.astype(bool).to_numpy()].sort_values("pair_index", kind="stable").copy()
        df["table"] = str(path)
        df["table_pair_index"] = df["pair_index"].astype(np.int64)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    table["pair_index"] = np.arange(len(table), dtype=np.int64)
    table["input_name"] = [Path(p).name for p in table["input_path"]]
    dup = table.duplicated(["patient", "input_name"], keep=False)
    if dup.any():
        first = table[dup].iloc[0]
        raise ValueError(
            f"{first['table']}: pair {first['patient']}/{first['input_name']} occurs more than once in "
            f"the pair tables {[str(p) for p in paths]} (it keys the random draws, so it must be unique)"
        )
    return table


def _width(values) -> int:
    return max([1] + [len(str(v).encode()) for v in values])


def patch_dtype(patient_width: int, path_width: int, extra: tuple = ()) -> np.dtype:
    """Provenance of one patch (table ``patch``).

    ``corner`` is the (row, col) of the patch's top-left pixel in the grid of its copy (shape
    ``copy_shape``, scale ``downscale`` of the slice), before rotation or flip; ``rot_k`` is the
    number of 90° counter-clockwise turns (0: none); ``flip`` is ``b""``, ``b"lr"`` or ``b"ud"``;
    ``blend`` the dose-blend factor f (NaN: not blended); ``blur`` / ``noise`` whether the input
    was blurred / given noise.  ``slice_z`` is NaN and ``instance`` -1 when the slice has none.
    ``spacing`` is the (row, col) pixel spacing of the patch in mm: the source slice's PixelSpacing times
    its rows (cols) over its copy's rows (cols), i.e. about PixelSpacing / ``downscale`` (the target's;
    a super-resolution input's pixels are ``scale`` times larger);
    ``slice_thickness`` the source slice's SliceThickness in mm (NaN for either when the header has none).
    ``extra``: the fields of the unit (:attr:`ctpatch.ldct.units.PlainUnit.fields`); in
    super-resolution ``corner``/``copy_shape`` are the LR input's and the fields ``hr_corner``/``hr_copy_shape``
    the HR target's.

    Value statistics of the stored patch (:data:`STAT_FIELDS`, as stored, after the cast to the
    output dtype), per dataset ``input`` and ``target``: ``<name>_min`` / ``<name>_max`` (its finite
    values; every dtype ctpatch writes is exact in float32), ``<name>_nonfinite`` (NaN/inf count;
    0 in what ctpatch writes, the extraction refuses them) and ``<name>_at_limits`` (for int16 the
    values at -32768 or 32767, for uint16 at 65535; 0 of uint16 is air; 0 for float dtypes).  The
    verification checks values from these, not by decoding every patch again.
    """
    stats = [(f"{name}_{stat}", kind) for name in ("input", "target") for stat, kind in STAT_FIELDS]
    return np.dtype(
        [
            ("pair_index", "<i4"),
            ("patch_index", "<i4"),
            ("patient", f"S{patient_width}"),
            ("input_file", f"S{path_width}"),
            ("target_file", f"S{path_width}"),
            ("slice_z", "<f8"),
            ("instance", "<i4"),
            ("downscale", "<f8"),
            ("copy_shape", "<i4", (2,)),
            ("corner", "<i4", (2,)),
            ("rot_k", "<i1"),
            ("flip", "S2"),
            ("blend", "<f8"),
            ("blur", "?"),
            ("noise", "?"),
            *stats,
            ("spacing", "<f8", (2,)),
            ("slice_thickness", "<f8"),
            *extra,
        ]
    )


def pair_dtype(patient_width: int, path_width: int) -> np.dtype:
    """Summary of one slice pair (table ``pair``): grid patches cut over all copies, kept after the air
    threshold, written after the augmentations, the pair's blend factor (NaN: none), and the input
    slice's PixelSpacing (row, col) and SliceThickness in mm (NaN: not in its header)."""
    return np.dtype(
        [
            ("pair_index", "<i4"),
            ("patient", f"S{patient_width}"),
            ("input_file", f"S{path_width}"),
            ("target_file", f"S{path_width}"),
            ("slice_z", "<f8"),
            ("instance", "<i4"),
            ("patches_cut", "<i4"),
            ("patches_kept", "<i4"),
            ("patches_written", "<i4"),
            ("blend", "<f8"),
            ("pixel_spacing", "<f8", (2,)),
            ("slice_thickness", "<f8"),
        ]
    )


def _int_or(value, default: int) -> int:
    return default if value is None or pd.isna(value) else int(value)


class Job:
    """One extraction run of the LDCT mode: ``Job(settings, inputs)`` (see the module docstring).

    ``inputs["pairs"]`` is one or more pair table files, or a ``pandas.DataFrame`` already read
    (the columns :func:`read_pair_tables` returns, e.g. one pair built in memory).
    """

    mode = "ldct"
    splittable = False  # a pair is one block: its patch count is known only once it is cut

    def __init__(self, settings: LdctPatches | Mapping, inputs: dict):
        self.settings = ldct_job(settings)
        if not isinstance(inputs, dict) or "pairs" not in inputs:
            raise ValueError(f"inputs: expected a mapping with key 'pairs', got {inputs!r}")
        pairs = inputs["pairs"]
        self.pairs = pairs.reset_index(drop=True) if isinstance(pairs, pd.DataFrame) else read_pair_tables(pairs)
        s = self.settings
        self.seed = int(s.seed)
        self.shuffle = bool(s.output.shuffle)
        # with output.combined the nsplit parts are the combined file's; each patient's file is one
        self.parts = 1 if s.output.combined != "none" else int(s.output.nsplit)
        self.pair_unit = unit_for(s)  # plain or super-resolution: what differs in the pass over a pair
        self.last = s.patch.last
        self.factors = copy_factors(s)
        self.dtype = np.dtype(s.output.dtype)
        wp = _width(self.pairs["patient"])
        wf = _width(list(self.pairs["input_path"]) + list(self.pairs["target_path"]))
        self.patch_dtype, self.pair_dtype = patch_dtype(wp, wf, self.pair_unit.fields), pair_dtype(wp, wf)

    def units(self) -> list[Unit]:
        return [Unit(f"{r.patient}/{r.input_name}", int(r.pair_index), 1.0) for r in self.pairs.itertuples()]

    def inputs_identity(self) -> list[list]:
        """Per slice pair, in pair_index order: patient, the two file names, their series uids and the
        sha256 of both files (recorded in the patch files, :mod:`ctpatch.store.identity`)."""
        return [
            [
                str(r.patient),
                Path(str(r.input_path)).name,
                Path(str(r.target_path)).name,
                str(r.input_series),
                str(r.target_series),
                str(r.input_sha256),
                str(r.target_sha256),
            ]
            for r in self.pairs.itertuples()
        ]

    def totals(self, units) -> dict:
        """Rows per provenance table over ``units`` (their ``patches`` counted)."""
        return {"patch": sum(int(u.patches) for u in units), "pair": len(units)}

    def specs(self) -> Specs:
        """Datasets, provenance tables and how they align (:class:`ctpatch.store.writer.Specs`)."""
        dtype = np.dtype(self.settings.output.dtype)  # input and target differ in size in SR mode
        return Specs(
            {name: (shape, dtype) for name, shape in patch_shapes(self.settings).items()},
            {"patch": self.patch_dtype, "pair": self.pair_dtype},
            {"patch": ("input", "target"), "pair": ()},
            self.settings.output.compression,
        )

    # --------------------------------------------------------------------------- one pair
    def _rng(self, row, name: str) -> np.random.Generator:
        return keyed_rng(self.seed, str(row["patient"]), str(row["input_name"]), name)

    def _stored(self, patch: np.ndarray) -> np.ndarray:
        return patch[None] if self.settings.output.layout == "torch" else patch[..., None]

    def _check_values(self, patch: np.ndarray, what: str, row) -> tuple[float, float, int, int]:
        """Refuse a float32 patch the output dtype cannot hold; return :func:`value_stats` of the patch
        as it will be stored, from the min and max computed here (the cast rounds to nearest, which
        keeps the order, so the stored min and max are the cast min and max; no NaN/inf passes)."""
        dt = self.dtype
        lo, hi = float(patch.min()), float(patch.max())
        where = f"pair {row['input_path']} / {row['target_path']}"
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{where}: {what} patch holds NaN or inf")
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            if lo < info.min or hi > info.max or not np.all(patch == np.round(patch)):
                raise ValueError(
                    f"{where}: output.dtype {dt}: {what} values [{lo}, {hi}] are not all integers "
                    f"in [{info.min}, {info.max}]"
                )
        else:
            top = float(np.finfo(dt).max)
            if lo < -top or hi > top:
                raise ValueError(f"{where}: output.dtype {dt}: {what} values [{lo}, {hi}] overflow (max {top})")
        smin, smax = np.array([lo, hi], dtype=np.float32).astype(dt)
        at = sum(int(np.count_nonzero(patch == v)) for v in dtype_limits(dt) if v in (lo, hi))
        return float(smin), float(smax), 0, at

    def _kept_corners(self, copies_in, copies_raw, copies_raw_uncropped) -> tuple[list[np.ndarray], int]:
        """Per copy, the input-grid corners whose raw-target patch (at corner x scale, HR edge) passes
        the air threshold; and the grid size.  ``air_threshold.count: reference`` judges the raw target
        before the super-resolution crop, counting against the input edge squared (the reference's
        main_sr.py); in plain mode both are the same."""
        air, pu = self.settings.air_threshold, self.pair_unit
        reference = air.count == "reference"
        count_of = pu.lr_edge * pu.lr_edge if reference else None
        judged = copies_raw_uncropped if reference else copies_raw
        kept, cut = [], 0
        for (_, inp), (_, raw) in zip(copies_in, judged):
            corners = grid_corners(inp.shape, pu.lr_edge, pu.padding, self.last)
            cut += len(corners)
            if air.enabled:
                fill = raw.min()
                keep = [
                    passes_air_threshold(
                        cut_patch(raw, (int(r) * pu.scale, int(c) * pu.scale), pu.edge, fill),
                        air.value,
                        air.fraction,
                        air.mean,
                        count_of,
                    )
                    for r, c in corners
                ]
                corners = corners[np.asarray(keep, dtype=bool)]
            kept.append(corners)
        return kept, cut

    def _turned(self, a: np.ndarray, b: np.ndarray, turn) -> list[tuple]:
        """The pair itself, then (with ``turn`` = (k, flip)) its rotation and its flip: (input, target, rot_k, flip)."""
        out = [(a, b, 0, b"")]
        if turn is not None:
            out += self.pair_unit.rot_flip(a, b, *turn)
        return out

    def _copies(self, row: dict):
        """Read and normalize one pair; its copies (input, target), the kept corners per copy, the grid
        size, and the input slice's geometry in mm: (PixelSpacing (row, col), SliceThickness, each copy's
        real pixel spacing (row, col))."""
        s = self.settings
        where = f"pair {row['input_path']} / {row['target_path']}"
        (ld, spacing, thickness), (fd, _, _) = read_slice(row["input_path"]), read_slice(row["target_path"])
        expected = (int(row["rows"]), int(row["cols"]))
        if ld.shape != expected or fd.shape != expected:
            raise ValueError(
                f"{where}: expected {expected[0]}x{expected[1]} pixels as in {row.get('table', 'the pair table')}, got "
                f"{ld.shape} and {fd.shape}"
            )
        try:
            ld_n, fd_n = normalize_pair(ld, fd, s.normalization, **asdict(s.normalization_constants))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        factors = self.factors[1:]
        copies_in = downscale_copies(ld_n, factors)
        copies_tg = downscale_copies(fd_n, factors)
        if s.normalization == "none" or not s.air_threshold.enabled:
            copies_raw = copies_tg  # same values (none), or not needed
        else:
            copies_raw = downscale_copies(fd, factors)
        uncropped = copies_raw
        # each copy's real pixel spacing: the slice's field of view over the copy's (uncropped) pixels
        full = fd.shape
        spacings = [(spacing[0] * full[0] / img.shape[0], spacing[1] * full[1] / img.shape[1]) for _, img in copies_tg]
        copies_in, copies_tg, copies_raw = self.pair_unit.copies(copies_in, copies_tg, copies_raw, where)  # SR: SPEC 2c
        kept, cut = self._kept_corners(copies_in, copies_raw, uncropped)
        return copies_in, copies_tg, kept, cut, (spacing, thickness, spacings)

    def count(self, unit: Unit) -> int:
        """Patches the pair ``unit`` gives (reads it and applies the air threshold; nothing is cut)."""
        _, _, kept, _, _ = self._copies(self.pairs.iloc[unit.index].to_dict())
        return sum(len(k) for k in kept) * multiplier(self.settings)

    def run(self, unit: Unit, w: PatchSink, start: int = 0, stop: int | None = None) -> dict:
        """Cut, augment and write the patches of one slice pair into the sink ``w``; return its counts.

        ``w`` follows the patch-sink protocol (:class:`ctpatch.store.sink.PatchSink`); patches are handed
        over as float32 in the output layout and cast to the output dtype by the sink.  A pair is
        cut whole (``start`` 0, ``stop`` None).
        """
        if start != 0 or stop is not None:
            raise ValueError(f"an LDCT pair is cut whole, got the span [{start}, {stop})")
        s, pu = self.settings, self.pair_unit
        row = self.pairs.iloc[unit.index].to_dict()
        copies_in, copies_tg, kept, cut, (spacing, thickness, spacings) = self._copies(row)
        n_kept = sum(len(k) for k in kept)
        n = n_kept * multiplier(s)

        rot, blend_on, bn = s.rot_augment.enabled, s.dose_blend.enabled, s.blur_noise
        rng_rot = self._rng(row, "rot_flip")
        f = (
            draw_blend_factor(self._rng(row, "dose_blend"), s.dose_blend.low, s.dose_blend.high)
            if blend_on
            else math.nan
        )
        blur = np.zeros(n, dtype=bool)
        noise = np.zeros(n, dtype=bool)
        if bn.enabled and n:
            rng_bn = self._rng(row, "blur_noise")
            blur = choose_share(rng_bn, n, bn.blur_share)
            rest = np.flatnonzero(~blur)
            k = min(round_half_up(bn.noise_share * n), len(rest))
            noise[rng_bn.choice(rest, size=k, replace=False)] = True
        rng_noise = self._rng(row, "noise")

        patient, in_file, tg_file = (str(row[k]).encode() for k in ("patient", "input_path", "target_path"))
        slice_z = math.nan if pd.isna(row["slice_z"]) else float(row["slice_z"])
        instance = _int_or(row["instance"], -1)
        j = 0
        per_copy = s.rot_augment.draw == "per_copy"
        for ci, ((factor, img_in), (_, img_tg), corners) in enumerate(zip(copies_in, copies_tg, kept)):
            fill_in, fill_tg = img_in.min(), img_tg.min()
            shape = img_in.shape
            if rot and per_copy:  # the reference's draw: one k and one flip per image copy (SPEC 2b)
                copy_turn = draw_rot_flip(self._rng(row, ("rot_flip", ci)))
            for r, c in corners:
                corner = (int(r), int(c))
                hr_corner = (corner[0] * pu.scale, corner[1] * pu.scale)
                a = cut_patch(img_in, corner, pu.lr_edge, fill_in)
                b = cut_patch(img_tg, hr_corner, pu.edge, fill_tg)
                turn = (copy_turn if per_copy else draw_rot_flip(rng_rot)) if rot else None
                out = [(x, y, k, fl, math.nan) for x, y, k, fl in self._turned(a, b, turn)]
                if blend_on:
                    ba, bb = pu.blend(a, b, f)
                    out += [(x, y, k, fl, f) for x, y, k, fl in self._turned(ba, bb, turn)]
                for x, y, k, fl, bf in out:
                    if blur[j]:
                        x = box_blur(x, bn.blur_size)
                    if noise[j]:
                        x = white_noise(x, rng_noise, bn.noise_scale)
                    x = x.astype(np.float32, copy=False)
                    y = y.astype(np.float32, copy=False)
                    stats = (*self._check_values(x, "input", row), *self._check_values(y, "target", row))
                    w.add("input", self._stored(x))
                    w.add("target", self._stored(y))
                    w.add_row(
                        "patch",
                        (
                            unit.index,
                            j,
                            patient,
                            in_file,
                            tg_file,
                            slice_z,
                            instance,
                            factor,
                            shape,
                            corner,
                            k,
                            fl,
                            bf,
                            bool(blur[j]),
                            bool(noise[j]),
                            *stats,
                            spacings[ci],
                            thickness,
                            *pu.provenance(hr_corner, img_tg.shape),
                        ),
                    )
                    j += 1
        w.add_row(
            "pair", (unit.index, patient, in_file, tg_file, slice_z, instance, cut, n_kept, j, f, spacing, thickness)
        )
        return {"cut": cut, "kept": n_kept, "written": j}
