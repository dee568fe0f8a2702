"""What a merged patch file is, to a reader: its mode, its kinds, its settings and its channel layout.

Kinds and the datasets they read:

============== ================ ==================== ========================= ======
kind           image            label                provenance                mode
============== ================ ==================== ========================= ======
``nodule``     ``nodule``       ``label_nodule``     ``provenance/nodule``     luna16
``non_nodule`` ``non_nodule``   ``label_non_nodule`` ``provenance/non_nodule`` luna16
``patch``      ``input``        ``target``           ``provenance/patch``      ldct
============== ================ ==================== ========================= ======

For LDCT the "label" is the full-dose target patch.

Channel layouts: ``"tf"`` puts the channel last, ``"torch"`` first.  Every reader of
:mod:`ctpatch.readers` returns patches in the layout the file stores them in unless told otherwise
(``layout=``; :data:`DEFAULT_LAYOUT` is None, "as stored"): LUNA16 patches are stored ``tf``; LDCT
patches in the layout of their settings (``output.layout``, recorded in the file).
"""

from __future__ import annotations

import json

import numpy as np

from ctpatch.store.h5 import h5py

#: kind -> (image dataset, label dataset, provenance table, mode)
KINDS = {
    "nodule": ("nodule", "label_nodule", "provenance/nodule", "luna16"),
    "non_nodule": ("non_nodule", "label_non_nodule", "provenance/non_nodule", "luna16"),
    "patch": ("input", "target", "provenance/patch", "ldct"),
}
MODE_KINDS = {"luna16": ("nodule", "non_nodule"), "ldct": ("patch",)}
LAYOUTS = ("tf", "torch")
#: The one default channel layout of PatchDataset, load_all, iter_batches and Fold.dataset: None, the
#: layout the files store (LUNA16 ``tf``, channel last as the reference; LDCT its ``output.layout``,
#: ``torch`` by default).  Pass ``layout="torch"`` or ``"tf"`` to choose one whatever the files store.
DEFAULT_LAYOUT = None


def file_mode(f: h5py.File, path) -> str:
    """The mode of an open patch file: its ``mode`` attribute (every patch file ctpatch writes has one)."""
    mode = f.attrs.get("mode")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in MODE_KINDS:
        raise ValueError(
            f"{path}: not a ctpatch patch file: expected a 'mode' attribute in {sorted(MODE_KINDS)}, got {mode!r}"
        )
    return str(mode)


def file_settings(f: h5py.File) -> dict:
    """The JSON ``settings`` attribute of an open patch file (every patch file ctpatch writes has one)."""
    raw = f.attrs.get("settings")
    if raw is None:
        raise ValueError(f"{f.filename}: not a ctpatch patch file: no 'settings' attribute")
    return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))


def resolve_layout(layout, stored: str) -> str:
    """``layout``, or for None the layout the file stores (``stored``); raises on anything else.

    >>> resolve_layout(None, "torch"), resolve_layout("tf", "torch")
    ('torch', 'tf')
    """
    layout = (DEFAULT_LAYOUT or stored) if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"Expected layout in {LAYOUTS}, got {layout!r}")
    return layout


def stored_layout(f: h5py.File, kind: str) -> str:
    """The channel layout the patches of ``kind`` are stored in: LUNA16 always ``tf``, LDCT the file's
    ``output.layout`` setting."""
    if KINDS[kind][3] == "luna16":
        return "tf"
    return file_settings(f)["output"]["layout"]


def to_layout(array: np.ndarray, stored: str, layout: str, batched: bool) -> np.ndarray:
    """Move the channel axis of a patch (or a batch of patches when ``batched``) from ``stored`` to ``layout``.

    No copy when the channel has size 1; otherwise a contiguous transposed copy.

    >>> to_layout(np.zeros((8, 8, 8, 2)), "tf", "torch", batched=False).shape
    (2, 8, 8, 8)
    """
    if layout not in LAYOUTS or stored not in LAYOUTS:
        raise ValueError(f"Expected layout in {LAYOUTS}, got {layout!r} (stored {stored!r})")
    if layout == stored:
        return array
    first = 1 if batched else 0
    moved = np.moveaxis(array, -1, first) if layout == "torch" else np.moveaxis(array, first, -1)
    return np.ascontiguousarray(moved)


def luna_spacing(settings: dict) -> np.ndarray:
    """Voxel spacing (x, y, z) in mm of the patches of a LUNA16 file that records no spacing per patch
    (written before issue 22): the configured isotropic resampling spacing.

    NaN when the scans were not resampled (each scan keeps its own spacing, which the patch file
    does not record).

    >>> luna_spacing({"resample": {"enabled": True, "spacing_mm": 1.25}}).tolist()
    [1.25, 1.25, 1.25]
    """
    rs = settings["resample"]
    if rs["enabled"]:
        return np.full(3, float(rs["spacing_mm"]))
    return np.full(3, np.nan)
