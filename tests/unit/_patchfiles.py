"""Small real patch files for the tests of ctpatch.readers, ctpatch.report.explain and ctpatch.report.plan.

Built with the package steps exactly as the workflow's rules chain them (demo data -> convert ->
make_labels -> extract, with the settings ``ctpatch.settings`` gives the rules), in one process and
without MPI, once per test session.  Paths in the recorded settings are relative to ``workdir``,
as in a workflow run.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

from demos import READER_DEMO
from paths import SHARED_LDCT

from ctpatch.engine.run import extract, extraction_attrs
from ctpatch.luna16 import labels as make_labels
from ctpatch.luna16.convert import convert
from ctpatch.luna16.demo import write_dataset
from ctpatch.settings import ldct_patch_settings as ldct_settings
from ctpatch.settings import luna16_settings as luna_settings
from ctpatch.settings import luna_root, luna_table, scope_settings, validate, write_settings
from ctpatch.store.atomic import save_npy, write_json

# the reader demo (2 subsets x 1 scan, 192 x 192 x 70-90), linear resampling
LUNA_CONFIG = {
    "mode": "luna16",
    "seed": 0,
    "extract": {"tasks": 1},
    "demo": READER_DEMO,
    "luna16": {"resample": {"interpolator": "linear"}},
}
LDCT_CONFIG = {
    "mode": "ldct",
    "seed": 3,
    "extract": {"tasks": 1},
    "ldct": {
        "root": str(SHARED_LDCT),
        "patients": ["L096", "L143"],
        "random_n": 2,
        "patch": {"code": "p55"},
        "air_threshold": {"enabled": True},
        "rot_augment": {"enabled": True},
        "dose_blend": {"enabled": True},
        "blur_noise": {"enabled": True},
        "output": {"dtype": "float16", "layout": "torch", "nsplit": 2, "shuffle": True},
    },
}

_CACHE: dict = {}


def pair_patient(patient_dir, table_out, report_out=None, seed: int = 0, **ldct) -> int:
    """Run ``python -m ctpatch.ldct.pairing`` in-process as the rule does: ``ldct`` keys (input_dir,
    target_dir, pair_by, on_error, random_n) over the defaults, written to a settings file beside
    the table; returns the exit status."""
    table_out = Path(table_out)
    report_out = Path(report_out) if report_out else table_out.with_suffix(".json")
    from ctpatch.ldct.pairing import main as pair_main

    config = validate({"mode": "ldct", "seed": seed, "ldct": ldct})
    settings = table_out.with_name(table_out.name + ".settings.json")
    write_settings(scope_settings(config, "pairs"), settings, "pairs")
    return pair_main(
        [
            "--patient-dir",
            str(patient_dir),
            "--settings-file",
            str(settings),
            "--table-out",
            str(table_out),
            "--report-out",
            str(report_out),
        ]
    )


def build_luna(workdir: Path, config: dict) -> list[Path]:
    """Run the LUNA16 chain into ``workdir``; return the patch files (one per subset)."""
    from ctpatch.luna16.job import Job

    settings = luna_settings(config)
    root = workdir / luna_root(config)
    # the run's settings files, where explain finds the inputs' folder (results/luna16/settings/check.json)
    for scope in ("check", "patches"):
        write_settings(
            scope_settings(config, scope), workdir / config["results"] / "luna16" / "settings" / f"{scope}.json", scope
        )
    plans = write_dataset(root, config["demo"], config["seed"])
    out = []
    for subset in sorted({p.subset for p in plans}):
        uids = sorted(p.series_uid for p in plans if p.subset == subset)
        vol_dir = workdir / config["results"] / "luna16" / "volumes" / subset
        sidecars = []
        for uid in uids:
            volume, sidecar = convert(root / subset / f"{uid}.mhd", scope_settings(config, "convert"))
            save_npy(vol_dir / f"{uid}.npy", volume)
            write_json(vol_dir / f"{uid}.json", sidecar)
            sidecars.append(str(vol_dir / f"{uid}.json"))
        labels = workdir / config["results"] / "luna16" / "labels" / subset
        assert (
            make_labels.main(
                [
                    "--subset",
                    subset,
                    "--sidecars",
                    *sidecars,
                    "--annotations",
                    str(workdir / luna_table(config, "annotations")),
                    "--masks-dir",
                    str(labels / "masks"),
                    "--table-out",
                    str(labels / "nodules.tsv"),
                ]
            )
            == 0
        )
        inputs = {
            "sidecars": sidecars,
            "masks_dir": str(labels / "masks"),
            "nodules": str(labels / "nodules.tsv"),
            "candidates": None,
        }
        job = Job(settings, inputs)
        target = workdir / config["results"] / "luna16" / "patches" / f"{subset}.h5"
        # the attributes the workflow's extraction writes
        extract(job, [target], extraction_attrs(job, subset), buffer=config["extract"]["buffer_patches"])
        out.append(target)
    return out


def build_ldct(workdir: Path, config: dict) -> list[Path]:
    """Pair and extract the configured patients into one run of ``nsplit`` parts."""
    from ctpatch.ldct.job import Job
    from ctpatch.ldct.pairing import main as pair_main

    ldct = config["ldct"]
    settings = ldct_settings(config)
    tables = []
    pairs_settings = workdir / "settings" / "pairs.json"
    write_settings(scope_settings(config, "pairs"), pairs_settings, "pairs")
    for patient in ldct["patients"]:
        t = workdir / "pairs" / f"{patient}.tsv"
        assert (
            pair_main(
                [
                    "--patient-dir",
                    str(Path(ldct["root"]) / patient),
                    "--settings-file",
                    str(pairs_settings),
                    "--table-out",
                    str(t),
                    "--report-out",
                    str(t.with_suffix(".json")),
                ]
            )
            == 0
        )
        tables.append(str(t))
    job = Job(settings, {"pairs": tables})
    parts = [workdir / "patches" / f"run.part{i}.h5" for i in range(ldct["output"]["nsplit"])]
    # the attributes the workflow's extraction writes
    extract(job, parts, extraction_attrs(job, "run"), buffer=config["extract"]["buffer_patches"])
    return parts


def luna_run(tmp_path_factory, layout: str = "full") -> types.SimpleNamespace:
    """The LUNA16 files of this test session (built on first use), in the ``full``, ``crops`` or
    ``volumes`` layout.

    All layouts are built from the same demo data and settings in their own folders, with the
    same file names, so their shuffles are the same.
    """
    key = f"luna-{layout}"
    if key not in _CACHE:
        workdir = tmp_path_factory.mktemp(f"luna-run-{layout}")
        raw = json.loads(json.dumps(LUNA_CONFIG))
        raw["luna16"].setdefault("output", {})["layout"] = layout
        config = validate(raw)
        files = build_luna(workdir, config)
        _CACHE[key] = types.SimpleNamespace(workdir=workdir, config=config, files=files, settings=luna_settings(config))
    return _CACHE[key]


def ldct_run(tmp_path_factory) -> types.SimpleNamespace:
    """The LDCT files of this test session (built on first use); needs the real data in ../shared/data."""
    if "ldct" not in _CACHE:
        workdir = tmp_path_factory.mktemp("ldct-run")
        config = validate(json.loads(json.dumps(LDCT_CONFIG)))
        files = build_ldct(workdir, config)
        _CACHE["ldct"] = types.SimpleNamespace(
            workdir=workdir, config=config, files=files, settings=ldct_settings(config)
        )
    return _CACHE["ldct"]


def write_canonical(job, path, units=None) -> list[dict]:
    """The job's output in canonical order (unshuffled, one file), written from an in-memory sink into
    patch datasets of the job's codec: an independent path to the patches, beside the extraction's
    single writer.  Returns what ``job.run`` returned per unit."""
    import h5py
    import numpy as np

    from ctpatch.store.codecs import create_patch_dataset
    from ctpatch.store.sink import MemorySink

    specs = job.specs()
    sink = MemorySink(specs.datasets)
    counts = [job.run(u, sink) for u in (job.units() if units is None else units)]
    with h5py.File(path, "w") as f:
        f.attrs["mode"] = job.mode  # the attributes every patch file has
        f.attrs.update(extraction_attrs(job))  # what made it, as the workflow records it
        for name, (shape, dtype) in specs.datasets.items():
            stack = np.stack(sink.patches[name]) if sink.patches[name] else np.zeros((0, *shape), dtype)
            ds = create_patch_dataset(f, name, shape, dtype, specs.compression, rows=len(stack))
            if len(stack):
                ds[...] = stack
            for key, value in specs.attrs.get(name, {}).items():
                f[name].attrs[key] = value
        for table, dtype in specs.tables.items():
            f.create_dataset(f"provenance/{table}", data=np.array(sink.rows.get(table, []), dtype=dtype))
    return counts
