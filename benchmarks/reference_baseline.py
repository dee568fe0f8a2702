"""REFERENCE-STYLE BASELINE (not ctpatch): the LUNA16 flow as the reference program ran it.

Written here from the description in SPEC §1 to measure what ctpatch is compared with; it is not
used by the package.  What makes it "reference-style":

* resampling with ``scipy.ndimage.zoom(order=3, mode="nearest")`` (cubic) in float64;
* float64 image patches (the reference's accidental dtype) and float64 label patches;
* every patch of every scan kept in Python lists, then one HDF5 write at the end
  (lzf, h5py's automatic chunking: chunks spanning many patches).

It does the same amount of work as ctpatch (57 distinct patches per nodule, 3 negatives per
nodule patch, 9³ max-pooled one-hot labels); the reference's bugs (swapped axes, collapsed
minus shifts) are not reproduced, since they do not change the cost.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy.ndimage import zoom

SIZE, STRIDE, SHIFTS, POOL, RATIO = 68, 8, 4, 9, 3
DIRECTIONS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1))


def load_resampled(path: str, spacing_mm: float = 1.25):
    image = sitk.ReadImage(path)
    hu = sitk.GetArrayFromImage(image).astype(np.float64)  # (z, y, x)
    origin = np.array(image.GetOrigin())[::-1]
    spacing = np.array(image.GetSpacing())[::-1]
    new_shape = np.round(np.array(hu.shape) * spacing / spacing_mm)
    factor = new_shape / np.array(hu.shape)
    hu = zoom(hu, factor, order=3, mode="nearest")
    return hu, origin, spacing / factor


def normalize(hu):
    return np.clip((hu + 1000.0) / 1400.0, 0.0, 1.0) - 0.25


def label_volume(shape, origin, spacing, nodules):
    mask = np.zeros(shape, dtype=bool)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centres = []
    for _, n in nodules.iterrows():
        c = (np.abs(np.array([n.coordZ, n.coordY, n.coordX]) - origin) / spacing).astype(int)
        r = int((n.diameter_mm / spacing[1]) // 2)
        mask |= (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
        centres.append(c)
    return mask, centres


def pooled_label(crop):
    n = -(-SIZE // POOL)
    padded = np.zeros((n * POOL,) * 3)
    padded[:SIZE, :SIZE, :SIZE] = crop
    pooled = padded.reshape(n, POOL, n, POOL, n, POOL).max(axis=(1, 3, 5))
    return np.stack([1.0 - pooled, pooled], axis=-1)


def scan_patches(path, nodules, rng, nod_img, nod_lab, neg_img, neg_lab):
    hu, origin, spacing = load_resampled(path)
    img = normalize(hu)
    mask, centres = label_volume(img.shape, origin, spacing, nodules)
    img, mask = img.transpose(2, 1, 0), mask.transpose(2, 1, 0)  # (x, y, z)
    h = SIZE // 2
    pad = h + STRIDE * SHIFTS
    img = np.pad(img, pad, mode="constant", constant_values=img.min())
    mask = np.pad(mask, pad, mode="constant", constant_values=0)
    count = 0
    for c in centres:
        cx = np.array(c[::-1]) + pad
        offsets = [np.zeros(3, int)] + [
            s * STRIDE * k * np.array(d) for d in DIRECTIONS for k in range(1, SHIFTS + 1) for s in (1, -1)
        ]
        for off in offsets:
            lo = cx + off - h
            box = tuple(slice(a, a + SIZE) for a in lo)
            nod_img.append(img[box][..., None].copy())
            nod_lab.append(pooled_label(mask[box]))
            count += 1
    shape = np.array(img.shape) - 2 * pad
    for _ in range(RATIO * count):
        lo = rng.integers(0, shape) + pad - h
        box = tuple(slice(a, a + SIZE) for a in lo)
        neg_img.append(img[box][..., None].copy())
        neg_lab.append(pooled_label(mask[box]))
    return count


def run(scans: list[str], annotations: str, out: str, seed: int = 0) -> dict:
    """All scans -> one HDF5 file; returns patch counts."""
    ann = pd.read_csv(annotations)
    rng = np.random.default_rng(seed)
    nod_img, nod_lab, neg_img, neg_lab = [], [], [], []
    for path in scans:
        uid = path.rsplit("/", 1)[-1][:-4]
        scan_patches(path, ann[ann.seriesuid == uid], rng, nod_img, nod_lab, neg_img, neg_lab)
    for lst in (nod_img, nod_lab, neg_img, neg_lab):
        np.random.RandomState(0).shuffle(lst)
    with h5py.File(out, "w") as f:
        f.create_dataset("nodule", data=np.array(nod_img), compression="lzf")
        f.create_dataset("label_nodule", data=np.array(nod_lab), compression="lzf")
        f.create_dataset("non_nodule", data=np.array(neg_img), compression="lzf")
        f.create_dataset("label_non_nodule", data=np.array(neg_lab), compression="lzf")
    return {"nodule_patches": len(nod_img), "negatives": len(neg_img)}


if __name__ == "__main__":
    import argparse
    import json
    import resource
    import time

    ap = argparse.ArgumentParser(description="reference-style LUNA16 baseline (benchmark only)")
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("scans", nargs="+")
    a = ap.parse_args()
    t0 = time.perf_counter()
    counts = run(a.scans, a.annotations, a.out)
    print(
        json.dumps(
            {
                **counts,
                "seconds": time.perf_counter() - t0,
                "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )
