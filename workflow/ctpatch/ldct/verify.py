"""Verify the merged LDCT patch file(s) of one run against its pair table(s) and settings.

:func:`verify_ldct` is called by ``python -m ctpatch.ldct.verify``.  It checks, over
all parts (``output.nsplit`` files) together:

* structure: every part has the datasets ``input`` and ``target`` and the provenance tables
  ``patch`` (one row per patch, as many rows as the datasets) and ``pair``; the table ``pair``
  is the same in every part;
* shapes and dtype: (N, 1, E, E) for layout torch, (N, E, E, 1) for tf, E the patch edge;
  the dtype of ``output.dtype``;
* counts: every selected pair of the pair table(s) appears in table ``pair`` (same
  pair_index, patient and files) and no other; per pair ``patches_cut`` equals the grid size
  computed from the table's rows x cols and the settings, ``patches_kept <= patches_cut``,
  ``patches_written = patches_kept x multiplier`` (x3 rotation, x2 dose blend); the sum of
  ``patches_written`` equals the number of patches across the parts, and each pair's patches
  carry patch_index 0 .. patches_written - 1 exactly once;
* provenance fields: files agree with the pair row, corners inside their copy (in
  super-resolution the LR corner, with ``hr_corner = corner x scale`` and ``hr_copy_shape =
  copy_shape x scale``: the footprint relation), rot_k in 0..3,
  with ``rot_augment.draw`` per_copy one rot_k and one flip per pair and copy,
  flip in {"", "lr", "ud"} and never with a rotation, blend NaN exactly for unblended patches
  and equal to the pair's factor otherwise, blur and noise never both, and per pair exactly
  ``round(blur_share·n)`` blurred and ``min(round(noise_share·n), n - blurred)`` noised;
* checksums: every stored chunk of ``input`` and ``target`` against its Fletcher32 checksum, in
  place (:func:`ctpatch.store.verify.check_chunks`: the file memory-mapped, nothing decompressed); a
  changed byte is reported naming the file, dataset and row;
* values, from the statistics the extraction records per patch in table ``patch``
  (``input_min``, ``input_max``, ``input_nonfinite``, ``input_at_limits``, the same for
  ``target``; :data:`ctpatch.ldct.job.STAT_FIELDS`), not by decoding the patches again:
  every row must be consistent (counts within the patch size, min <= max, both values of the
  dtype, an at-limits count exactly when min or max is at a limit); then, summed over all
  parts, NaN/inf, the value range of input and target, and for an integer dtype the number of
  values at the dtype's limits (the maximum, and the minimum of a signed dtype; 0 of uint16 is
  ordinary air): a value there may have been clipped or wrapped, a failure;
* rounding of the output dtype.  The values before the cast are gone once written, so two
  figures are reported.  ``dtype_worst_case_error``: half the spacing of the dtype at the
  largest absolute stored value, i.e. the largest error rounding to nearest can have made
  (float16 at raw CT values 2048..4095 has spacing 2, so 1.0); 0 for float32 (the patches are
  computed in float32) and for integer dtypes (only integers are accepted).
  ``sample_roundtrip_error``: a seeded random sample of ``sample`` patches from every part
  (:func:`ctpatch.store.verify.sample_rows`) names the pairs (at most 2 % of them, at least the first
  sampled patch's pair of every part) that are extracted again in memory (the
  same code, settings and seed) and compared with the stored patches of those pairs, in
  whichever part they are: the largest ``|stored - recomputed float32 value|`` is the real
  round-trip error of that sample, and every stored patch must equal the recomputed one cast to
  the dtype bit for bit (else the run was not reproducible, or a file was altered); their
  provenance rows must equal the recomputed ones field by field, and their recorded statistics
  those of their stored values (so statistics that lie are caught where the sample looks).
  This needs the DICOM files of the sample pairs; set ``sample=0`` to skip it.

What the checksums cannot see is a patch rewritten through HDF5 (a new, valid checksum): the
sample catches it when it falls among the sampled pairs; the statistics of the other patches are
trusted as recorded (checked for consistency only).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ctpatch.core.grid import grid_corners
from ctpatch.core.values import dtype_limits, value_stats
from ctpatch.ldct.job import (
    INTEGER_DTYPES,
    STAT_FIELDS,
    Job,
    copy_factors,
    grid_sizes,
    multiplier,
    patch_shapes,
    read_pair_tables,
    round_half_up,
)
from ctpatch.ldct.units import unit_for
from ctpatch.settings import ConfigError, ldct_job, read_settings
from ctpatch.settings.types import LdctPatches
from ctpatch.store.h5 import h5py
from ctpatch.store.identity import differences, digest
from ctpatch.store.sink import MemorySink
from ctpatch.store.verify import SAMPLE, check_chunks, finish_report, read_table, sample_rows

#: share of the pairs a verification recomputes (at least one per part)
SAMPLE_PAIR_SHARE = 0.02


def verify_ldct(patch_paths, pairs_path, settings: LdctPatches | Mapping, sample: int = SAMPLE) -> dict:
    """Check the merged LDCT file(s) ``patch_paths`` (all parts of one run) against the pair
    table(s) ``pairs_path`` (one path or a list, in the extraction's order) and the extraction
    ``settings``: first what made each part (the settings and slice pairs it records,
    :mod:`ctpatch.store.identity`), then everything :func:`_verify_files` checks.  Returns a report
    dict with ``ok``, ``failures`` and the figures."""
    report = _verify_files(patch_paths, pairs_path, settings, sample)
    try:
        s = ldct_job(settings)
        identity = Job(s, {"pairs": read_pair_tables(pairs_path)}).inputs_identity()
    except ValueError:
        return report  # the settings or tables themselves are at fault: reported already
    paths = [patch_paths] if isinstance(patch_paths, (str, Path)) else patch_paths
    made = []
    for path in paths:
        if Path(path).is_file():
            with h5py.File(path, "r") as f:
                made += differences(f.attrs, asdict(s), identity, str(path))
    if made:
        report["failures"] = made + report["failures"]
        report["ok"] = False
    report["settings_digest"] = digest(asdict(s))  # the settings it was checked against
    return report


def verify_ldct_files(patch_paths, settings: LdctPatches | Mapping, complete: bool = True) -> dict:
    """The files of one LDCT extraction checked on their own (``python -m ctpatch verify``): everything
    :func:`_verify_files` checks without the pair tables and the recomputed sample; ``complete`` False
    for some of a run's parts (no counts per pair)."""
    return _verify_files(patch_paths, None, settings, sample=0, complete=complete)


def expected_cut(rows: int, cols: int, settings: LdctPatches) -> int:
    """Grid patches of one slice over all its copies (copy shape = int(shape x factor), SPEC 2b;
    in super-resolution the grid of the LR input: copy shape // scale, LR edge, SPEC 2c)."""
    scale, lr_edge, _, padding = grid_sizes(settings)
    last = settings.patch.last
    total = 0
    for f in copy_factors(settings):
        shape = (int(rows * f), int(cols * f)) if f != 1.0 else (rows, cols)
        shape = (shape[0] // scale, shape[1] // scale)
        total += len(grid_corners(shape, lr_edge, padding, last))
    return total


def _dec(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _verify_files(
    patch_paths, pairs_path, settings: LdctPatches | Mapping, sample: int = SAMPLE, complete: bool = True
) -> dict:
    """Check the merged LDCT file(s) ``patch_paths`` (all parts of one run) against the pair
    table(s) ``pairs_path`` (one path or a list, in the extraction's order) and the extraction
    ``settings``.  Returns a report dict with ``ok``, ``failures`` and the figures.

    ``pairs_path`` None checks the files on their own (``python -m ctpatch verify``): everything but the
    pair table's rows against table ``pair`` and the recomputed sample.  ``complete`` False: the files are
    some of a run's parts, so the counts per pair (which need every part) are not checked."""
    if isinstance(patch_paths, (str, Path)):
        patch_paths = [patch_paths]
    patch_paths = [str(p) for p in patch_paths]
    fails: list[str] = []
    if pairs_path is None:
        tables = []
    else:
        tables = [str(p) for p in pairs_path] if isinstance(pairs_path, (list, tuple)) else [str(pairs_path)]
    report: dict = {"files": patch_paths, "pairs_tables": tables}
    try:
        s = ldct_job(settings)
    except ValueError as exc:
        return {**report, "ok": False, "failures": [f"settings: {exc}"]}
    try:
        table = read_pair_tables(pairs_path) if tables else None
    except ValueError as exc:
        return {**report, "ok": False, "failures": [str(exc)]}
    dtype = np.dtype(s.output.dtype)
    shapes = patch_shapes(s)
    mult = multiplier(s)
    report.update(
        dtype=str(dtype),
        patch_shape=list(shapes["target"]),
        input_patch_shape=list(shapes["input"]),
        super_resolution_scale=unit_for(s).scale,
        layout=s.output.layout,
    )
    if table is not None:
        report["selected_pairs"] = int(len(table))

    files = []
    try:
        for path in patch_paths:
            files.append(h5py.File(path, "r"))
        for path, f in zip(patch_paths, files):
            for name in ("input", "target", "provenance/patch", "provenance/pair"):
                if name not in f:
                    fails.append(f"{path}: dataset {name} missing")
        if fails:
            return {**report, "ok": False, "failures": fails}
        for path, f in zip(patch_paths, files):
            for name in ("input", "target"):
                ds = f[name]
                if ds.shape[1:] != shapes[name]:
                    fails.append(
                        f"{path}: {name}: expected patch shape {shapes[name]} (layout "
                        f"{s.output.layout}), got {ds.shape[1:]}"
                    )
                if ds.dtype != dtype:
                    fails.append(f"{path}: {name}: expected dtype {dtype}, got {ds.dtype}")
            n_in, n_tg, n_prov = f["input"].shape[0], f["target"].shape[0], f["provenance/patch"].shape[0]
            if not n_in == n_tg == n_prov:
                fails.append(f"{path}: {n_in} input, {n_tg} target patches and {n_prov} provenance rows differ")
        if fails:
            return {**report, "ok": False, "failures": fails}

        pair_rows = files[0]["provenance/pair"][...]
        for path, f in zip(patch_paths[1:], files[1:]):
            if read_table(f, "provenance/pair").tobytes() != pair_rows.tobytes():  # bytes: NaN (no blend) != NaN
                fails.append(f"{path}: table 'pair' differs from the one in {patch_paths[0]}")
        total = sum(f["input"].shape[0] for f in files)
        written = int(pair_rows["patches_written"].sum()) if len(pair_rows) else 0
        report.update(
            patches=total,
            patches_per_part=[f["input"].shape[0] for f in files],
            pairs_in_file=int(len(pair_rows)),
            patches_written_sum=written,
            patches_cut=int(pair_rows["patches_cut"].sum()) if len(pair_rows) else 0,
            patches_kept=int(pair_rows["patches_kept"].sum()) if len(pair_rows) else 0,
        )
        if written != total and complete:
            fails.append(f"sum of patches_written in table 'pair' is {written}, but the parts hold {total} patches")

        # pairs: the selected rows of the pair table(s) <-> table 'pair'
        by_index = {int(r["pair_index"]): r for r in pair_rows}
        if len(by_index) != len(pair_rows):
            fails.append("table 'pair' holds a pair_index twice")
        expected_index = set(range(len(table))) if table is not None else set()
        missing = sorted(expected_index - set(by_index))
        extra = sorted(set(by_index) - expected_index)
        if missing:
            names = [f"{table.iloc[i]['patient']}/{table.iloc[i]['input_name']}" for i in missing[:5]]
            fails.append(f"{len(missing)} selected pairs of the pair table(s) missing from table 'pair': {names}")
        if extra and table is not None:
            fails.append(f"table 'pair' holds pair_index {extra[:5]} not among the {len(table)} selected pairs")
        for i in sorted(expected_index & set(by_index)):
            t, r = table.iloc[i], by_index[i]
            who = f"pair {i} ({t['patient']}/{t['input_name']})"
            if (_dec(r["patient"]), _dec(r["input_file"]), _dec(r["target_file"])) != (
                str(t["patient"]),
                str(t["input_path"]),
                str(t["target_path"]),
            ):
                fails.append(
                    f"{who}: table 'pair' names {_dec(r['patient'])} {_dec(r['input_file'])} "
                    f"{_dec(r['target_file'])}, the pair table {t['input_path']} {t['target_path']}"
                )
            cut = expected_cut(int(t["rows"]), int(t["cols"]), s)
            if int(r["patches_cut"]) != cut:
                fails.append(
                    f"{who}: patches_cut {int(r['patches_cut'])}, expected {cut} from the grid of "
                    f"{int(t['rows'])}x{int(t['cols'])} and its copies"
                )
        for i, r in sorted(by_index.items()):  # what table 'pair' says of itself
            who = f"pair {i} ({_dec(r['patient'])}/{Path(_dec(r['input_file'])).name})"
            if int(r["patches_kept"]) > int(r["patches_cut"]):
                fails.append(f"{who}: patches_kept {int(r['patches_kept'])} > patches_cut {int(r['patches_cut'])}")
            if not s.air_threshold.enabled and int(r["patches_kept"]) != int(r["patches_cut"]):
                fails.append(f"{who}: air threshold off, but patches_kept {int(r['patches_kept'])} != patches_cut")
            if int(r["patches_written"]) != int(r["patches_kept"]) * mult:
                fails.append(
                    f"{who}: patches_written {int(r['patches_written'])}, expected patches_kept x {mult} = "
                    f"{int(r['patches_kept']) * mult}"
                )

        # patch provenance, all parts together
        provs = [read_table(f, "provenance/patch") for f in files]
        missing = [name for name in stat_fields() if name not in provs[0].dtype.names]
        if missing:
            return {**report, "ok": False, "failures": fails + [f"table 'patch' lacks the value statistics {missing}"]}
        prov = np.concatenate(provs) if provs else np.zeros(0)
        where = np.concatenate([np.stack([np.full(len(p), k), np.arange(len(p))], axis=1) for k, p in enumerate(provs)])
        fails += _check_provenance(prov, by_index, s, complete)

        # checksums: every stored chunk against its Fletcher32, in place (nothing decoded)
        with ThreadPoolExecutor(2) as pool:  # the sums release the GIL: two datasets at a time
            for found in pool.map(
                lambda ds: check_chunks(ds, threads=1), [f[n] for f in files for n in ("input", "target")]
            ):
                fails += found

        # values: from the statistics recorded per patch
        fails += _check_recorded(prov, where, patch_paths, dtype, shapes, report)

        # rounding: worst case from the largest magnitude, and a recomputed sample
        top = max(abs(v) for name in ("input", "target") for v in report[f"{name}_value_range"] or [0.0])
        if np.issubdtype(dtype, np.floating) and dtype != np.float32:
            report["dtype_worst_case_error"] = float(np.spacing(dtype.type(top))) / 2.0
        else:
            report["dtype_worst_case_error"] = 0.0
        if sample > 0 and table is not None and len(table) and not fails:
            fails += _check_sample(files, patch_paths, prov, where, pairs_path, s, sample, report)
    finally:
        for f in files:
            f.close()
    report["ok"] = not fails
    report["failures"] = fails
    return report


def _check_provenance(prov: np.ndarray, by_index: dict, s: LdctPatches, complete: bool = True) -> list[str]:
    fails = []
    if not len(prov):
        return fails
    keys = prov["pair_index"].astype(np.int64) * (1 << 32) + prov["patch_index"].astype(np.int64)
    if len(np.unique(keys)) != len(keys):
        fails.append("two patches share (pair_index, patch_index)")
    unknown = sorted(set(np.unique(prov["pair_index"]).tolist()) - set(by_index))
    if unknown:
        fails.append(f"patches of pair_index {unknown[:5]} that table 'pair' does not list")
    rot_k, flip = prov["rot_k"].astype(int), prov["flip"]
    if np.any((rot_k < 0) | (rot_k > 3)):
        fails.append("rot_k outside 0..3")
    if not np.all(np.isin(flip, [b"", b"lr", b"ud"])):
        fails.append(f"flip values {sorted(set(flip.tolist()) - {b'', b'lr', b'ud'})} not among '', 'lr', 'ud'")
    if np.any((rot_k > 0) & (flip != b"")):
        fails.append("patches both rotated and flipped")
    if not s.rot_augment.enabled and np.any((rot_k > 0) | (flip != b"")):
        fails.append("rotated or flipped patches although rot_augment is off")
    blended = np.isfinite(prov["blend"])
    if not s.dose_blend.enabled and blended.any():
        fails.append("blended patches although dose_blend is off")
    if np.any(prov["blur"] & prov["noise"]):
        fails.append("patches both blurred and noised")
    if not s.blur_noise.enabled and np.any(prov["blur"] | prov["noise"]):
        fails.append("blurred or noised patches although blur_noise is off")
    factors = copy_factors(s)
    if not np.all(np.isin(prov["downscale"], factors)):
        fails.append(f"downscale factors {sorted(set(prov['downscale'].tolist()) - set(factors))} not among {factors}")
    corner, cshape = prov["corner"], prov["copy_shape"]
    if np.any((corner < 0) | (corner >= cshape)):
        fails.append("patch corners outside their copy")
    fails += unit_for(s).check_rows(prov)  # super-resolution: HR region = LR region x scale
    order = np.argsort(keys, kind="stable")
    pi = prov["pair_index"][order]
    starts = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
    bounds = list(zip(starts, np.r_[starts[1:], len(pi)]))
    bn = s.blur_noise
    for a, b in bounds:
        rows = prov[order[a:b]]
        i = int(rows["pair_index"][0])
        r = by_index.get(i)
        if r is None or not complete:  # the counts and shares of a pair need all its patches
            continue
        n = b - a
        who = f"pair {i} ({_dec(r['patient'])}/{Path(_dec(r['input_file'])).name})"
        if n != int(r["patches_written"]) or not np.array_equal(rows["patch_index"], np.arange(n)):
            fails.append(f"{who}: {n} patches with patch_index not exactly 0..{int(r['patches_written']) - 1}")
            continue  # the shares below are only meaningful for a complete pair
        if np.any(rows["input_file"] != r["input_file"]) or np.any(rows["target_file"] != r["target_file"]):
            fails.append(f"{who}: patches naming other files than table 'pair'")
        if s.rot_augment.enabled and s.rot_augment.draw == "per_copy":
            for factor in np.unique(rows["downscale"]):
                of_copy = rows[rows["downscale"] == factor]
                ks = set(of_copy["rot_k"][of_copy["rot_k"] > 0].tolist())
                flips = set(of_copy["flip"][of_copy["flip"] != b""].tolist())
                if len(ks) > 1 or len(flips) > 1:
                    fails.append(
                        f"{who}: copy x{float(factor):g} turned in several ways (rot_k {sorted(ks)}, flip "
                        f"{sorted(flips)}), but rot_augment.draw is per_copy (one draw per copy)"
                    )
        bl = np.isfinite(rows["blend"])
        if s.dose_blend.enabled:
            if bl.sum() * 2 != n or np.any(rows["blend"][bl] != r["blend"]):
                fails.append(f"{who}: expected half the patches blended with the pair's factor {float(r['blend'])}")
            if not s.dose_blend.low <= float(r["blend"]) <= s.dose_blend.high:
                fails.append(f"{who}: blend factor {float(r['blend'])} outside [low, high]")
        if s.blur_noise.enabled:
            nb, nn = int(rows["blur"].sum()), int(rows["noise"].sum())
            eb = min(round_half_up(bn.blur_share * n), n)
            en = min(round_half_up(bn.noise_share * n), n - eb)
            if (nb, nn) != (eb, en):
                fails.append(f"{who}: {nb} blurred and {nn} noised of {n}, expected {eb} and {en}")
    return fails


def stat_fields(names=("input", "target")) -> list[str]:
    """The value statistics fields of table ``patch`` (:data:`ctpatch.ldct.job.STAT_FIELDS`)."""
    return [f"{name}_{stat}" for name in names for stat, _ in STAT_FIELDS]


def _report_values(name: str, lo: float, hi: float, bad: int, at_limit: int, dtype, report: dict) -> list[str]:
    """The figures of one dataset's values in ``report`` and the failures they make."""
    fails = []
    report[f"{name}_value_range"] = [lo, hi] if math.isfinite(lo) else None
    report[f"{name}_nonfinite"] = bad
    if bad:
        fails.append(f"{name}: {bad} NaN/inf values")
    if dtype.name in INTEGER_DTYPES:
        report[f"{name}_at_dtype_limits"] = at_limit
        if at_limit:
            fails.append(f"{name}: {at_limit} values at the limits of {dtype} (clipped or wrapped?)")
    return fails


def _check_recorded(prov, where, paths, dtype: np.dtype, shapes: dict, report: dict) -> list[str]:
    """Value checks from the per-patch statistics of table ``patch`` (all parts): each row consistent in
    itself and with the dtype (counts within the patch size; min <= max, both values of the dtype;
    an at-limits count exactly when min or max is at a limit), then NaN/inf and limit counts summed
    and the value range of every dataset."""
    fails = []
    limits = dtype_limits(dtype)
    info = np.iinfo(dtype) if limits else np.finfo(dtype)
    bottom, top = float(info.min), float(info.max)
    for name in ("input", "target"):
        size = int(np.prod(shapes[name]))
        lo, hi = prov[f"{name}_min"].astype(np.float64), prov[f"{name}_max"].astype(np.float64)
        bad, at = prov[f"{name}_nonfinite"].astype(np.int64), prov[f"{name}_at_limits"].astype(np.int64)
        none_finite = bad == size
        with np.errstate(invalid="ignore", over="ignore"):
            wrong = (bad < 0) | (bad > size) | (at < 0) | (at > size - bad)
            wrong |= none_finite & ~(np.isnan(lo) & np.isnan(hi))
            known = ~none_finite
            wrong |= known & ~(np.isfinite(lo) & np.isfinite(hi) & (lo <= hi) & (lo >= bottom) & (hi <= top))
            # the recorded values must be values of the dtype (the cast leaves them unchanged)
            wrong |= known & ((lo.astype(dtype).astype(np.float64) != lo) | (hi.astype(dtype).astype(np.float64) != hi))
            touches = np.zeros(len(prov), dtype=bool)
            for v in limits:
                touches |= (lo == v) | (hi == v)
            wrong |= (at > 0) != (known & touches)
        if np.any(wrong):
            r = int(np.flatnonzero(wrong)[0])
            k, row = (int(x) for x in where[r])
            fails.append(
                f"{name}: {int(wrong.sum())} patches whose recorded value statistics are inconsistent, e.g. "
                f"{paths[k]} row {row}: min {lo[r]}, max {hi[r]}, {bad[r]} NaN/inf and {at[r]} values at the "
                f"limits of {dtype} in a patch of {size} values"
            )
        finite = lo[known & np.isfinite(lo)], hi[known & np.isfinite(hi)]
        rng = (
            (float(finite[0].min()), float(finite[1].max()))
            if finite[0].size and finite[1].size
            else (math.inf, -math.inf)
        )
        fails += _report_values(name, *rng, int(bad.sum()), int(at.sum()), dtype, report)
    return fails


def _unequal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether two arrays of the same field differ (NaN equal to NaN; bytes for strings)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.issubdtype(a.dtype, np.floating):
        diff = (a != b) & ~(np.isnan(a) & np.isnan(b))
    else:
        diff = a != b
    return diff.reshape(len(a), -1).any(axis=1) if diff.ndim > 1 else diff


def _check_sample(files, paths, prov, where, pairs_path, s, sample: int, report: dict) -> list[str]:
    """Recompute the pairs of seeded random patches of every part (``sample`` drawn per part, at most
    :data:`SAMPLE_PAIR_SHARE` of the pairs, at least one per part); compare all their patches."""
    fails = []
    job = Job(s, {"pairs": pairs_path})
    dtype = np.dtype(s.output.dtype)
    lookup = {
        (int(p), int(q)): (int(k), int(r))
        for (p, q), (k, r) in zip(zip(prov["pair_index"], prov["patch_index"]), where)
    }
    units = job.units()
    # the pairs named by the sampled patches, at most SAMPLE_PAIR_SHARE of the pairs but at least the first
    # sampled patch's pair of every part: recomputing a pair costs what extracting it cost
    cap = max(1, math.ceil(SAMPLE_PAIR_SHARE * len(units)))
    per_part = []
    for k, (path, f) in enumerate(zip(paths, files)):
        part = f["provenance/patch"]
        per_part.append(
            [
                int(part[int(r)]["pair_index"])
                for r in sample_rows(part.shape[0], sample, int(s.seed), Path(path).name, "patch")
            ]
        )
    chosen = {pairs[0] for pairs in per_part if pairs}
    for pair in (p for pairs in per_part for p in pairs[1:]):
        if len(chosen) >= cap:
            break
        chosen.add(pair)
    err = 0.0
    checked = 0
    shapes = patch_shapes(s)  # input and target differ in size in super-resolution
    per_file = np.bincount(where[:, 0], minlength=len(files)) if len(where) else np.zeros(len(files), int)
    first = np.r_[0, np.cumsum(per_file)[:-1]]  # row of prov where each part's rows start
    for unit in (units[i] for i in sorted(chosen) if 0 <= i < len(units)):
        w = MemorySink({name: (shape, np.float32) for name, shape in shapes.items()})
        try:
            job.run(unit, w)
        except (ValueError, OSError) as exc:
            fails.append(f"sample pair {unit.key}: cannot recompute: {exc}")
            continue
        differ = []
        n = len(w.rows["patch"])
        locs = [lookup.get((unit.index, j)) for j in range(n)]
        if any(loc is None for loc in locs):
            fails.append(f"sample pair {unit.key}: patch {locs.index(None)} missing from the files")
            continue
        ks = np.array([loc[0] for loc in locs], dtype=np.int64)
        rs = np.array([loc[1] for loc in locs], dtype=np.int64)
        fresh_rows = np.array(w.rows["patch"], dtype=job.patch_dtype)
        fields = [name for name in prov.dtype.names if name in fresh_rows.dtype.names]
        lies, rows_differ = [], []
        for k in np.unique(ks):  # the pair's rows of each part, read in one call (rows increasing)
            js = np.flatnonzero(ks == k)
            js = js[np.argsort(rs[js])]
            rec = prov[first[k] + rs[js]]
            for field in fields:  # the whole provenance row, statistics included
                unequal = [int(b) for b in np.flatnonzero(_unequal(rec[field], fresh_rows[field][js]))]
                rows_differ += [f"{field} of patch {int(js[b])} ({paths[k]} row {int(rs[js[b]])})" for b in unequal]
            for name in ("input", "target"):
                stored = files[k][name][rs[js]] if len(js) > 1 else files[k][name][int(rs[js[0]])][None]
                fresh = np.stack([w.patches[name][j] for j in js])
                err = max(err, float(np.max(np.abs(stored.astype(np.float64) - fresh.astype(np.float64)))))
                bad = np.flatnonzero((stored != fresh.astype(dtype)).reshape(len(js), -1).any(axis=1))
                differ += [f"{name} patch {int(js[b])} ({paths[k]} row {int(rs[js[b]])})" for b in bad]
                # the recorded statistics against the stored values themselves
                got = value_stats(stored)
                said = [rec[f"{name}_{stat}"].astype(v.dtype) for (stat, _), v in zip(STAT_FIELDS, got)]
                off = np.zeros(len(js), dtype=bool)
                for g, r in zip(got, said):
                    off |= _unequal(g, r)
                lies += [
                    f"{name} patch {int(js[b])} ({paths[k]} row {int(rs[js[b]])}): recorded min, max, "
                    f"NaN/inf, at limits {[r[b].item() for r in said]}, its stored values give "
                    f"{[g[b].item() for g in got]}"
                    for b in np.flatnonzero(off)
                ]
        checked += n
        if differ:
            fails.append(
                f"sample pair {unit.key}: {len(differ)} stored patches differ from their recomputation, "
                f"e.g. {differ[0]}"
            )
        if lies:
            fails.append(
                f"sample pair {unit.key}: {len(lies)} patches whose recorded value statistics are not those of "
                f"their stored values, e.g. {lies[0]}"
            )
        if rows_differ:
            fails.append(
                f"sample pair {unit.key}: {len(rows_differ)} provenance fields differ from the recomputation, "
                f"e.g. {rows_differ[0]}"
            )
    report["sample_pairs"] = [units[i].key for i in sorted(chosen) if 0 <= i < len(units)]
    report["sample_patches"] = checked
    report["sample_roundtrip_error"] = err
    return fails


def verify_group(patches, tables, settings: dict, sample: int, report_out) -> int:
    """Verify one group's files (every part) against its pair table(s) and write its report; the exit status."""
    try:
        report = verify_ldct(patches, tables, settings, sample=sample)
    except (OSError, ValueError) as exc:  # e.g. a corrupt chunk of a small dataset, read whole
        report = {"files": patches, "ok": False, "failures": [str(exc)]}
    return finish_report(report, patches, report_out)


def main(argv=None) -> int:
    """``python -m ctpatch.ldct.verify``: one ``--report-out`` verifies every ``--patches`` file against every
    ``--pairs`` table (one run); several verify one patient each, every patient even after one failed:
    its table, its files (each patient's parts together) and its report at the same position, each named
    after the table (``--pairs L096.tsv L143.tsv --patches L096.h5 L143.h5 --report-out L096.verify.json
    L143.verify.json``)."""
    from ctpatch.cli import per_group, run_each

    ap = argparse.ArgumentParser(prog="python -m ctpatch.ldct.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", nargs="+", required=True, help="the patch file(s), each patient's parts together")
    ap.add_argument("--pairs", nargs="+", required=True, help="the pair table(s), in the extraction's order")
    ap.add_argument("--settings-file", required=True, help="settings of scope 'patches'")
    ap.add_argument(
        "--sample", type=int, default=SAMPLE, help="patches per file and kind regenerated and compared (0: none)"
    )
    ap.add_argument("--report-out", nargs="+", required=True, help="one report, or one per pair table")
    args = ap.parse_args(argv)
    if len(args.report_out) == 1:
        groups = [(list(args.patches), list(args.pairs), args.report_out[0])]
    else:
        names = [Path(t).stem for t in args.pairs]
        try:
            reports = per_group(names, args.report_out, "--report-out", each=1)
            patches = per_group(names, args.patches, "--patches")
        except ValueError as exc:
            ap.error(str(exc))
        groups = [(p, [t], r[0]) for p, t, r in zip(patches, args.pairs, reports)]
    try:
        settings = read_settings(args.settings_file, scope="patches")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_each(groups, lambda g: verify_group(g[0], g[1], settings, args.sample, g[2]))


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
