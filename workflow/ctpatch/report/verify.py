"""``python -m ctpatch verify FILE…``: patch files checked on their own, with nothing but the files.

The workflow's ``verify_patches`` checks a run's files against the run's inputs and settings (and
regenerates a sample of patches from them).  This checks what a file says of itself, so that a file
copied to another machine, downloaded, or kept for years can be checked with no results folder, no
settings file and no input data:

* what made it: the four attributes (``settings``, ``settings_digest``, ``inputs``, ``inputs_digest``)
  present, each digest the sha256 of its text (a changed attribute is caught), and the recorded
  settings valid settings of the file's mode (its ``mode`` attribute);
* checksums: every stored chunk of every patch and label dataset against its Fletcher32 checksum, in
  place (:func:`ctpatch.store.verify.check_chunks`, nothing decompressed); every provenance table read
  whole (HDF5 checks its checksum); a combined LDCT file's virtual datasets: their source files present
  and their chunks checked;
* counts against the provenance tables, from the recorded settings: as many patches, labels and
  provenance rows per kind.  LUNA16: every nodule in the file with exactly its ``1 + 2·M·len(directions)``
  shifted patches, each scan's negatives as many as ``negatives.ratio`` and ``negatives.scans`` give for its
  nodule patches (the scans are the ``inputs`` attribute's), labels one-hot, every nodule label holding a
  nodule voxel, every negative's ``touches_nodule`` agreeing with its label, the compact layouts' own
  tables; LDCT: table ``pair`` the same in every part, per pair ``patches_written = patches_kept × the
  augmentations``, each pair's ``patch_index`` exactly ``0 … patches_written − 1`` over the files of one
  run given together (every part of an ``nsplit`` run; one part alone is checked without the counts per
  pair), the augmentation fields against the settings, and the recorded value statistics consistent.

What it cannot tell without the inputs: that the patches are the ones the inputs give (``verify_patches``
regenerates a sample for that) or that no nodule or slice pair is missing altogether (the file records
its inputs' digests, not their contents).

Usage: ``python -m ctpatch verify FILE [FILE …] [--json REPORT.json]`` (``ctpatch verify`` once installed);
one line per file (or per run of LDCT parts), ``ok`` or ``FAILED`` with one line per failure; exit status
1 when any file fails.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ctpatch.ldct.verify import verify_ldct_files
from ctpatch.luna16.verify import verify_luna
from ctpatch.readers.contract import file_mode
from ctpatch.settings import ldct_job, luna16_job
from ctpatch.store.atomic import write_json
from ctpatch.store.h5 import h5py
from ctpatch.store.identity import ATTRS
from ctpatch.store.reading import file_codecs, missing_virtual_sources, reader_needs
from ctpatch.store.verify import check_chunks, read_table


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def recorded_identity(f: h5py.File, mode: str) -> tuple[list[str], dict | None, dict | list | None]:
    """(failures, settings, inputs) of what a file records of what made it: the four attributes present,
    each digest the sha256 of its text, both texts JSON, the settings valid settings of ``mode``."""
    missing = [name for name in ATTRS if name not in f.attrs]
    if missing:
        return (
            [f"records no {', '.join(missing)}: not a file of this ctpatch, or its attributes were removed"],
            None,
            None,
        )
    fails, values = [], {}
    for name in ("settings", "inputs"):
        text, said = _text(f.attrs[name]), _text(f.attrs[f"{name}_digest"])
        actual = hashlib.sha256(text.encode()).hexdigest()
        if actual != said:
            fails.append(
                f"attribute {name}_digest {said[:16]}… is not the sha256 of the recorded {name} ({actual[:16]}…): "
                f"one of the two was changed after the file was written"
            )
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            fails.append(f"attribute {name} is not JSON ({exc})")
            values[name] = None
    settings = values["settings"]
    if isinstance(settings, dict):
        if settings.get("mode") != mode:
            fails.append(f"the recorded settings are of mode {settings.get('mode')!r}, the file of mode {mode!r}")
            settings = None
        else:
            try:
                typed = luna16_job(settings) if mode == "luna16" else ldct_job(settings)
                settings = asdict(typed)
            except (ValueError, KeyError, TypeError) as exc:
                fails.append(f"the recorded settings are not valid {mode} settings: {exc}")
                settings = None
    elif settings is not None:
        fails.append(f"the recorded settings are not a mapping, got {type(settings).__name__}")
        settings = None
    return fails, settings, values["inputs"]


def _luna(path: str, f: h5py.File, settings: dict, inputs) -> dict:
    """A LUNA16 file: :func:`ctpatch.luna16.verify.verify_luna` with the nodule table the file's own
    provenance gives and the scans its ``inputs`` attribute names (no regenerated sample)."""
    scans = [str(s["seriesuid"]) for s in (inputs or {}).get("scans", [])] if isinstance(inputs, dict) else []
    prov = read_table(f, "provenance/nodule") if "provenance/nodule" in f else None
    if prov is None:
        return {"ok": False, "failures": ["dataset provenance/nodule missing"]}
    nodules = pd.DataFrame(
        {"seriesuid": [_text(u) for u in prov["seriesuid"]], "nodule_index": prov["nodule_index"].astype(int)}
    ).drop_duplicates()
    unknown = sorted(set(nodules["seriesuid"]) - set(scans))
    table = io.StringIO(nodules.to_csv(sep="\t", index=False))
    report = verify_luna(path, table, settings, scans, inputs=None)
    if unknown:
        report["ok"] = False
        report["failures"] = [f"patches of scans the inputs attribute does not name: {unknown[:3]}"] + report[
            "failures"
        ]
    report["scans"] = len(scans)
    return report


def _ldct_combined(path: str, f: h5py.File) -> dict:
    """A combined LDCT file (``output.combined``): rows of every dataset and table agree, the sources of
    its virtual datasets are there and their chunks (or its own, copied ones) match their checksums."""
    fails = []
    names = ("input", "target", "provenance/patch", "provenance/source", "provenance/pair")
    missing = [n for n in names if n not in f]
    if missing:
        return {"ok": False, "failures": [f"datasets {missing} missing"]}
    rows = {n: f[n].shape[0] for n in names[:4]}
    if len(set(rows.values())) != 1:
        fails.append(f"rows differ: {rows}")
    read_table(f, "provenance/patch"), read_table(f, "provenance/pair")
    source = read_table(f, "provenance/source")
    sources = [_text(s) for s in f.attrs.get("sources", [])]
    if len(source) and (source["source"].min() < 0 or source["source"].max() >= len(sources)):
        fails.append(f"provenance/source names sources outside the {len(sources)} the file lists")
    lost = missing_virtual_sources(f)
    if lost:
        fails.append(f"{len(lost)} source files of its virtual datasets are not there, e.g. {lost[0]}")
    for name in ("input", "target"):
        ds = f[name]
        if not ds.is_virtual:
            fails += check_chunks(ds)
            continue
        base = Path(path).resolve().parent
        for src in dict.fromkeys(vs.file_name for vs in ds.virtual_sources()):
            src_path = Path(src) if Path(src).is_absolute() else base / src
            if src_path.is_file():
                with h5py.File(src_path, "r") as s:
                    fails += check_chunks(s[name])
    return {"ok": not fails, "failures": fails, "patches": rows["input"], "sources": len(sources)}


def _codecs(path) -> list[str]:
    try:
        return file_codecs(path)
    except OSError:
        return []  # not an HDF5 file: reported above


def _summary(mode: str, report: dict) -> str:
    if mode == "luna16":
        return f"{report.get('nodule_patches', '?')} nodule and {report.get('negatives', '?')} non_nodule patches"
    return f"{report.get('patches', '?')} patches"


def verify_files(paths) -> list[dict]:
    """Check every file of ``paths`` on its own (see the module docstring); one report per file, or per run
    of LDCT parts given together (files of one extraction: the same recorded settings, inputs and group)."""
    reports, runs = [], {}
    for path in map(str, paths):
        entry: dict = {"files": [path]}
        try:
            with h5py.File(path, "r") as f:
                mode = entry["mode"] = file_mode(f, path)
                fails, settings, inputs = recorded_identity(f, mode)
                entry.update(settings_digest=_text(f.attrs.get("settings_digest", "")))
                if settings is None:
                    reports.append({**entry, "ok": False, "failures": fails})
                    continue
                if mode == "luna16":
                    got = _luna(path, f, settings, inputs)
                elif "combined" in f.attrs:
                    got = _ldct_combined(path, f)
                else:  # parts of one extraction are checked together, below
                    key = (_text(f.attrs["settings_digest"]), _text(f.attrs["inputs_digest"]), _text(f.attrs["group"]))
                    run = runs.setdefault(key, {**entry, "files": [], "fails": [], "settings": settings})
                    run["files"].append(path)
                    run["fails"] += [f"{path}: {x}" for x in fails]
                    run["parts"] = int(f.attrs.get("parts", 1))
                    continue
        except (OSError, ValueError) as exc:
            reports.append({**entry, "ok": False, "failures": [str(exc)]})
            continue
        reports.append({**entry, **got, "ok": got["ok"] and not fails, "failures": fails + got["failures"]})
    for run in runs.values():
        complete = len(set(run["files"])) == run["parts"]
        try:
            got = verify_ldct_files(run["files"], run["settings"], complete)
        except (OSError, ValueError) as exc:
            got = {"ok": False, "failures": [str(exc)]}
        if not complete:
            got["note"] = (
                f"{len(run['files'])} of the run's {run['parts']} parts given: the counts per pair need every part"
            )
        fails = run.pop("fails")
        run.pop("settings")
        reports.append({**run, **got, "ok": got["ok"] and not fails, "failures": fails + got["failures"]})
    return reports


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ctpatch verify",
        description="Check ctpatch patch files on their own: the recorded settings and inputs and their digests, "
        "every chunk's Fletcher32 checksum, the counts against the provenance tables.",
    )
    ap.add_argument("files", nargs="+", metavar="FILE", help="patch files (.h5); an LDCT run's parts together")
    ap.add_argument("--json", default=None, metavar="REPORT", help="also write the reports as JSON")
    args = ap.parse_args(argv)
    reports = verify_files(args.files)
    for r in reports:
        name = ", ".join(r["files"])
        if r["ok"]:
            mode = r.get("mode", "?")
            line = f"{name}: ok ({mode}, {_summary(mode, r)}, settings {r.get('settings_digest', '')[:12]})"
            print(line + (f"; {r['note']}" if r.get("note") else ""))
        else:
            print(f"{name}: FAILED")
            for failure in r["failures"] or ["(no failure recorded)"]:
                print(f"  {failure}")
    codecs = sorted({c for p in args.files if Path(p).is_file() for c in _codecs(p)})
    print(f"reading these files: {reader_needs(codecs)}")
    if args.json:
        write_json(args.json, reports)
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
