"""A generator of LUNA16-like scans, for the demo and the tests.

Real LUNA16 is ~120 GB and cannot ship, so ctpatch makes its own: ``.mhd`` + ``.raw`` scans with
LUNA's header geometry (512x512xN int16, in-plane spacing 0.6-0.9 mm, slices 1-2.5 mm, negative
origins), HU-like content (air, a body, two lungs, noise, the -3024 outside the reconstruction
circle), spherical nodules (some near the first or last slice), and the two CSV tables
``annotations.csv`` and ``candidates.csv``.  Everything follows from the seed.

:func:`plan_scans` is pure and cheap (no voxels): the workflow calls it at parse time to know
the scans the demo will have.  The truth of each nodule (world mm, diameter) is in the plan and
in ``truth.json``.

Usage: ``python -m ctpatch.luna16.demo --out DIR [--settings-file demo.json]`` (a settings file of scope
``demo``, :mod:`ctpatch.settings`; the defaults are the schema's ``demo`` section).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ctpatch.core.geometry import VolumeGrid
from ctpatch.core.rng import key_words, keyed_rng
from ctpatch.settings import ConfigError, defaults, read_settings, section
from ctpatch.settings.types import Demo, build

UID_ROOT = "1.3.6.1.4.1.14519.5.2.1.6279.6001."


@dataclass(frozen=True)
class Nodule:
    """A demo nodule's truth: centre in world mm (x, y, z) and diameter in mm."""

    world: tuple[float, float, float]
    diameter_mm: float


@dataclass(frozen=True)
class ScanPlan:
    """One demo scan before any voxel is made: its subset, series uid, grid, nodules and candidates."""

    subset: str
    series_uid: str
    grid: VolumeGrid
    nodules: tuple[Nodule, ...] = field(default_factory=tuple)
    candidates: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)


def _settings(settings: Demo | Mapping | None) -> Demo:
    """The demo settings: ``settings`` over the schema's ``demo`` defaults (ValueError naming the key)."""
    return settings if isinstance(settings, Demo) else build(Demo, section("demo", settings))


def series_uid(seed: int, subset: int, index: int) -> str:
    """A LUNA-style series uid, stable for (seed, subset, index)."""
    words = key_words("demo-uid", seed, subset, index)
    return UID_ROOT + "".join(f"{w:010d}" for w in words[:3])


def _lung_boxes(grid: VolumeGrid):
    """Body and lungs as ellipsoids in world mm: (centre, semi-axes) for body, left, right lung."""
    extent = np.asarray(grid.spacing) * np.asarray(grid.size)
    centre = grid.index_to_world((np.asarray(grid.size) - 1) / 2.0)
    fov = extent[0]
    body = (centre, np.array([0.42 * fov, 0.32 * fov, 10.0 * extent[2]]))
    lungs = []
    for side in (-1, 1):
        c = centre + np.array([side * 0.17 * fov, -0.02 * fov, 0.0])
        lungs.append((c, np.array([0.13 * fov, 0.2 * fov, 0.55 * extent[2]])))
    return body, lungs


def plan_scans(settings: Demo | Mapping | None, seed: int) -> list[ScanPlan]:
    """The scans the demo will contain, in subset then index order; no voxels are made.

    >>> plans = plan_scans({"subsets": 1, "scans_per_subset": 2}, seed=0)
    >>> [p.subset for p in plans], plans[0].grid.size[:2]
    (['subset0', 'subset0'], (512, 512))
    """
    s = _settings(settings)
    plans = []
    for k in range(int(s.subsets)):
        for i in range(int(s.scans_per_subset)):
            rng = keyed_rng(seed, "demo-scan", k, i)
            sxy = float(rng.uniform(*s.spacing_xy))
            sz = float(rng.choice(np.arange(s.spacing_z[0], s.spacing_z[1] + 1e-9, 0.25)))
            nz = int(rng.integers(s.slices[0], s.slices[1] + 1))
            n = int(s.size_xy)
            origin = (
                -sxy * n / 2 + float(rng.uniform(-20, 20)),
                -sxy * n / 2 + float(rng.uniform(-20, 20)),
                -float(rng.uniform(100, 400)),
            )
            grid = VolumeGrid(origin, (sxy, sxy, sz), (n, n, nz))
            flat = k * int(s.scans_per_subset) + i
            without = flat < int(s.scans_without_nodules)
            count = 0 if without else int(rng.integers(s.nodules_per_scan[0], s.nodules_per_scan[1] + 1))
            nodules = _place_nodules(
                grid, rng, count, s, edge=bool(s.edge_nodule_every) and flat % int(s.edge_nodule_every or 1) == 0
            )
            cands = _place_candidates(grid, rng, int(s.candidates_per_scan))
            plans.append(ScanPlan(f"subset{k}", series_uid(seed, k, i), grid, tuple(nodules), tuple(cands)))
    return plans


def _inside_lung(grid: VolumeGrid, rng: np.random.Generator) -> np.ndarray:
    _, lungs = _lung_boxes(grid)
    c, axes = lungs[int(rng.integers(0, 2))]
    while True:
        u = rng.uniform(-1, 1, 3)
        if (u**2).sum() <= 0.6:
            return c + u * axes


def _place_nodules(grid, rng, count, s, edge):
    nodules = []
    for j in range(count):
        d = float(rng.uniform(*s.diameter_mm))
        p = _inside_lung(grid, rng)
        if edge and j == 0:
            # near the first or last slice: centre a third of the radius inside the volume
            last = grid.size[2] - 1
            z_index = float(rng.uniform(0.5, 2.0)) if rng.integers(0, 2) else last - float(rng.uniform(0.5, 2.0))
            idx = grid.world_to_index(p)
            idx[2] = z_index
            p = grid.index_to_world(idx)
        nodules.append(Nodule(tuple(float(v) for v in p), round(d, 4)))
    return nodules


def _place_candidates(grid, rng, count):
    return [tuple(float(v) for v in _inside_lung(grid, rng)) for _ in range(count)]


def synthesize(plan: ScanPlan, seed: int, noise_hu: float, slab: int = 16) -> np.ndarray:
    """The int16 HU volume of a planned scan, (z, y, x), built ``slab`` slices at a time."""
    g = plan.grid
    nx, ny, nz = g.size
    body, lungs = _lung_boxes(g)
    out = np.empty(g.shape_zyx, dtype=np.int16)
    step = (g.matrix * np.asarray(g.spacing)).astype(np.float32)  # world = origin + step @ index
    ix = np.arange(nx, dtype=np.float32)[None, None, :]
    iy = np.arange(ny, dtype=np.float32)[None, :, None]
    fov = ((ix[0] - (nx - 1) / 2.0) ** 2 + (iy[0] - (ny - 1) / 2.0) ** 2) > ((nx - 1) / 2.0) ** 2
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        rng = keyed_rng(seed, "demo-voxels", plan.series_uid, z0)
        iz = np.arange(z0, z1, dtype=np.float32)[:, None, None]
        world = [np.float32(g.origin[a]) + step[a, 0] * ix + step[a, 1] * iy + step[a, 2] * iz for a in range(3)]

        def dist2(centre, scale):
            return sum(((world[a] - np.float32(centre[a])) / np.float32(scale[a])) ** 2 for a in range(3))

        hu = np.full((z1 - z0, ny, nx), -1000.0, dtype=np.float32)
        hu[dist2(*body) <= 1.0] = 40.0
        for lung in lungs:
            hu[dist2(*lung) <= 1.0] = -850.0
        for nod in plan.nodules:
            r = nod.diameter_mm / 2.0
            hu[dist2(nod.world, (r, r, r)) <= 1.0] = 60.0
        hu += rng.normal(0.0, noise_hu, hu.shape).astype(np.float32)
        hu[:, fov] = -3024.0
        out[z0:z1] = np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    return out


def _write_csv_atomic(path: Path, header: str, rows: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join([header, *rows]) + "\n")
    os.replace(tmp, path)


def write_dataset(out: str | Path, settings: Demo | Mapping | None, seed: int) -> list[ScanPlan]:
    """Write the planned scans and CSV tables under ``out`` in the LUNA16 layout."""
    from ctpatch.io.mhd import write_scan

    s = _settings(settings)
    out = Path(out)
    plans = plan_scans(s, seed)
    ann, cand, truth = [], [], []
    for plan in plans:
        folder = out / plan.subset
        folder.mkdir(parents=True, exist_ok=True)
        volume = synthesize(plan, seed, float(s.noise_hu))
        tmp = folder / f"tmp-{plan.series_uid}.mhd"
        write_scan(tmp, volume, plan.grid)
        del volume
        raw_tmp = tmp.with_suffix(".raw")
        os.replace(raw_tmp, folder / f"{plan.series_uid}.raw")
        text = tmp.read_text().replace(raw_tmp.name, f"{plan.series_uid}.raw")
        (folder / f"{plan.series_uid}.mhd").write_text(text)
        tmp.unlink()
        for nod in plan.nodules:
            ann.append(f"{plan.series_uid},{nod.world[0]!r},{nod.world[1]!r},{nod.world[2]!r},{nod.diameter_mm!r}")
            cand.append(f"{plan.series_uid},{nod.world[0]!r},{nod.world[1]!r},{nod.world[2]!r},1")
        for c in plan.candidates:
            cand.append(f"{plan.series_uid},{c[0]!r},{c[1]!r},{c[2]!r},0")
        truth.append(
            {
                "subset": plan.subset,
                "seriesuid": plan.series_uid,
                "grid": plan.grid.to_dict(),
                "nodules": [asdict(n) for n in plan.nodules],
            }
        )
    csv_dir = out / "CSVFILES"
    csv_dir.mkdir(parents=True, exist_ok=True)
    _write_csv_atomic(csv_dir / "candidates.csv", "seriesuid,coordX,coordY,coordZ,class", cand)
    (csv_dir / "truth.json").write_text(json.dumps({"seed": seed, "settings": asdict(s), "scans": truth}, indent=1))
    _write_csv_atomic(csv_dir / "annotations.csv", "seriesuid,coordX,coordY,coordZ,diameter_mm", ann)
    return plans


SUBSET = re.compile(r"subset\d+")


def prune_scans(out: str | Path, plans: list[ScanPlan]) -> list[Path]:
    """Remove from the demo folder ``out`` the scans the data set ``plans`` does not have (those of an earlier
    seed or other demo settings: their series uids differ) and the subset folders it does not have; return
    what was removed.  Only ``subsetK`` folders and scan files (``.mhd``, ``.raw``, ``.zraw``) are touched."""
    out = Path(out)
    keep: dict[str, set[str]] = {}
    for plan in plans:
        keep.setdefault(plan.subset, set()).add(plan.series_uid)
    removed = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and SUBSET.fullmatch(p.name)) if out.is_dir() else []:
        if folder.name not in keep:
            shutil.rmtree(folder)
            removed.append(folder)
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix in (".mhd", ".raw", ".zraw") and f.stem not in keep[folder.name]:
                f.unlink()
                removed.append(f)
    return removed


def stale_demo_outputs(luna_results: str | Path, scans: Mapping[str, list[str]]) -> list[Path]:
    """What a run's LUNA16 results (``<results>/luna16``) still hold that was made from scans the demo data set
    ``scans`` (subset -> series uids) no longer has: converted volumes of other series, and every per-subset
    output of a subset it no longer has (volumes, labels, patch file, pictures, verification report)."""
    base = Path(luna_results)
    stale: list[Path] = []
    volumes = base / "volumes"
    for folder in sorted(volumes.iterdir()) if volumes.is_dir() else []:
        if not (folder.is_dir() and SUBSET.fullmatch(folder.name)):
            continue
        if folder.name not in scans:
            stale.append(folder)
            continue
        keep = set(scans[folder.name])
        stale += [f for f in sorted(folder.iterdir()) if f.suffix in (".npy", ".json") and f.stem not in keep]
    labels = base / "labels"
    if labels.is_dir():
        stale += [p for p in sorted(labels.iterdir()) if SUBSET.fullmatch(p.name) and p.name not in scans]
    for pattern in ("patches/subset*.h5", "sanity/subset*.png", "report/subset*.*"):
        stale += [
            p
            for p in sorted(base.glob(pattern))
            if SUBSET.fullmatch(p.name.split(".")[0]) and p.name.split(".")[0] not in scans
        ]
    return stale


def main(argv=None) -> None:
    """``python -m ctpatch.luna16.demo`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write subsetK/ and CSVFILES/ into")
    ap.add_argument(
        "--settings-file", help="settings file of scope 'demo' (default: the schema's demo defaults and seed)"
    )
    args = ap.parse_args(argv)
    try:
        s = read_settings(args.settings_file, scope="demo") if args.settings_file else defaults("demo")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    plans = write_dataset(args.out, s["demo"], s["seed"])
    n_nod = sum(len(p.nodules) for p in plans)
    print(f"wrote {len(plans)} demo scans with {n_nod} nodules under {args.out}")
    removed = prune_scans(args.out, plans)
    if removed:  # an earlier demo data set (another seed or demo settings): its scans go
        print(f"removed {len(removed)} scan file(s) or subset folder(s) of an earlier demo data set under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
