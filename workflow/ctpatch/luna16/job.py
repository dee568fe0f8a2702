"""LUNA16 nodule mode for the MPI extraction: one work unit per scan.

``Job(settings, inputs)`` takes the two dicts below (the CLI builds ``inputs`` from its arguments,
:func:`add_input_arguments`) and writes
through the patch-sink protocol (:class:`ctpatch.store.sink.PatchSink`); :meth:`Job.run` cuts any span
of a scan's items (nodule patches, then negatives), so the extraction can split a scan into blocks.

In memory, ``inputs`` may instead give ``scans``: a list of ``{"uid", "volume", "sidecar", "mask"}``
(volume and mask as (z, y, x) arrays, the sidecar dict :func:`ctpatch.luna16.convert.convert` returns) and
``nodules`` as a ``pandas.DataFrame`` (``explain`` regenerates a patch this way, without files).

Inputs: ``sidecars`` (the converted scans' JSON files, the ``.npy`` beside each), ``masks_dir``
(label volumes ``<uid>.npy``), ``nodules`` (the subset's nodule table) and, for the ``candidates``
strategy, ``candidates`` (candidates.csv); on the command line ``--sidecars``, ``--masks-dir``,
``--nodules``, ``--candidates``.  Settings (``--settings-file``,
scope ``patches`` of :mod:`ctpatch.settings`): ``seed``, ``buffer_patches`` and the ``luna16`` keys
``patch``, ``negatives`` and ``output``.

A rank holds one scan at a time: its volume and label mask, read in slabs straight into
(x, y, z) order (the patch order, so each patch is one copy of contiguous rows), plus at most
``buffer_patches`` patches per dataset.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.bricks import crop_edge
from ctpatch.core.geometry import VolumeGrid
from ctpatch.core.labels import label_patch
from ctpatch.core.nodules import (
    MaskIndex,
    PatchLocation,
    crop_mask_xyz,
    expected_counts,
    label_edge,
    nodule_locations,
    random_centres,
)
from ctpatch.core.rng import keyed_rng
from ctpatch.core.shifts import shift_offsets
from ctpatch.engine.blocks import Unit
from ctpatch.io.tables import read_candidates
from ctpatch.luna16.layouts import CutSizes, NodulePatch, layout_for
from ctpatch.settings import luna16_job
from ctpatch.settings.types import LunaPatches
from ctpatch.store.identity import file_digest
from ctpatch.store.sink import PatchSink
from ctpatch.store.writer import Specs

#: provenance of one patch; ``spacing`` is its scan's voxel spacing (x, y, z) in mm, the grid the patch was cut
#: from (after resampling: the scan's box over its whole voxels, e.g. 1.2460-1.2527 mm for 1.25 mm)
PROV_NODULE = np.dtype(
    [
        ("scan_index", "<i4"),
        ("patch_index", "<i4"),
        ("seriesuid", "S64"),
        ("nodule_index", "<i4"),
        ("annotation_row", "<i4"),
        ("shift_index", "<i4"),
        ("shift", "<i4", (3,)),
        ("centre_voxel", "<i4", (3,)),
        ("centre_world", "<f8", (3,)),
        ("nodule_voxel", "<i4", (3,)),
        ("nodule_world", "<f8", (3,)),
        ("spacing", "<f8", (3,)),
    ]
)
PROV_NEGATIVE = np.dtype(
    [
        ("scan_index", "<i4"),
        ("patch_index", "<i4"),
        ("seriesuid", "S64"),
        ("negative_index", "<i4"),
        ("source", "S16"),
        ("candidate_row", "<i4"),
        ("centre_voxel", "<i4", (3,)),
        ("centre_world", "<f8", (3,)),
        ("touches_nodule", "?"),
        ("spacing", "<f8", (3,)),
    ]
)


def load_xyz(path, slab_bytes: int = 4 << 20) -> np.ndarray:
    """A (z, y, x) ``.npy`` volume as a C-contiguous (x, y, z) array, read ``slab_bytes`` at a time.

    Only the result and one slab are held (no memory map stays touched); the values are those
    of ``np.load(path).transpose(2, 1, 0)``.
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if len(shape) != 3 or fortran or dtype.hasobject:
            return np.ascontiguousarray(np.load(path, mmap_mode="r").transpose(2, 1, 0))
        nz, ny, nx = shape
        out = np.empty((nx, ny, nz), dtype=dtype)
        step = max(1, slab_bytes // max(ny * nx * dtype.itemsize, 1))
        buf = np.empty((min(step, nz), ny, nx), dtype=dtype)
        for z0 in range(0, nz, step):
            k = min(step, nz - z0)
            view = memoryview(buf[:k]).cast("B")
            if fh.readinto(view) != view.nbytes:
                raise ValueError(f"{path}: truncated: expected {shape} {dtype} (z, y, x)")
            out[:, :, z0 : z0 + k] = buf[:k].transpose(2, 1, 0)
    return out


class _Scan:
    """One scan prepared for cutting: volume and mask (x, y, z), nodule rows, every patch location."""

    def __init__(self, job: "Job", unit: Unit):
        if job.memory is not None:  # in-memory inputs
            scan = job.memory[unit.index]
            sidecar_path, sidecar = f"scan {unit.key}", scan["sidecar"]
            self.volume = np.ascontiguousarray(np.asarray(scan["volume"]).transpose(2, 1, 0))  # (x, y, z)
            self.mask = np.ascontiguousarray(np.asarray(scan["mask"]).transpose(2, 1, 0))
        else:
            sidecar_path = job.sidecars[unit.index]
            sidecar = json.loads(sidecar_path.read_text())
            self.volume = load_xyz(sidecar_path.with_suffix(".npy"))  # (x, y, z)
            self.mask = load_xyz(job.masks_dir / f"{unit.key}.npy")  # (x, y, z)
        self.grid = grid = VolumeGrid.from_dict(sidecar["grid"])
        if self.volume.shape != grid.size or self.mask.shape != grid.size:
            raise ValueError(
                f"{sidecar_path}: volume {self.volume.shape[::-1]} / mask {self.mask.shape[::-1]} do not "
                f"match the grid {grid.shape_zyx} (z, y, x)"
            )
        self.fill = sidecar["min"]
        self.index = MaskIndex(self.mask)
        self.nod = job.table[job.table["seriesuid"] == unit.key].sort_values("nodule_index")
        self.centres_xyz = self.nod[["voxel_x", "voxel_y", "voxel_z"]].to_numpy(np.int64)
        self.nodule_locs = list(nodule_locations(self.centres_xyz[:, ::-1], job.offsets, job.size))
        self.negatives = job.negative_locations(unit, grid, self.mask, self.index)
        pool = job.patch.label_pool
        self.empty_label = label_patch(np.zeros((job.size,) * 3, dtype=bool), pool)  # a crop without nodule
        self.pool = pool

    def label_and_touch(self, loc):
        if not self.index.may_touch(loc):
            return self.empty_label, False
        box = crop_mask_xyz(self.mask, loc)
        return label_patch(box, self.pool), bool(box.any())


def add_input_arguments(ap, required: bool = True) -> None:
    """The inputs as command-line arguments (``ctpatch.luna16.extract``; ``ctpatch.luna16.verify``, where
    they are optional: given, a sample of patches is regenerated from them)."""
    ap.add_argument(
        "--sidecars", nargs="+", required=required, help="the converted scans' JSON sidecars (the .npy beside each)"
    )
    ap.add_argument("--masks-dir", required=required, help="the subset's label volumes <uid>.npy")
    ap.add_argument("--candidates", default=None, help="candidates.csv (negatives.strategy: candidates)")


def input_paths(args) -> dict:
    """The ``inputs`` of :class:`Job` from the parsed arguments (:func:`add_input_arguments`, ``--nodules``)."""
    return {
        "sidecars": list(args.sidecars),
        "masks_dir": args.masks_dir,
        "nodules": args.nodules,
        "candidates": args.candidates,
    }


class Job:
    """The LUNA16 extraction of one subset: ``Job(settings, inputs)`` (see the module docstring)."""

    mode = "luna16"
    parts = 1  # one file per subset
    splittable = True  # a scan's items can be cut in any spans

    def __init__(self, settings: LunaPatches | Mapping, inputs: dict):
        s = self.settings = luna16_job(settings)
        inp = inputs
        self.seed = s.seed
        self.patch = s.patch
        self.neg = s.negatives
        self.out = s.output
        self.shuffle = s.output.shuffle
        self.size = s.patch.size
        self.offsets = shift_offsets(s.patch.stride, s.patch.shifts_per_side, s.patch.directions)
        self.layout = layout_for(s.output.layout)  # what the file stores of each cut (ctpatch.luna16.layouts)
        self.crop = crop_edge(self.size, self.offsets)
        self.sizes = CutSizes(self.size, self.crop, s.output.brick, s.output.dtype)
        self.memory = None
        if "scans" in inp:  # in memory, in uid order as the files would be
            self.memory = sorted(inp["scans"], key=lambda sc: str(sc["uid"]))
            self.uids = [str(sc["uid"]) for sc in self.memory]
        else:
            self.sidecars = sorted((Path(p) for p in inp["sidecars"]), key=lambda p: p.stem)
            self.uids = [p.stem for p in self.sidecars]
            self.masks_dir = Path(inp["masks_dir"])
        nodules = inp["nodules"]
        self.table = (
            nodules.copy()
            if isinstance(nodules, pd.DataFrame)
            else pd.read_csv(nodules, sep="\t", dtype={"seriesuid": str})
        )
        unknown = set(self.table["seriesuid"]) - set(self.uids)
        if unknown:
            where = "nodules" if isinstance(nodules, pd.DataFrame) else nodules
            raise ValueError(f"{where}: nodules of scans not in this subset: {sorted(unknown)[:3]}")
        self.nodule_patches, self.negatives = expected_counts(
            self.table, self.uids, len(self.offsets), self.neg.ratio, self.neg.scans
        )
        self.scan_items = {}  # the layout's items per scan before its patches (volumes: bricks), from its grid
        for i, uid in enumerate(self.uids):
            if self.memory is not None:
                size_xyz = np.asarray(self.memory[i]["volume"]).shape[::-1]
            else:
                size_xyz = VolumeGrid.from_dict(json.loads(self.sidecars[i].read_text())["grid"]).size
            self.scan_items[uid] = self.layout.scan_items(size_xyz, self.sizes)
        self.candidates = None
        self.candidates_path = None
        self.candidates_outside: dict[str, int] = {}
        if self.neg.strategy == "candidates":
            if not inp.get("candidates"):
                raise ValueError(
                    "negatives.strategy 'candidates': expected the candidates table (--candidates candidates.csv), "
                    "got none"
                )
            self.candidates_path = inp["candidates"]
            cand = read_candidates(inp["candidates"])
            self.candidates = cand[(cand["class"] == 0) & cand["seriesuid"].isin(self.uids)]
        self._scan: tuple[str, _Scan] | None = None  # the scan prepared last (a rank's spans come in order)

    def inputs_identity(self) -> dict:
        """What the patch file records of its inputs (:mod:`ctpatch.store.identity`): per scan in uid order
        its series uid and source identity (the sha256 of its header, its data file's name and size, as
        the conversion recorded them in the sidecar), the sha256 of the nodule table, and of candidates.csv
        when the negatives come from it."""
        scans = []
        for i, uid in enumerate(self.uids):
            sidecar = self.memory[i]["sidecar"] if self.memory is not None else json.loads(self.sidecars[i].read_text())
            if "source_identity" not in sidecar:
                where = f"scan {uid}" if self.memory is not None else str(self.sidecars[i])
                raise ValueError(f"{where}: the sidecar records no source_identity (convert it again)")
            scans.append({"seriesuid": uid, **sidecar["source_identity"]})
        nodules = hashlib.sha256(self.table.to_csv(sep="\t", index=False).encode()).hexdigest()
        candidates = file_digest(self.candidates_path) if self.candidates_path else None
        # "scans" first (keys sorted): a file of other scans is named by its first scan, not by a table digest
        return {"scans": scans, "tables": {"nodules": nodules, "candidates": candidates}}

    def units(self) -> list[Unit]:
        return [
            Unit(
                uid,
                i,
                1.0 + self.nodule_patches[uid] + self.negatives[uid] + self.scan_items[uid],
                self.count(Unit(uid, i)),
            )
            for i, uid in enumerate(self.uids)
        ]

    def count(self, unit: Unit) -> int:
        """Items of a scan: the layout's (volumes: its bricks), nodule patches, then negatives."""
        return self.scan_items[unit.key] + self.nodule_patches[unit.key] + self.negatives[unit.key]

    def totals(self, units) -> dict:
        """Rows per provenance table over ``units``."""
        nodules = int(self.table["seriesuid"].isin([u.key for u in units]).sum())
        return {
            "nodule": sum(self.nodule_patches[u.key] for u in units),
            "non_nodule": sum(self.negatives[u.key] for u in units),
            **self.layout.own_rows(nodules, sum(self.scan_items[u.key] for u in units)),
        }

    def specs(self) -> Specs:
        """Datasets, provenance tables and how they align (:class:`ctpatch.store.writer.Specs`), in the layout."""
        p, lab = self.size, label_edge(self.size, self.patch.label_pool)
        img = ((p, p, p, 1), np.dtype(self.out.dtype))
        label = ((lab, lab, lab, 2), np.dtype("float32"))
        return self.layout.specs(
            {"nodule": img, "label_nodule": label, "non_nodule": img, "label_non_nodule": label},
            {"nodule": PROV_NODULE, "non_nodule": PROV_NEGATIVE},
            {"nodule": ("nodule", "label_nodule"), "non_nodule": ("non_nodule", "label_non_nodule")},
            self.sizes,
            self.out.compression,
        )

    def _prepared(self, unit: Unit) -> _Scan:
        if self._scan is None or self._scan[0] != unit.key:
            self._scan = None  # free the previous scan first
            self._scan = (unit.key, _Scan(self, unit))
        return self._scan[1]

    def run(self, unit: Unit, w: PatchSink, start: int = 0, stop: int | None = None) -> dict:
        """Cut items ``[start, stop)`` of the scan ``unit`` into the sink ``w``: the layout's items (volumes:
        the scan's bricks), nodule patches (each with its label), then negatives; of each image patch the
        layout stores what it keeps (:meth:`ctpatch.luna16.layouts.base.Layout.store`: crops, the nodule's
        crop before its first shift; volumes, nothing)."""
        sc = self._prepared(unit)
        n_nod = len(sc.nodule_locs)
        n_first = self.scan_items[unit.key]
        total = n_first + n_nod + len(sc.negatives)
        stop = total if stop is None else min(int(stop), total)
        key = unit.key.encode()
        done = {"nodule_patches": 0, "negatives": 0}
        if start < n_first:
            done.update(
                self.layout.cut_scan_items(
                    w, sc.volume, sc.fill, self.sizes, unit.index, key, int(start), min(stop, n_first)
                )
            )
        for i in range(max(int(start), n_first) - n_first, stop - n_first):
            if i < n_nod:
                n, s, loc = sc.nodule_locs[i]
                row = sc.nod.iloc[n]
                centre_xyz = np.asarray(loc.centre_zyx[::-1])
                nodule = NodulePatch(unit.index, key, n, int(row["annotation_row"]), sc.centres_xyz[n], s)
                self.layout.store(w, "nodule", sc.volume, sc.fill, loc, self.sizes, nodule)
                w.add("label_nodule", sc.label_and_touch(loc)[0])
                w.add_row(
                    "nodule",
                    (
                        unit.index,
                        i,
                        key,
                        n,
                        int(row["annotation_row"]),
                        s,
                        self.offsets[s],
                        centre_xyz,
                        sc.grid.index_to_world(centre_xyz),
                        sc.centres_xyz[n],
                        (row["world_x"], row["world_y"], row["world_z"]),
                        sc.grid.spacing,
                    ),
                )
                done["nodule_patches"] += 1
            else:
                j = i - n_nod
                loc, source, cand_row = sc.negatives[j]
                centre_xyz = np.asarray(loc.centre_zyx[::-1])
                self.layout.store(w, "non_nodule", sc.volume, sc.fill, loc, self.sizes, None)
                label, touches = sc.label_and_touch(loc)
                w.add("label_non_nodule", label)
                w.add_row(
                    "non_nodule",
                    (
                        unit.index,
                        j,
                        key,
                        j,
                        source.encode(),
                        cand_row,
                        centre_xyz,
                        sc.grid.index_to_world(centre_xyz),
                        touches,
                        sc.grid.spacing,
                    ),
                )
                done["negatives"] += 1
        if start == 0 and stop == total:
            done["nodules"] = len(sc.nod)
            self._scan = None  # a whole scan: nothing else will need it
        if unit.key in self.candidates_outside:
            done["candidates_outside_volume"] = self.candidates_outside[unit.key]
        return done

    def negative_locations(
        self, unit: Unit, grid: VolumeGrid, mask, index: MaskIndex | None = None
    ) -> list[tuple[PatchLocation, str, int]]:
        """The negatives of one scan as (location, source, candidates.csv row or -1); ``mask`` is (x, y, z)."""
        count = self.negatives[unit.key]
        rng = keyed_rng(self.seed, "negatives", unit.key)
        strategy = self.neg.strategy
        if strategy == "random":
            return [
                (PatchLocation(tuple(int(v) for v in c), self.size), "random", -1)
                for c in random_centres(grid.shape_zyx, count, rng)
            ]
        out = []
        if strategy == "candidates":
            cand = self.candidates[self.candidates["seriesuid"] == unit.key]
            vox = grid.world_to_voxel(cand[["coordX", "coordY", "coordZ"]].to_numpy(float)).reshape(-1, 3)
            inside = np.all((vox >= 0) & (vox < np.asarray(grid.size)), axis=1)
            self.candidates_outside[unit.key] = int((~inside).sum())
            order = rng.permutation(np.flatnonzero(inside))[:count]
            out = [
                (PatchLocation(tuple(int(v) for v in vox[i][::-1]), self.size), "candidate", int(cand["row"].iloc[i]))
                for i in order
            ]
        source = "avoid_nodules" if strategy == "avoid_nodules" else "fill"
        while len(out) < count:
            for _ in range(self.neg.max_tries):
                loc = PatchLocation(tuple(int(v) for v in random_centres(grid.shape_zyx, 1, rng)[0]), self.size)
                if not ((index is None or index.may_touch(loc)) and crop_mask_xyz(mask, loc).any()):
                    out.append((loc, source, -1))
                    break
            else:
                raise RuntimeError(
                    f"scan {unit.key}: no patch free of nodules found in {self.neg['max_tries']} "
                    f"draws (negative {len(out)} of {count}); raise negatives.max_tries or use "
                    f"strategy 'random'"
                )
        return out
