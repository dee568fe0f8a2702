"""Intensity normalizations (SPEC section 1 step 3 and section 2 step 1).

All functions are pure: arrays and numbers in, arrays and numbers out.  Statistics are
computed in float64 and the results returned as float32.

LDCT pair normalizations (``normalize_pair``), with ``ld`` the low-dose (input) image and
``fd`` the full-dose (target) image, each of shape (row, col) or any shape:

==========================  =====================================================
``none``                    the values unchanged (cast to float32)
``unity_independent``       each ``(x - x.min) / (x.max - x.min)``
``unity_wrt_ld``            both ``(x - ld.min) / (ld.max - ld.min)``
``std_independent``         each ``(x - x.mean) / (x.max - x.min)``
``std_wrt_ld``              both ``(x - ld.mean) / (ld.max - ld.min)``
``max_val_independent``     each ``s = x - min(x.min, 0)``, then ``s / s.max``
``max_val_wrt_ld``          each ``s = x - min(x.min, 0)``, then ``s / (ld - min(ld.min, 0)).max``
``dicom_unity``             each ``x / 4096``
``dicom_std``               each ``(x - x.mean) / 4096``
``set_max_val``             each ``x / 4094``
==========================  =====================================================

"Shift to non-negative" (``max_val_*``) subtracts the minimum only when it is negative; an
image whose minimum is >= 0 is divided by its maximum as it is.  In ``max_val_wrt_ld`` each
image is shifted by its *own* minimum (as the reference program does, SPEC section 2b) and
both are divided by the shifted low-dose maximum, so the target is never negative but can
exceed 1 when its shifted maximum exceeds the low-dose one.  ``dicom_std`` subtracts each
image's own mean.
"""

from __future__ import annotations

import numbers

import numpy as np

NORMALIZATIONS: tuple[str, ...] = (
    "none",
    "unity_independent",
    "unity_wrt_ld",
    "std_independent",
    "std_wrt_ld",
    "max_val_independent",
    "max_val_wrt_ld",
    "dicom_unity",
    "dicom_std",
    "set_max_val",
)


def _as_float64(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"Expected a non-empty {name} image, got shape={arr.shape!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"Expected only finite values in the {name} image, found NaN or inf")
    return arr


def _divisor(value: float, what: str, name: str, method: str) -> float:
    if value == 0:
        raise ValueError(
            f"Cannot apply normalization {method!r}: the {name} image is constant "
            f"({what} = 0), so the formula would divide by zero"
        )
    return value


def _check_positive(value: object, name: str) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"Expected a positive number for {name}, got {name}={value!r}")


def normalize_pair(
    ld: np.ndarray,
    fd: np.ndarray,
    method: str,
    *,
    dicom_scale: float = 4096.0,
    max_value: float = 4094.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalize a low-dose/full-dose pair with one of :data:`NORMALIZATIONS`.

    Parameters
    ----------
    ld : ndarray, shape (row, col)
        Low-dose (input) image, raw stored values.
    fd : ndarray, shape (row, col)
        Full-dose (target) image, same shape as ``ld``.
    method : str
        One of :data:`NORMALIZATIONS`; the formulas are in the module docstring.
    dicom_scale : float
        Divisor of ``dicom_unity`` and ``dicom_std`` (reference 4096).
    max_value : float
        Divisor of ``set_max_val`` (reference 4094).

    Returns
    -------
    ld_n, fd_n : ndarray of float32, same shape as the inputs

    Raises
    ------
    ValueError
        For an unknown method, shapes that differ, non-finite values, or a constant image
        where the formula divides by ``max - min`` (or by the shifted maximum) = 0; the
        message names the image (low-dose or full-dose).

    Examples
    --------
    >>> ld = np.array([[0.0, 10.0], [20.0, 40.0]])
    >>> fd = np.array([[0.0, 20.0], [20.0, 80.0]])
    >>> a, b = normalize_pair(ld, fd, "unity_wrt_ld")
    >>> a.tolist(), b.tolist()
    ([[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.5], [0.5, 2.0]])
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"Expected normalization among {NORMALIZATIONS}, got {method!r}")
    _check_positive(dicom_scale, "dicom_scale")
    _check_positive(max_value, "max_value")
    ld64 = _as_float64(ld, "low-dose")
    fd64 = _as_float64(fd, "full-dose")
    if ld64.shape != fd64.shape:
        raise ValueError(
            f"Expected low-dose and full-dose images of the same shape, got {ld64.shape!r} and {fd64.shape!r}"
        )
    images = {"low-dose": ld64, "full-dose": fd64}

    def span(name: str) -> float:
        img = images[name]
        return _divisor(float(img.max() - img.min()), "max - min", name, method)

    if method == "none":
        out = (ld64, fd64)
    elif method == "unity_independent":
        out = tuple((img - img.min()) / span(name) for name, img in images.items())
    elif method == "unity_wrt_ld":
        lo, rng = ld64.min(), span("low-dose")
        out = ((ld64 - lo) / rng, (fd64 - lo) / rng)
    elif method == "std_independent":
        out = tuple((img - img.mean()) / span(name) for name, img in images.items())
    elif method == "std_wrt_ld":
        mu, rng = ld64.mean(), span("low-dose")
        out = ((ld64 - mu) / rng, (fd64 - mu) / rng)
    elif method == "max_val_independent":
        shifted = {name: img - min(float(img.min()), 0.0) for name, img in images.items()}
        out = tuple(s / _divisor(float(s.max()), "shifted max", name, method) for name, s in shifted.items())
    elif method == "max_val_wrt_ld":  # own shift, low-dose maximum (SPEC section 2b)
        shifted = {name: img - min(float(img.min()), 0.0) for name, img in images.items()}
        top = _divisor(float(shifted["low-dose"].max()), "shifted max", "low-dose", method)
        out = (shifted["low-dose"] / top, shifted["full-dose"] / top)
    elif method == "dicom_unity":
        out = (ld64 / dicom_scale, fd64 / dicom_scale)
    elif method == "dicom_std":
        out = ((ld64 - ld64.mean()) / dicom_scale, (fd64 - fd64.mean()) / dicom_scale)
    else:  # set_max_val
        out = (ld64 / max_value, fd64 / max_value)
    return out[0].astype(np.float32), out[1].astype(np.float32)


def hu_window(
    hu: np.ndarray,
    hu_min: float = -1000.0,
    hu_max: float = 400.0,
    clip: bool = True,
    center: float = 0.25,
) -> np.ndarray:
    """Window Hounsfield units to [0, 1] and zero-centre (LUNA16 mode, SPEC section 1 step 3).

    ``(hu - hu_min) / (hu_max - hu_min)``, clipped to [0, 1] when ``clip``, minus ``center``.

    Parameters
    ----------
    hu : ndarray, any shape (e.g. (z, y, x))
        Values in Hounsfield units.
    hu_min, hu_max : float
        Window; ``hu_max > hu_min``.
    clip : bool
        Clip the windowed values to [0, 1] before centring.
    center : float
        Constant subtracted at the end.

    Returns
    -------
    ndarray of float32, same shape as ``hu``
        Computed in float32 (relative error ~1e-7) to keep the memory of a whole volume low.

    Examples
    --------
    >>> hu_window(np.array([-2000.0, -1000.0, 400.0, 1000.0])).tolist()
    [-0.25, -0.25, 0.75, 0.75]
    """
    if not hu_max > hu_min:
        raise ValueError(f"Expected hu_max > hu_min, got hu_min={hu_min!r}, hu_max={hu_max!r}")
    # float32 throughout, in place: a whole resampled CT volume needs one output array only
    values = np.array(hu, dtype=np.float32)  # a copy: the caller's array is not modified
    values -= np.float32(hu_min)
    values /= np.float32(hu_max - hu_min)
    if clip:
        np.clip(values, 0.0, 1.0, out=values)
    values -= np.float32(center)
    return values
