"""Convert one scan: ``.mhd`` -> resampled, normalized float32 ``.npy`` (z, y, x) + JSON sidecar.

The sidecar records the output grid (origin, spacing, size, direction in (x, y, z) order), the
source file and its grid, the settings, and the volume's minimum (the fill value of patches that
leave the volume), so later steps never need the original scan.

Usage: ``python -m ctpatch.luna16.convert --scan X.mhd --npy-out X.npy --json-out X.json [--settings-file convert.json] [--threads N]``

``--threads`` caps SimpleITK's threads (the workflow passes the rule's ``threads``, so that
concurrent jobs do not each start one thread per core); without it SimpleITK uses every core.
The result does not depend on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ctpatch.core.geometry import VolumeGrid, resampled_grid
from ctpatch.core.normalize import hu_window
from ctpatch.io.mhd import ScanError, grid_of, read_header, read_image
from ctpatch.luna16.plausible import check as check_plausible
from ctpatch.settings import ConfigError, defaults, read_settings
from ctpatch.settings.types import LunaConvert, build
from ctpatch.store.atomic import save_npy, write_json
from ctpatch.store.identity import digest, file_digest

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def resample_image(image: sitk.Image, grid: VolumeGrid, interpolator: str) -> sitk.Image:
    """Resample ``image`` onto ``grid`` as float32; points outside take the image minimum.

    The input keeps its pixel type (int16 for LUNA16): SimpleITK interpolates it in double and
    writes float32 directly, with no cast copy of the input.
    """
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"Expected interpolator in {sorted(INTERPOLATORS)}, got {interpolator!r}")
    lo = float(sitk.GetArrayViewFromImage(image).min())
    return sitk.Resample(
        image,
        list(grid.size),
        sitk.Transform(),
        INTERPOLATORS[interpolator],
        list(grid.origin),
        list(grid.spacing),
        list(grid.direction),
        lo,
        sitk.sitkFloat32,
    )


def source_identity(scan_path) -> dict:
    """What the patch files record of a scan: the sha256 of its header and its data file's name and size."""
    header = read_header(scan_path)
    return {
        "header_sha256": file_digest(scan_path),
        "data_file": header.data_file.name,
        "data_bytes": header.data_file.stat().st_size,
    }


def convert(scan_path, settings: LunaConvert | Mapping) -> tuple[np.ndarray, dict]:
    """Read, resample and normalize one scan; return the (z, y, x) float32 volume and its sidecar.

    ``settings``: :class:`~ctpatch.settings.types.LunaConvert`, or the ``convert`` scope as its settings
    file holds it (resample, normalize) with ``plausibility`` (the ``run`` scope's; absent: the schema's).
    With ``plausibility`` None the values are not judged (``explain`` regenerates a scan that was judged
    when it was converted)."""
    if not isinstance(settings, LunaConvert) and "plausibility" not in settings:
        settings = {**settings, "plausibility": defaults("run")["plausibility"]}
    s = build(LunaConvert, settings)
    resample, normalize, plausibility = s.resample, s.normalize, s.plausibility
    t0 = time.perf_counter()
    image = read_image(scan_path)
    source = grid_of(image)
    nm = normalize
    figures = None
    if (
        plausibility is not None
    ):  # before any work: do the values read look like a CT scan? (a wrong ElementType reads fine)
        figures, bad = check_plausible(sitk.GetArrayViewFromImage(image), nm.hu_min, nm.hu_max, plausibility)
        if bad:
            raise ScanError(
                f"{scan_path}: implausible CT values ({image.GetPixelIDTypeAsString()}, "
                f"ElementType {read_header(scan_path).element_type}): "
                + "; ".join(bad)
                + " -- check the header, or relax luna16.plausibility"
            )
    t_read = time.perf_counter()
    if resample.enabled:
        grid = resampled_grid(source, resample.spacing_mm)
        image = resample_image(image, grid, resample.interpolator)
    else:
        grid = source
        image = sitk.Cast(image, sitk.sitkFloat32)
    hu = sitk.GetArrayViewFromImage(image)
    t_resample = time.perf_counter()
    volume = hu_window(hu, nm.hu_min, nm.hu_max, nm.clip, nm.center)
    del image, hu
    t_norm = time.perf_counter()
    sidecar = {
        "seriesuid": Path(scan_path).stem,
        "source": str(scan_path),
        "source_grid": source.to_dict(),
        "grid": grid.to_dict(),
        "axis_order": "zyx",
        "shape": list(volume.shape),
        "dtype": str(volume.dtype),
        "min": float(volume.min()),
        "max": float(volume.max()),
        "plausibility": figures,
        "source_identity": source_identity(scan_path),
        "seconds": {"read": t_read - t0, "resample": t_resample - t_read, "normalize": t_norm - t_resample},
    }
    return volume, sidecar


def main(argv=None) -> int:
    """``python -m ctpatch.luna16.convert`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scan", required=True)
    ap.add_argument("--npy-out", required=True)
    ap.add_argument("--json-out", required=True)
    ap.add_argument("--settings-file", help="settings of scope 'convert' (resample, normalize); default: the schema's")
    ap.add_argument(
        "--run-settings-file", help="settings of scope 'run' (the plausibility check); default: the schema's"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="SimpleITK threads (default: SimpleITK's own, every core)"
    )
    args = ap.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"Expected --threads >= 1, got {args.threads}")
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    try:
        settings = read_settings(args.settings_file, scope="convert") if args.settings_file else defaults("convert")
        run = read_settings(args.run_settings_file, scope="run") if args.run_settings_file else defaults("run")
        volume, sidecar = convert(args.scan, {**settings, "plausibility": run["plausibility"]})
        sidecar["settings"] = settings
        sidecar["settings_digest"] = digest(settings)  # what made the volume (store.identity)
    except (ScanError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    t = time.perf_counter()
    save_npy(args.npy_out, volume)
    sidecar["seconds"]["write"] = time.perf_counter() - t
    write_json(args.json_out, sidecar)
    s = sidecar["seconds"]
    print(
        f"{sidecar['seriesuid']}: {sidecar['source_grid']['size']} -> {sidecar['shape'][::-1]} (x, y, z); "
        + ", ".join(f"{k} {v:.2f} s" for k, v in s.items())
    )
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
