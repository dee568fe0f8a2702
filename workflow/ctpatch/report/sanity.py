"""Sanity pictures: a PNG grid of randomly chosen patches with their provenance as titles.

LDCT files (datasets ``input``/``target``, table ``provenance/patch``): one row per chosen
patch, columns input, target and input - target; input and target share one grey scale, the
difference has a symmetric red/blue scale.  Super-resolution files: the LR input is shown at
its size, and repeated (nearest) to the target's size for the difference; the title gives the
LR and the HR corner.  The title names patient, slice (z, instance),
pair and patch index, the corner in the copy's pixel grid, the downscale factor and the
augmentations (rotation, flip, blend factor, blur, noise).

LUNA16 files (datasets ``nodule``/``label_nodule`` and ``non_nodule``/``label_non_nodule``):
one row per chosen patch, columns the axial, coronal and sagittal slices of the patch (stored
(x, y, z, 1)), with the nodule class of the pooled label (upsampled by the pool factor) overlaid
in red.  A nodule patch is cut through its label's centre (the centroid of its nodule voxels;
without any, through the nodule centre its provenance gives), so a shifted patch shows its
nodule; a negative through its middle.  Images are shown in a lung window (:data:`LUNG_WINDOW_HU`,
mapped through the file's ``normalize`` settings).
Titles give the series uid (tail), the nodule and shift or the negative's source, and the centre
voxel (x, y, z); panel titles the slice shown.

The patches are drawn uniformly without replacement over all given files with
``keyed_rng(seed, "sanity")``.  LUNA16 negatives that are (nearly) all air (fewer than
:data:`AIR_SHARE` of their voxels above :data:`AIR_HU`) are passed over for the next drawn patch
while others are left, so the picture shows tissue when the file has any.  The PNG is written
through a temporary name (Agg backend).

Usage: ``python -m ctpatch.report.sanity --patches X.h5 [Y.h5 ...] --out pairs.png --n 8 --seed 0``; one
picture per patient in one process: ``--patches L096.h5 L143.h5 --out L096.png L143.png`` (each
picture's files together, in the order of the pictures, named after it: ``L096.part0.h5 L096.part1.h5``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ctpatch.core.normalize import hu_window  # noqa: E402
from ctpatch.core.rng import keyed_rng  # noqa: E402
from ctpatch.luna16.layouts import has_images, images  # noqa: E402
from ctpatch.readers.contract import file_mode, file_settings  # noqa: E402  (one rule for telling the modes apart)
from ctpatch.store.atomic import atomic_path  # noqa: E402
from ctpatch.store.h5 import h5py  # noqa: E402

RED = matplotlib.colors.ListedColormap(["red"])
#: display window of LUNA16 pictures in HU: the usual lung window (level -600, width 1500)
LUNG_WINDOW_HU = (-1350.0, 150.0)
#: a negative is "air" (passed over for the picture when others are left) when fewer than AIR_SHARE
#: of its voxels are above AIR_HU
AIR_HU, AIR_SHARE = -900.0, 0.05
#: caption font sizes (points) and PNG resolution
TITLE_PT, PANEL_PT, GRID_PT, DPI = 12, 10, 9, 100
LUNA_GROUPS = (("nodule", "label_nodule", "nodule"), ("non_nodule", "label_non_nodule", "non_nodule"))


def _dec(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def pick(counts: list[int], n: int, seed: int) -> list[tuple[int, int]]:
    """``min(n, total)`` items (group number, row) drawn without replacement over groups of ``counts`` rows.

    >>> pick([2, 3], 10, 0)
    [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    """
    total = int(sum(counts))
    if n < 1:
        raise ValueError(f"Expected n >= 1, got n={n!r}")
    chosen = np.sort(keyed_rng(seed, "sanity").choice(total, size=min(n, total), replace=False)) if total else []
    offsets = np.cumsum([0, *counts])
    out = []
    for c in chosen:
        g = int(np.searchsorted(offsets, c, side="right") - 1)
        out.append((g, int(c - offsets[g])))
    return out


def draw_order(counts: list[int], seed: int):
    """Every (group number, row) of groups of ``counts`` rows, in the order of ``keyed_rng(seed, "sanity")``:
    the first ``n`` are a uniform draw of ``n`` without replacement.

    >>> sorted(draw_order([2, 1], 0))
    [(0, 0), (0, 1), (1, 0)]
    """
    offsets = np.cumsum([0, *counts])
    for c in keyed_rng(seed, "sanity").permutation(int(offsets[-1])):
        g = int(np.searchsorted(offsets, c, side="right") - 1)
        yield g, int(c - offsets[g])


def _hu_settings(settings: dict) -> dict:
    norm = settings["normalize"]
    return {k: norm[k] for k in ("hu_min", "hu_max", "clip", "center")}


def describe_ldct(row) -> str:
    """Two-line title of one LDCT patch from its provenance row."""
    aug = []
    if int(row["rot_k"]):
        aug.append(f"rot {90 * int(row['rot_k'])}°")
    if _dec(row["flip"]):
        aug.append(f"flip {_dec(row['flip'])}")
    if math.isfinite(float(row["blend"])):
        aug.append(f"blend f={float(row['blend']):.3f}")
    if bool(row["blur"]):
        aug.append("blur")
    if bool(row["noise"]):
        aug.append("noise")
    z = float(row["slice_z"])
    r, c = (int(v) for v in row["corner"])
    where = f"corner ({r}, {c})"
    if "hr_corner" in row.dtype.names:  # super-resolution: LR corner -> HR corner
        hr, hc = (int(v) for v in row["hr_corner"])
        where = f"LR corner ({r}, {c}) -> HR ({hr}, {hc})"
    return (
        f"{_dec(row['patient'])} z={z:g} mm #{int(row['instance'])} pair {int(row['pair_index'])} "
        f"patch {int(row['patch_index'])}\n{where} at x{float(row['downscale']):g}; "
        f"{', '.join(aug) or 'no augmentation'}"
    )


def upsample_to(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An LR patch repeated by ``shape[0] // lr.shape[0]`` (nearest), padded with its edge or cut to ``shape``.

    Used to show a super-resolution input next to its (larger) target.

    >>> upsample_to(np.array([[1.0, 2.0]] * 2), (5, 5))[:, -1].tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    k = max(1, shape[0] // lr.shape[0])
    big = np.repeat(np.repeat(lr, k, axis=0), k, axis=1)[: shape[0], : shape[1]]
    pad = ((0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1]))
    return np.pad(big, pad, mode="edge") if any(p[1] for p in pad) else big


def describe_luna(group: str, row) -> str:
    """Two-line title of one LUNA16 patch from its provenance row."""
    uid = _dec(row["seriesuid"])
    centre = [int(v) for v in row["centre_voxel"]]
    if group == "nodule":
        what = f"nodule {int(row['nodule_index'])} shift {[int(v) for v in row['shift']]}"
    else:
        what = f"negative {int(row['negative_index'])} ({_dec(row['source'])})"
    return f"…{uid[-12:]} {what}\ncentre {centre} (x, y, z)"


def _plane2d(patch: np.ndarray) -> np.ndarray:
    """(H, W) of a stored LDCT patch, (1, H, W) (torch) or (H, W, 1) (tf)."""
    a = np.asarray(patch, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        return a[..., 0]
    raise ValueError(f"Expected an LDCT patch of shape (1, H, W) or (H, W, 1), got {a.shape}")


def _ldct_rows(files, n, seed):
    counts = [f["input"].shape[0] for f in files]
    rows = []
    for k, r in pick(counts, n, seed):
        f = files[k]
        title = describe_ldct(f["provenance/patch"][r])
        inp, tgt = _plane2d(f["input"][r]), _plane2d(f["target"][r])
        rows.append((title, inp, tgt))
    return rows


def _upsample_label(label: np.ndarray, size: int) -> np.ndarray:
    """Nodule class of a pooled (L, L, L, 2) label, repeated back to (size, size, size) bool."""
    lab = np.asarray(label)[..., 1] > 0
    pool = -(-size // lab.shape[0])
    for axis in range(3):
        lab = np.repeat(lab, pool, axis=axis)
    return lab[:size, :size, :size]


def display_window(settings: dict) -> tuple[float, float]:
    """(vmin, vmax) of :data:`LUNG_WINDOW_HU` in the stored values of a LUNA16 file, from its ``normalize``
    settings.

    >>> display_window({"normalize": {"hu_min": -1000.0, "hu_max": 400.0, "clip": True, "center": 0.25}})
    (-0.25, 0.571429)
    """
    lo, hi = hu_window(np.array(LUNG_WINDOW_HU), **_hu_settings(settings)).tolist()
    return round(lo, 6), round(hi, 6)


def air_level(settings: dict) -> float:
    """:data:`AIR_HU` in the stored values, from the file's ``normalize`` settings."""
    return float(hu_window(np.array([AIR_HU]), **_hu_settings(settings))[0])


def is_air(image: np.ndarray, level: float) -> bool:
    """True when fewer than :data:`AIR_SHARE` of the voxels are above ``level``.

    >>> is_air(np.full((4, 4, 4), -0.25), -0.18), is_air(np.r_[np.full(90, -0.25), np.zeros(10)], -0.18)
    (True, False)
    """
    return float(np.mean(image > level)) < AIR_SHARE


def label_centre(label_xyz: np.ndarray, prov=None) -> tuple[int, int, int]:
    """Voxel (x, y, z) a nodule patch is shown through: the centre of its nodule's label sphere.

    That is the nodule centre the provenance gives (``nodule_voxel - centre_voxel + edge // 2``)
    when it lies in the patch; else the centroid of the label's nodule voxels; else the middle.

    >>> lab = np.zeros((20, 20, 20), bool); lab[2:5, 10:13, 16:19] = True
    >>> label_centre(lab)
    (3, 11, 17)
    """
    shape = np.asarray(label_xyz.shape[:3])
    if prov is not None:
        at = np.asarray(prov["nodule_voxel"], dtype=np.int64) - np.asarray(prov["centre_voxel"]) + shape // 2
        if np.all((at >= 0) & (at < shape)):
            return tuple(int(v) for v in at)
    if label_xyz.any():
        return tuple(int(round(v)) for v in np.argwhere(label_xyz).mean(axis=0))
    return tuple(int(v) for v in shape // 2)


def _luna_rows(files, n, seed, kind=None, centre_only=False):
    groups = [(k, g) for k, f in enumerate(files) for g in LUNA_GROUPS if has_images(f, g[0]) and kind in (None, g[0])]
    allowed = []
    for k, (img_name, lab_name, table) in groups:
        rows_ok = np.arange(images(files[k], img_name).shape[0])
        if centre_only and table == "nodule":
            rows_ok = np.flatnonzero(files[k][f"provenance/{table}"]["shift_index"] == 0)
        allowed.append(rows_ok)
    counts = [len(a) for a in allowed]
    settings = file_settings(files[0])
    level = air_level(settings)
    rows, airy = [], []
    for gi, i in draw_order(counts, seed):  # every allowed patch, in the seeded order
        if len(rows) >= n:
            break
        r = int(allowed[gi][i])
        k, (img_name, lab_name, table) = groups[gi]
        f = files[k]
        img = np.asarray(images(f, img_name)[r], dtype=np.float32)[..., 0]  # (x, y, z); crops layout: cut from the crop
        if img_name == "non_nodule" and is_air(img, level):
            if len(airy) < n:
                airy.append((gi, r))  # shown only when too few negatives hold tissue
            continue
        rows.append(_luna_row(f, img_name, lab_name, table, r, img))
    for gi, r in airy[: max(0, n - len(rows))]:
        k, (img_name, lab_name, table) = groups[gi]
        img = np.asarray(images(files[k], img_name)[r], dtype=np.float32)[..., 0]
        rows.append(_luna_row(files[k], img_name, lab_name, table, r, img))
    return rows, display_window(settings)


def _luna_row(f, img_name, lab_name, table, r, img):
    """(title, [(image plane, label plane, panel title)] x 3) of one LUNA16 patch."""
    lab = _upsample_label(f[lab_name][r], img.shape[0])
    prov = f[f"provenance/{table}"][r]
    title = describe_luna(img_name, prov)
    cx, cy, cz = label_centre(lab, prov) if img_name == "nodule" else tuple(s // 2 for s in img.shape)
    planes = [
        (img[:, :, cz].T, lab[:, :, cz].T, f"axial z={cz} (y, x)"),
        (img[:, cy, :].T, lab[:, cy, :].T, f"coronal y={cy} (z, x)"),
        (img[cx, :, :].T, lab[cx, :, :].T, f"sagittal x={cx} (z, y)"),
    ]
    return title, planes


def make_figure(
    paths, n: int = 8, seed: int = 0, kind: str | None = None, centre_only: bool = False, grid: bool = False
):
    """The figure and the titles of its rows (one per chosen patch).

    LUNA16 only: ``kind`` ("nodule" or "non_nodule") limits the patches to one group,
    ``centre_only`` shows only unshifted nodule patches (one per nodule), and ``grid`` draws
    just the axial mid-slice of each patch in a compact grid (for many negatives at a glance).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("Expected at least one patch file")
    for p in paths:
        if not Path(p).is_file():
            raise ValueError(f"{p}: file not found")
    files = [h5py.File(p, "r") for p in paths]
    try:
        modes = {file_mode(f, p) for f, p in zip(files, paths)}
        if len(modes) != 1:
            raise ValueError(f"Expected patch files of one mode, got {sorted(modes)} in {paths}")
        mode = modes.pop()
        if mode == "ldct":
            rows, window = _ldct_rows(files, n, seed), None
        else:
            rows, window = _luna_rows(files, n, seed, kind, centre_only)
    finally:
        for f in files:
            f.close()
    if not rows:
        raise ValueError(f"no patches in {paths}")
    if grid and mode == "luna16":
        return _grid_figure(rows, window), [r[0] for r in rows]
    return _rows_figure(rows, mode, window), [r[0] for r in rows]


#: the row pictures' geometry in pixels (at DPI): figure width, row height, panel edge, the panels'
#: left edge and step, and where a row's panels start below its top.  The panels are painted into one
#: image (nearest-neighbour enlarged) and the captions are figure texts: one image, not 3 axes and 3
#: colorbars per row, which took matplotlib's layout engine most of the time of a picture
FIG_PX, ROW_PX, PANEL_PX, PANEL_X0, PANEL_STEP, PANEL_TOP = 1000, 390, 250, 45, 320, 90


def _rgb(img: np.ndarray, lo: float, hi: float, cmap: str) -> np.ndarray:
    """``img`` through ``cmap`` with ``lo``..``hi`` mapped to its ends, as uint8 RGB."""
    from matplotlib import colormaps

    norm = np.clip((np.asarray(img, np.float64) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    return (colormaps[cmap](norm)[..., :3] * 255).round().astype(np.uint8)


def _enlarge(rgb: np.ndarray, edge: int) -> np.ndarray:
    """``rgb`` repeated by the largest whole factor that keeps it within ``edge`` pixels (nearest neighbour)."""
    k = max(1, edge // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)


def _ldct_panels(row) -> list[tuple[np.ndarray, str]]:
    """Input, target (one grey window: their joint range) and input − target (blue < 0 < red)."""
    _, inp, tgt = row
    lo, hi = float(min(inp.min(), tgt.min())), float(max(inp.max(), tgt.max()))
    sr = inp.shape != tgt.shape
    diff = (upsample_to(inp, tgt.shape) if sr else inp) - tgt
    m = float(np.abs(diff).max()) or 1.0
    in_name = f"input (LR {inp.shape[0]}²)" if sr else "input"
    diff_name = "input (upsampled, nearest) − target" if sr else "input − target"
    grey = f"grey {_dec(lo)} … {_dec(hi)}"
    return [
        (_rgb(inp, lo, hi, "gray"), f"{in_name}\n{grey}"),
        (_rgb(tgt, lo, hi, "gray"), f"target\n{grey}"),
        (_rgb(diff, -m, m, "RdBu_r"), f"{diff_name}\nblue −{_dec(m)} … red +{_dec(m)}"),
    ]


def _luna_panels(row, window) -> list[tuple[np.ndarray, str]]:
    """The three planes in ``window`` (vmin, vmax), the label in red."""
    out = []
    lo, hi = window
    for img, lab, name in row[1]:
        rgb = _rgb(img, lo, hi if hi > lo else lo + 1, "gray").astype(np.float32)
        mask = np.asarray(lab, bool)
        rgb[mask] = 0.6 * rgb[mask] + 0.4 * np.array([255.0, 0.0, 0.0])
        out.append((rgb.round().astype(np.uint8), name))
    return out


def _rows_figure(rows, mode: str, window):
    """One row per patch: its title, then three panels with their captions."""
    height = ROW_PX * len(rows)
    canvas = np.full((height, FIG_PX, 3), 255, np.uint8)
    fig = plt.figure(figsize=(FIG_PX / DPI, height / DPI), dpi=DPI)
    for i, row in enumerate(rows):
        top = i * ROW_PX
        fig.text(0.5, 1 - (top + 8) / height, row[0], ha="center", va="top", fontsize=TITLE_PT)
        panels = _ldct_panels(row) if mode == "ldct" else _luna_panels(row, window)
        for k, (rgb, name) in enumerate(panels):
            x0, y0 = PANEL_X0 + k * PANEL_STEP, top + PANEL_TOP
            big = _enlarge(rgb, PANEL_PX)
            h, w = big.shape[:2]
            x, y = x0 + (PANEL_PX - w) // 2, y0 + (PANEL_PX - h) // 2
            canvas[y - 1 : y + h + 1, x - 1 : x + w + 1] = 80  # a thin frame
            canvas[y : y + h, x : x + w] = big
            fig.text(
                (x0 + PANEL_PX / 2) / FIG_PX, 1 - (y - 4) / height, name, ha="center", va="bottom", fontsize=PANEL_PT
            )
    # the panels: painted over the drawn texts by write_png (matplotlib's figimage resamples the whole
    # image even at 1:1, most of a picture's time); savefig of this figure alone shows the captions only
    fig.ctpatch_canvas = canvas
    return fig


def _png_bytes(fig) -> bytes:
    """The figure as PNG: its drawing, with the painted panels (``fig.ctpatch_canvas``) where they are."""
    from io import BytesIO

    from PIL import Image

    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    canvas = getattr(fig, "ctpatch_canvas", None)
    if canvas is not None:
        painted = (canvas != 255).any(axis=-1)
        image[painted] = canvas[painted]
    out = BytesIO()
    Image.fromarray(image).save(out, format="png", compress_level=3)
    return out.getvalue()


def _show(ax, img, lab, window) -> None:
    """A grey image in ``window`` (vmin, vmax), the label in red."""
    lo, hi = window
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
    ax.imshow(np.ma.masked_where(~lab, lab.astype(float)), cmap=RED, alpha=0.4, vmin=0, vmax=1)


def _grid_title(title: str) -> str:
    """The grid's short caption: the title without the uid tail (what, then the centre)."""
    first, _, second = title.partition("\n")
    what = first.split(" ", 1)[1] if first.startswith("…") else first
    return f"{what}\n{second.replace(' (x, y, z)', '')}"


def _grid_figure(rows, window):
    """Axial mid-slices of LUNA16 patches, label in red, four to a row."""
    cols = min(4, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(3.0 * cols, 3.5 * lines), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, planes) in zip(axes.ravel(), rows):
        img, lab, _ = planes[0]
        _show(ax, img, lab, window)
        ax.set_title(_grid_title(title), fontsize=GRID_PT)
    return fig


def write_png(paths, out, n: int = 8, seed: int = 0, **options) -> list[str]:
    """Write the sanity PNG ``out`` atomically; return the row titles (options: see make_figure)."""
    fig, titles = make_figure(paths, n, seed, **options)
    try:
        with atomic_path(out) as tmp:
            if hasattr(fig, "ctpatch_canvas"):
                Path(tmp).write_bytes(_png_bytes(fig))
            else:
                fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return titles


def main(argv=None) -> int:
    """``python -m ctpatch.report.sanity`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    from ctpatch.cli import per_group, run_each

    ap = argparse.ArgumentParser(prog="python -m ctpatch.report.sanity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", nargs="+", required=True, help="merged patch file(s) of one mode")
    ap.add_argument("--out", nargs="+", required=True, help="the PNG to write (several: one per group of files)")
    ap.add_argument("--n", type=int, default=8, help="number of patches shown")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", choices=["nodule", "non_nodule"], help="LUNA16: show only this group")
    ap.add_argument("--centre-only", action="store_true", help="LUNA16: only unshifted nodule patches")
    ap.add_argument("--grid", action="store_true", help="LUNA16: axial mid-slices in a compact grid")
    args = ap.parse_args(argv)
    try:
        files = (
            [list(args.patches)]
            if len(args.out) == 1
            else per_group([Path(o).stem for o in args.out], args.patches, "--patches")
        )
    except ValueError as exc:
        ap.error(str(exc))

    def picture(job) -> int:
        patches, out = job
        try:
            titles = write_png(
                patches, out, args.n, args.seed, kind=args.kind, centre_only=args.centre_only, grid=args.grid
            )
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {out}: {len(titles)} patches")
        return 0

    return run_each(list(zip(files, args.out)), picture)


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
