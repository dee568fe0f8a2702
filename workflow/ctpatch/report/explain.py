"""Explain one patch: print its provenance, regenerate it from its source with the recorded settings,
and check that the stored patch is equal to the regenerated one, bit for bit.

LUNA16 (kinds ``nodule``, ``non_nodule``): the source scan ``<root>/<subset>/<seriesuid>.mhd`` is
converted again (:func:`ctpatch.luna16.convert.convert` with the file's ``resample`` and ``normalize``
settings), its label volume made again from the annotations (:func:`ctpatch.luna16.labels.nodules_of_scan`
and :func:`~ctpatch.luna16.labels.label_volume`), and the whole scan is run through the extraction
(:meth:`ctpatch.luna16.job.Job.run`, the code the workflow ran, negatives drawn from the same keyed
generator) into a writer that keeps only the patch with the recorded ``patch_index``.  Its image,
label and provenance row must equal the stored ones; ``scan_index`` is checked against the scan's
place among the subset's scans.

LDCT (kind ``patch``): the slice pair named in the provenance is run again through
:meth:`ctpatch.ldct.job.Job.run` with the file's ``settings`` (random draws are keyed by
patient and file name, so one pair alone gives the same patches); input, target, the patch's
provenance row and the pair's summary row must be equal (``pair_index`` is the pair's number in
the original run and is not recomputed).

Paths recorded in the settings are relative to the folder the workflow ran in: ``--workdir``, else
the first folder above the patch file where they exist (a file still in its run's ``results/``), else
the current folder.  The subset comes from ``--subset``, the file's ``group`` attribute, or the one
``subsetK`` folder of the root that holds the scan.

Exit status: 0 and ``equal`` when everything is equal; 1 and the largest difference when not;
2 when the patch cannot be regenerated (missing source, settings or file).

Usage: ``python -m ctpatch.report.explain FILE INDEX [--kind nodule|non_nodule|patch] [--workdir DIR] [--subset subsetK] [--root DIR]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.luna16.layouts import images
from ctpatch.readers.contract import KINDS, MODE_KINDS, file_mode, file_settings
from ctpatch.store.h5 import h5py

EXIT_EQUAL, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


class ExplainError(ValueError):
    """The patch cannot be regenerated; the message says what is missing."""


@dataclass
class Explanation:
    """What :func:`explain` found.  ``differences`` is empty exactly when the patch is equal."""

    file: str
    kind: str
    index: int
    provenance: dict
    source: list[str]
    differences: list[str] = field(default_factory=list)
    largest: float = 0.0

    @property
    def equal(self) -> bool:
        return not self.differences


class _Pick:
    """A patch sink (:class:`ctpatch.store.sink.PatchSink`) that keeps only the ``index``-th patch (and row)
    of one table.

    It follows the protocol: ``add(name, patch)``, ``slot(name)`` (a buffer the job fills
    in place) then ``commit(name)``, and ``add_row(table, row)``; patches are cast to the dataset
    dtypes of the job's writer (``specs``).  Nothing is compressed or written, so one scan is re-run
    in about the time its patches take to cut.
    """

    def __init__(self, names: tuple[str, str], table: str, index: int, specs: dict):
        self.names, self.table, self.index, self.specs = names, table, int(index), specs
        self.seen = {n: 0 for n in specs["datasets"]}
        self.rows_seen = 0
        self.patches: dict[str, np.ndarray] = {}
        self.row = None
        self.other_rows: dict[str, list] = {}
        self._scratch: dict[str, np.ndarray] = {}

    def _wanted(self, name: str) -> bool:
        return name in self.names and self.seen[name] == self.index

    def add(self, name: str, patch) -> None:
        shape, dtype = self.specs["datasets"][name]
        if self._wanted(name):
            self.patches[name] = np.asarray(patch).astype(dtype, copy=True).reshape(shape)
        self.seen[name] += 1

    def slot(self, name: str) -> np.ndarray:
        shape, dtype = self.specs["datasets"][name]
        if self._wanted(name):
            self.patches[name] = np.empty(shape, dtype=dtype)
            return self.patches[name]
        if name not in self._scratch:
            self._scratch[name] = np.empty(shape, dtype=dtype)
        return self._scratch[name]

    def commit(self, name: str) -> None:
        self.seen[name] += 1

    def add_row(self, table: str, row) -> None:
        if table == self.table:
            if self.rows_seen == self.index:
                self.row = row
            self.rows_seen += 1
        else:
            self.other_rows.setdefault(table, []).append(row)


def _writer_specs(job) -> dict:
    """Dataset (patch shape, dtype) and table dtypes of the job's output (``Job.specs()``)."""
    sp = job.specs()
    return {
        "datasets": {name: (tuple(shape), np.dtype(dt)) for name, (shape, dt) in sp.datasets.items()},
        "tables": dict(sp.tables),
    }


def run_one(job, unit, kind: str, index: int) -> tuple[np.ndarray, np.ndarray, np.void, dict]:
    """Re-run ``job`` on ``unit`` through :class:`_Pick`; return the image and label of its ``index``-th
    ``kind`` patch, that patch's provenance record, and the unit's records of the other tables."""
    names = KINDS[kind][:2]
    specs = _writer_specs(job)
    pick = _Pick(names, kind, index, specs)
    job.run(unit, pick)
    if pick.row is None or any(n not in pick.patches for n in names):
        raise ExplainError(f"{unit.key} gives {pick.rows_seen} {kind} patches now; the stored patch_index is {index}")
    others = {t: np.array(rows, dtype=specs["tables"][t]) for t, rows in pick.other_rows.items()}
    return pick.patches[names[0]], pick.patches[names[1]], np.array([pick.row], dtype=specs["tables"][kind])[0], others


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _row_dict(rec) -> dict:
    return {name: _decode(rec[name]) for name in rec.dtype.names}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare_arrays(what: str, stored: np.ndarray, regenerated: np.ndarray, axes: str) -> tuple[list[str], float]:
    """Bitwise comparison after casting the regenerated patch to the stored dtype (as the writer did)."""
    regen = np.asarray(regenerated).astype(stored.dtype, copy=False)
    if stored.shape != regen.shape:
        return [f"{what}: stored shape {stored.shape}, regenerated {regen.shape}"], math.inf
    if stored.tobytes() == regen.tobytes():
        return [], 0.0
    a, b = stored.astype(np.float64), regen.astype(np.float64)
    diff = np.abs(a - b)
    diff[np.isnan(a) != np.isnan(b)] = np.inf
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    pos = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
    n = int((stored != regen).sum() if not np.issubdtype(stored.dtype, np.floating) else (diff > 0).sum())
    largest = float(diff[pos])
    return [
        f"{what}: {n} of {stored.size} values differ; largest difference {largest:.6g} at "
        f"({', '.join(axes)}) = {tuple(int(p) for p in pos)}: stored {float(a[pos])!r}, "
        f"regenerated {float(b[pos])!r}"
    ], largest


def _compare_rows(what: str, stored: dict, regenerated: dict, skip=()) -> list[str]:
    out = []
    for name, value in stored.items():
        if name in skip:
            continue
        if not _same(value, regenerated.get(name)):
            out.append(f"{what}.{name}: stored {value!r}, regenerated {regenerated.get(name)!r}")
    return out


def _bases(path: Path, workdir) -> list[Path]:
    if workdir is not None:
        return [Path(workdir)]
    return [*path.resolve().parents, Path.cwd()]


def _resolve(recorded: str, bases: list[Path], what: str) -> Path:
    p = Path(recorded)
    if p.is_absolute():
        if p.exists():
            return p
        raise ExplainError(f"{what} {p} not found")
    for base in bases:
        if (base / p).exists():
            return base / p
    raise ExplainError(
        f"{what} {recorded} not found relative to {', '.join(map(str, bases[:3]))}"
        f"{' ...' if len(bases) > 3 else ''} (give the folder the workflow ran in with --workdir)"
    )


# ---------------------------------------------------------------------------------------- LUNA16
def _luna_subset(root: Path, uid: str, given, attrs) -> str:
    if given:
        return given
    sub = attrs.get("group")
    if sub is not None:
        return sub.decode() if isinstance(sub, bytes) else str(sub)
    from ctpatch.luna16.discover import subset_folders

    found = [s for s in subset_folders(root)[0] if (root / s / f"{uid}.mhd").is_file()]
    if len(found) != 1:
        raise ExplainError(
            f"scan {uid}: expected its .mhd in exactly one subset folder of {root}, found "
            f"{found or 'none'} (give --subset)"
        )
    return found[0]


def run_inputs(path: Path, root=None, workdir=None) -> dict:
    """Where a LUNA16 file's inputs are: ``root`` (given) or the root, annotations and candidates tables of
    the run that wrote it (its ``check`` settings file: ``<results>/luna16/settings/check.json`` beside
    ``<results>/luna16/patches/``, or under ``workdir``).  The file itself records no path: it is the same
    wherever it is written (its inputs are recorded by content, :mod:`ctpatch.store.identity`)."""
    from ctpatch.settings import ConfigError, read_settings

    if root is not None:
        root = Path(root)
        return {
            "root": str(root),
            "annotations": str(root / "CSVFILES" / "annotations.csv"),
            "candidates": str(root / "CSVFILES" / "candidates.csv"),
        }
    places = [Path(path).resolve().parents[1] / "settings" / "check.json"]
    if workdir is not None:
        places += sorted(Path(workdir).glob("*/luna16/settings/check.json"))
    check = next((p for p in places if p.is_file()), places[0])
    try:
        s = read_settings(check, scope="check")
    except ConfigError as exc:
        raise ExplainError(f"{path}: the run's settings are not beside it ({exc}); give --workdir or --root") from None
    return {"root": s["root"], "annotations": s["annotations"], "candidates": s["candidates"]}


def regenerate_luna(settings: dict, prov: dict, kind: str, bases: list[Path], subset=None, attrs=None, where=None):
    """Regenerate one LUNA16 patch; return (image, label, provenance dict, scan_index or None, sources)."""
    from ctpatch.core.geometry import VolumeGrid
    from ctpatch.core.nodules import expected_counts
    from ctpatch.engine.blocks import Unit
    from ctpatch.io.tables import read_annotations
    from ctpatch.luna16.convert import convert
    from ctpatch.luna16.job import Job
    from ctpatch.luna16.labels import TABLE_COLUMNS, label_volume, nodules_of_scan
    from ctpatch.settings import luna16_job
    from ctpatch.settings.types import LunaConvert

    try:
        s = luna16_job(settings)  # the file's recorded settings, complete
    except KeyError as exc:
        raise ExplainError(f"the file's settings are not those of this ctpatch: {exc}") from None
    uid = prov["seriesuid"]
    root = _resolve(where["root"], bases, "LUNA16 root")
    annotations = _resolve(where["annotations"], bases, "annotations table")
    sub = _luna_subset(root, uid, subset, attrs or {})
    scan = root / sub / f"{uid}.mhd"
    if not scan.is_file():
        raise ExplainError(f"source scan {scan} not found")
    # judged when it was converted: no plausibility check
    volume, sidecar = convert(scan, LunaConvert(s.resample, s.normalize, None))
    grid = VolumeGrid.from_dict(sidecar["grid"])
    ann = read_annotations(annotations, s.duplicate_annotations)
    rows = nodules_of_scan(ann, grid, sub, uid, annotations)
    mask = label_volume(grid, rows)
    sources = [str(scan), str(annotations)]
    inputs = {
        "scans": [{"uid": uid, "volume": volume, "sidecar": sidecar, "mask": mask}],  # in memory, no files
        "nodules": pd.DataFrame(rows, columns=TABLE_COLUMNS),
        "candidates": None,
    }
    if s.negatives.strategy == "candidates":
        inputs["candidates"] = str(_resolve(where["candidates"], bases, "candidates table"))
        sources.append(inputs["candidates"])
    # regenerated in the full layout: a crops file's nodule patch is compared with the patch itself
    job = Job(replace(s, output=replace(s.output, layout="full")), inputs)
    # negatives may depend on the whole subset (negatives.scans "all"): count from all its scans
    uids = sorted(p.stem for p in (root / sub).glob("*.mhd"))
    scan_index = uids.index(uid) if uid in uids else None
    if uids:
        table = ann[ann["seriesuid"].isin(uids)][["seriesuid"]]
        job.nodule_patches, job.negatives = expected_counts(table, uids, len(job.offsets), job.neg.ratio, job.neg.scans)
    image, label, record, _ = run_one(job, Unit(uid, 0, 1.0), kind, prov["patch_index"])
    return image, label, _row_dict(record), scan_index, sources


# ---------------------------------------------------------------------------------------- LDCT
def regenerate_ldct(settings: dict, prov: dict, bases: list[Path]):
    """Regenerate one LDCT patch; return (input, target, patch row dict, pair row dict, sources)."""
    from ctpatch.io.dicom import read_header
    from ctpatch.ldct.job import Job

    inp = _resolve(prov["input_file"], bases, "input slice")
    tgt = _resolve(prov["target_file"], bases, "target slice")
    head = read_header(inp)
    slice_z, instance = prov["slice_z"], prov["instance"]
    table = pd.DataFrame(
        [
            {  # the one pair, in memory, with the columns read_pair_tables gives
                "patient": prov["patient"],
                "pair_index": 0,
                "input_path": str(inp),
                "target_path": str(tgt),
                "slice_z": float(slice_z),  # NaN: the slice has none
                "instance": math.nan if instance < 0 else int(instance),
                "rows": head.rows,
                "cols": head.cols,
                "selected": True,
                "input_name": inp.name,
            }
        ]
    )
    job = Job(settings, {"pairs": table})
    image, target, record, others = run_one(job, job.units()[0], "patch", prov["patch_index"])
    row = _row_dict(record)
    pair = _row_dict(others["pair"][0])
    # the rerun reads the files by the paths it was given; the stored row names them as recorded
    row["input_file"], row["target_file"] = prov["input_file"], prov["target_file"]
    pair["input_file"], pair["target_file"] = prov["input_file"], prov["target_file"]
    return image, target, row, pair, [str(inp), str(tgt)]


# ---------------------------------------------------------------------------------------- both
def explain(
    path, index: int, kind: str | None = None, workdir=None, subset: str | None = None, root=None
) -> Explanation:
    """Regenerate patch ``index`` of ``kind`` in ``path`` and compare it with the stored one."""
    path = Path(path)
    if not path.is_file():
        raise ExplainError(f"{path}: file not found")
    with h5py.File(path, "r") as f:
        mode = file_mode(f, path)
        kind = kind or MODE_KINDS[mode][0]
        if kind not in MODE_KINDS[mode]:
            raise ExplainError(f"{path}: a {mode} file has kinds {list(MODE_KINDS[mode])}, got {kind!r}")
        img_name, lab_name, table, _ = KINDS[kind]
        stored = images(f, img_name)  # crops layout: the nodule patch cut from its crop
        n = stored.shape[0]
        i = int(index) + (n if int(index) < 0 else 0)
        if not 0 <= i < n:
            raise ExplainError(f"{path}: {kind}: expected an index in [0, {n}), got {index}")
        image, label = stored[i], f[lab_name][i]
        prov = _row_dict(f[table][i])
        settings = file_settings(f)
        attrs = dict(f.attrs)
        pair_rows = f["provenance/pair"][...] if mode == "ldct" and "provenance/pair" in f else None
    bases = _bases(path, workdir)
    out = Explanation(str(path), kind, i, prov, [])
    if mode == "luna16":
        where = run_inputs(path, root, workdir)
        r_img, r_lab, r_prov, scan_index, out.source = regenerate_luna(
            settings, prov, kind, bases, subset, attrs, where
        )
        axes_img, axes_lab = "xyzc", "xyzk"
        out.differences += _compare_rows("provenance", prov, r_prov, skip=("scan_index",))
        if scan_index is not None and scan_index != prov["scan_index"]:
            out.differences.append(
                f"provenance.scan_index: stored {prov['scan_index']}, the scan is number {scan_index} of its subset"
            )
    else:
        r_img, r_lab, r_prov, r_pair, out.source = regenerate_ldct(settings, prov, bases)
        torch = image.shape[0] == 1 and image.shape[-1] != 1
        axes_img = axes_lab = "chw" if torch else "hwc"
        out.differences += _compare_rows("provenance", prov, r_prov, skip=("pair_index",))
        if pair_rows is not None:
            stored_pair = [_row_dict(r) for r in pair_rows if int(r["pair_index"]) == prov["pair_index"]]
            if stored_pair:
                out.differences += _compare_rows("pair", stored_pair[0], r_pair, skip=("pair_index",))
    for what, stored, regen, axes in (("image", image, r_img, axes_img), ("label", label, r_lab, axes_lab)):
        diffs, largest = compare_arrays(f"{what} ({KINDS[kind][0 if what == 'image' else 1]})", stored, regen, axes)
        out.differences += diffs
        out.largest = max(out.largest, largest)
    return out


def _format_value(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_format_value(x) for x in v) + "]"
    return str(v)


def report(e: Explanation, settings_line: str = "") -> str:
    width = max(len(k) for k in e.provenance) if e.provenance else 0
    lines = [f"file: {e.file}", f"patch: {e.kind} #{e.index}", "provenance:"]
    lines += [f"  {k:<{width}}  {_format_value(v)}" for k, v in e.provenance.items()]
    lines += [f"source: {s}" for s in e.source]
    if settings_line:
        lines.append(settings_line)
    if e.equal:
        lines.append("equal")
    else:
        lines.append(f"different (largest difference {e.largest:.6g}):")
        lines += [f"  {d}" for d in e.differences]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.report.explain", description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="a merged patch file")
    ap.add_argument("index", type=int, help="row of the patch in its dataset (PatchDataset provenance 'row')")
    ap.add_argument("--kind", choices=sorted(KINDS), help="default: nodule (LUNA16) or patch (LDCT)")
    ap.add_argument("--workdir", help="folder the workflow ran in (recorded paths are relative to it)")
    ap.add_argument("--subset", help="LUNA16: the scan's subset folder, when it cannot be found")
    ap.add_argument(
        "--root", help="LUNA16: the folder holding subsetK/ and CSVFILES/ (default: the run's, from its settings)"
    )
    args = ap.parse_args(argv)
    try:
        e = explain(args.file, args.index, args.kind, args.workdir, args.subset, args.root)
    except (ExplainError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    with h5py.File(args.file, "r") as f:
        s = file_settings(f)
    keys = ("resample", "normalize", "patch", "negatives", "output", "seed") if "resample" in s else sorted(s)
    settings_line = "settings: " + json.dumps({k: s[k] for k in keys if k in s}, sort_keys=True)
    print(report(e, settings_line))
    return EXIT_EQUAL if e.equal else EXIT_DIFFERENT


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
