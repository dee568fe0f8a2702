"""Sanity pictures: a PNG grid of randomly chosen patches with their provenance as titles.

LDCT files (datasets ``input``/``target``, table ``provenance/patch``): one row per chosen
patch, columns input, target and input - target; input and target share one grey scale, the
difference has a symmetric red/blue scale.  Super-resolution files: the LR input is shown at
its size, and repeated (nearest) to the target's size for the difference; the title gives the
LR and the HR corner.  The title names patient, slice (z, instance),
pair and patch index, the corner in the copy's pixel grid, the downscale factor and the
augmentations (rotation, flip, blend factor, blur, noise).

LUNA16 files (datasets ``nodule``/``label_nodule`` and ``non_nodule``/``label_non_nodule``):
one row per chosen patch, columns the axial, coronal and sagittal mid-slices of the patch
(stored (x, y, z, 1)), with the nodule class of the pooled label (upsampled by the pool
factor) overlaid in red.  Titles give the series uid (tail), the nodule and shift or the
negative's source, and the centre voxel (x, y, z).

The patches are drawn uniformly without replacement over all given files with
``keyed_rng(seed, "sanity")``; the PNG is written through a temporary name (Agg backend).

Usage: ``python -m ctpatch.sanity --patches X.h5 [Y.h5 ...] --out pairs.png --n 8 --seed 0``
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ctpatch.data import file_mode  # noqa: E402  (one rule for telling the modes apart)
from ctpatch.layout import has_images, images  # noqa: E402
from ctpatch.rng import keyed_rng  # noqa: E402
from ctpatch.store import atomic_path  # noqa: E402

RED = matplotlib.colors.ListedColormap(["red"])
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
    if row.dtype.names and "hr_corner" in row.dtype.names:  # super-resolution: LR corner -> HR corner
        hr, hc = (int(v) for v in row["hr_corner"])
        where = f"LR corner ({r}, {c}) -> HR ({hr}, {hc})"
    return (f"{_dec(row['patient'])} z={z:g} mm #{int(row['instance'])} pair {int(row['pair_index'])} "
            f"patch {int(row['patch_index'])}\n{where} at x{float(row['downscale']):g}; "
            f"{', '.join(aug) or 'no augmentation'}")


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


def _ldct_rows(files, paths, n, seed):
    counts = [f["input"].shape[0] for f in files]
    rows = []
    for k, r in pick(counts, n, seed):
        f = files[k]
        prov = f["provenance/patch"][r] if "provenance/patch" in f else None
        title = describe_ldct(prov) if prov is not None else f"{Path(paths[k]).name} row {r}"
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


def _luna_rows(files, paths, n, seed, kind=None, centre_only=False):
    groups = [(k, g) for k, f in enumerate(files) for g in LUNA_GROUPS if has_images(f, g[0]) and kind in (None, g[0])]
    allowed = []
    for k, (img_name, lab_name, table) in groups:
        rows_ok = np.arange(images(files[k], img_name).shape[0])
        if centre_only and table == "nodule" and f"provenance/{table}" in files[k]:
            rows_ok = np.flatnonzero(files[k][f"provenance/{table}"]["shift_index"] == 0)
        allowed.append(rows_ok)
    counts = [len(a) for a in allowed]
    rows = []
    for gi, i in pick(counts, n, seed):
        r = int(allowed[gi][i])
        k, (img_name, lab_name, table) = groups[gi]
        f = files[k]
        img = np.asarray(images(f, img_name)[r], dtype=np.float32)[..., 0]  # (x, y, z); crops layout: cut from the crop
        lab = _upsample_label(f[lab_name][r], img.shape[0]) if lab_name in f else np.zeros(img.shape, bool)
        key = f"provenance/{table}"
        title = describe_luna(img_name, f[key][r]) if key in f else f"{Path(paths[k]).name} {img_name} row {r}"
        mx, my, mz = (s // 2 for s in img.shape)
        planes = [(img[:, :, mz].T, lab[:, :, mz].T, "axial (y, x)"),
                  (img[:, my, :].T, lab[:, my, :].T, "coronal (z, x)"),
                  (img[mx, :, :].T, lab[mx, :, :].T, "sagittal (z, y)")]
        rows.append((title, planes))
    return rows


def make_figure(paths, n: int = 8, seed: int = 0, kind: str | None = None, centre_only: bool = False,
                grid: bool = False):
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
        rows = (_ldct_rows(files, paths, n, seed) if mode == "ldct"
                else _luna_rows(files, paths, n, seed, kind, centre_only))
    finally:
        for f in files:
            f.close()
    if not rows:
        raise ValueError(f"no patches in {paths}")
    if grid and mode == "luna16":
        return _grid_figure(rows), [r[0] for r in rows]
    fig = plt.figure(figsize=(9, 3.2 * len(rows)), layout="constrained")
    subfigs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
    titles = []
    for sub, row in zip(subfigs, rows):
        title = row[0]
        titles.append(title)
        sub.suptitle(title, fontsize=8)
        ax_row = sub.subplots(1, 3)
        if mode == "ldct":
            _, inp, tgt = row
            lo, hi = float(min(inp.min(), tgt.min())), float(max(inp.max(), tgt.max()))
            sr = inp.shape != tgt.shape
            diff = (upsample_to(inp, tgt.shape) if sr else inp) - tgt
            m = float(np.abs(diff).max()) or 1.0
            in_name = f"input (LR {inp.shape[0]}²)" if sr else "input"
            diff_name = "input (upsampled, nearest) − target" if sr else "input − target"
            for ax, img, name, kw in ((ax_row[0], inp, in_name, {"cmap": "gray", "vmin": lo, "vmax": hi}),
                                      (ax_row[1], tgt, "target", {"cmap": "gray", "vmin": lo, "vmax": hi}),
                                      (ax_row[2], diff, diff_name, {"cmap": "RdBu_r", "vmin": -m, "vmax": m})):
                im = ax.imshow(img, **kw)
                ax.set_title(name, fontsize=8)
                sub.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        else:
            for ax, (img, lab, name) in zip(ax_row, row[1]):
                ax.imshow(img, cmap="gray")
                ax.imshow(np.ma.masked_where(~lab, lab.astype(float)), cmap=RED, alpha=0.4, vmin=0, vmax=1)
                ax.set_title(name, fontsize=8)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig, titles


def _grid_figure(rows):
    """Axial mid-slices of LUNA16 patches, label in red, six to a row."""
    cols = min(6, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(2.0 * cols, 2.3 * lines), squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (title, planes) in zip(axes.ravel(), rows):
        img, lab, _ = planes[0]
        ax.imshow(img, cmap="gray")
        ax.imshow(np.ma.masked_where(~lab, lab.astype(float)), cmap=RED, alpha=0.4, vmin=0, vmax=1)
        ax.set_title(title, fontsize=5)
    return fig


def write_png(paths, out, n: int = 8, seed: int = 0, **options) -> list[str]:
    """Write the sanity PNG ``out`` atomically; return the row titles (options: see make_figure)."""
    fig, titles = make_figure(paths, n, seed, **options)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=72)
    finally:
        plt.close(fig)
    return titles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.sanity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", nargs="+", required=True, help="merged patch file(s) of one mode")
    ap.add_argument("--out", required=True, help="the PNG to write")
    ap.add_argument("--n", type=int, default=8, help="number of patches shown")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", choices=["nodule", "non_nodule"], help="LUNA16: show only this group")
    ap.add_argument("--centre-only", action="store_true", help="LUNA16: only unshifted nodule patches")
    ap.add_argument("--grid", action="store_true", help="LUNA16: axial mid-slices in a compact grid")
    args = ap.parse_args(argv)
    try:
        titles = write_png(args.patches, args.out, args.n, args.seed, kind=args.kind,
                           centre_only=args.centre_only, grid=args.grid)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(titles)} patches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
