"""The 2D patch grid of the LDCT mode (SPEC section 2, "Patch grid").

A slice of shape ``(rows, cols)`` is cut into square patches of edge ``edge`` that overlap
by ``padding`` pixels.  Along one axis of length ``length`` the patch starts are

    0, then ``x - padding`` for ``x = stride, 2*stride, ...`` while ``x < length``,

with ``stride = edge - padding``.  The same starts are used for rows and columns, and input
and target slices are cut at the same corners.

The last patch of an axis may run past the image.  ``last="fill"`` (the reference layout)
keeps it and :func:`cut_patch` fills the missing part with a value chosen by the caller (we
pass the image minimum; the reference filled with 0 and cut one pixel short of the border).
``last="shift"`` moves such a patch inward so that it ends exactly at the border.
"""

from __future__ import annotations

import numbers

import numpy as np

#: Size code -> (patch edge, padding), as in SPEC section 2.
SIZE_CODES: dict[str, tuple[int, int]] = {
    "p96": (96, 12),
    "p75": (75, 11),
    "p64": (64, 4),
    "p55": (55, 8),
    "p42": (42, 6),
    "p32": (32, 4),
    "p24": (24, 4),
    "p12": (12, 4),
}

LAST_MODES = ("fill", "shift")


def _is_int(value: object) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def _check_edge_padding(edge: object, padding: object) -> None:
    if not _is_int(edge) or edge < 1:
        raise ValueError(f"Expected a positive integer patch edge, got edge={edge!r}")
    if not _is_int(padding) or padding < 0:
        raise ValueError(f"Expected a non-negative integer padding, got padding={padding!r}")
    if edge <= padding:
        raise ValueError(f"Expected patch edge > padding, got edge={edge!r}, padding={padding!r}")
    if edge <= 2 * padding:  # starts are 0, then k * (edge - padding) - padding: strictly increasing only then
        raise ValueError(
            f"Expected a stride (edge - padding) larger than the padding, got edge={edge!r}, padding={padding!r}"
        )


def _check_last(last: object) -> None:
    if last not in LAST_MODES:
        raise ValueError(f"Expected last to be one of {LAST_MODES}, got last={last!r}")


def resolve_size(code_or_none: str | None, edge: int | None = None, padding: int | None = None) -> tuple[int, int]:
    """Patch edge and padding from a size code, or from a free ``edge`` and ``padding``.

    Parameters
    ----------
    code_or_none : str or None
        One of :data:`SIZE_CODES` (``"p96"`` ... ``"p12"``), or ``None`` to use ``edge`` and
        ``padding`` as given.  A code and an explicit edge/padding are mutually exclusive.
    edge, padding : int, optional
        Free patch edge and overlap (pixels), required when ``code_or_none`` is ``None``.

    Returns
    -------
    (edge, padding) : tuple of int

    Examples
    --------
    >>> resolve_size("p55")
    (55, 8)
    >>> resolve_size(None, edge=40, padding=5)
    (40, 5)
    """
    if code_or_none is not None:
        if code_or_none not in SIZE_CODES:
            raise ValueError(f"Expected a size code among {sorted(SIZE_CODES)}, got {code_or_none!r}")
        if edge is not None or padding is not None:
            raise ValueError(
                "Expected either a size code or a free edge/padding, got "
                f"code={code_or_none!r}, edge={edge!r}, padding={padding!r}"
            )
        return SIZE_CODES[code_or_none]
    if edge is None or padding is None:
        raise ValueError(
            f"Expected both edge and padding when no size code is given, got edge={edge!r}, padding={padding!r}"
        )
    _check_edge_padding(edge, padding)
    return int(edge), int(padding)


def patch_starts(length: int, edge: int, padding: int, last: str) -> np.ndarray:
    """Start indices of the patches along one axis of ``length`` pixels.

    The starts are ``0``, then ``x - padding`` for ``x = stride, 2*stride, ...`` while
    ``x < length``, with ``stride = edge - padding`` (SPEC section 2).  Every start is
    therefore inside the image, and consecutive patches overlap by ``padding`` pixels.

    Parameters
    ----------
    length : int
        Number of pixels along the axis (> 0).
    edge : int
        Patch edge (> padding).
    padding : int
        Overlap between neighbouring patches (>= 0).
    last : {"fill", "shift"}
        ``"fill"``: the starts as given by the rule; a patch that runs past the end is kept
        and filled later (:func:`cut_patch`).  ``"shift"``: every start whose patch would
        run past the end is moved inward to ``length - edge`` (``0`` when the image is
        shorter than one patch, which is then still filled); duplicates are removed, so
        the result stays strictly increasing and no patch runs past the end unless
        ``length < edge``.

    Returns
    -------
    starts : ndarray of int64, shape (K,)
        Strictly increasing start indices.

    Examples
    --------
    >>> patch_starts(100, 40, 10, "fill").tolist()
    [0, 20, 50, 80]
    >>> patch_starts(100, 40, 10, "shift").tolist()
    [0, 20, 50, 60]
    """
    if not _is_int(length) or length < 1:
        raise ValueError(f"Expected a positive integer length, got length={length!r}")
    _check_edge_padding(edge, padding)
    _check_last(last)
    stride = edge - padding
    starts = [0]
    x = stride
    while x < length:
        starts.append(x - padding)
        x += stride
    out = np.asarray(starts, dtype=np.int64)
    if last == "shift":
        inward = max(int(length) - int(edge), 0)
        out = np.unique(np.where(out + edge > length, inward, out))
    return out


def grid_corners(shape: tuple[int, int], edge: int, padding: int, last: str) -> np.ndarray:
    """Top-left corners ``(row, col)`` of all patches of a 2D slice, in row-major order.

    Parameters
    ----------
    shape : tuple of int
        Slice shape ``(rows, cols)``.
    edge, padding, last
        As in :func:`patch_starts`, applied to both axes.

    Returns
    -------
    corners : ndarray of int64, shape (K, 2)
        Column 0 is the row start, column 1 the column start; the column index varies
        fastest.

    Examples
    --------
    >>> grid_corners((60, 100), 40, 10, "fill").tolist()
    [[0, 0], [0, 20], [0, 50], [0, 80], [20, 0], [20, 20], [20, 50], [20, 80]]
    """
    if len(tuple(shape)) != 2:
        raise ValueError(f"Expected a 2D shape (rows, cols), got shape={shape!r}")
    row_starts = patch_starts(shape[0], edge, padding, last)
    col_starts = patch_starts(shape[1], edge, padding, last)
    rr, cc = np.meshgrid(row_starts, col_starts, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def cut_patch(image: np.ndarray, corner: tuple[int, int], edge: int, fill: float) -> np.ndarray:
    """The ``edge`` x ``edge`` window of ``image`` with top-left ``corner``.

    The window is ``image[r:r+edge, c:c+edge]``; where it runs past the image the rest is
    ``fill`` (the caller passes the image minimum).  The image's last row and column are
    kept (the reference cut one pixel short of the border; we do not).

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        A 2D slice, axis order (row, col).
    corner : tuple of int
        ``(r, c)`` with ``0 <= r < rows`` and ``0 <= c < cols``.
    edge : int
        Patch edge (> 0).
    fill : scalar
        Value for the part of the window outside the image; must be representable
        exactly in ``image.dtype``.

    Returns
    -------
    patch : ndarray, shape (edge, edge), same dtype as ``image``
        A new array (never a view of ``image``).

    Examples
    --------
    >>> img = np.arange(9).reshape(3, 3)
    >>> cut_patch(img, (1, 1), 3, fill=-1).tolist()
    [[4, 5, -1], [7, 8, -1], [-1, -1, -1]]
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"Expected a 2D image (rows, cols), got shape={image.shape!r}")
    if not _is_int(edge) or edge < 1:
        raise ValueError(f"Expected a positive integer patch edge, got edge={edge!r}")
    corner = tuple(corner)
    if len(corner) != 2 or not all(_is_int(v) for v in corner):
        raise ValueError(f"Expected corner as two integers (row, col), got corner={corner!r}")
    r, c = int(corner[0]), int(corner[1])
    rows, cols = image.shape
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"Expected corner inside the image of shape {image.shape!r}, got corner={corner!r}")
    with np.errstate(invalid="ignore", over="ignore"):
        try:
            cast = np.asarray(fill).astype(image.dtype)
        except (OverflowError, ValueError):
            cast = None
    if cast is None or cast.ndim != 0 or not cast == fill:
        raise ValueError(f"Expected a fill value representable in dtype {image.dtype}, got fill={fill!r}")
    patch = np.full((edge, edge), cast, dtype=image.dtype)
    window = image[r : r + edge, c : c + edge]
    patch[: window.shape[0], : window.shape[1]] = window
    return patch
