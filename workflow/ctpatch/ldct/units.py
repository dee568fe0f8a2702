"""The two units of LDCT work on a slice pair: the plain pair and the super-resolution pair.

The job's pass over a pair (:meth:`ctpatch.ldct.job.Job.run`, in SPEC section 2's order) is written
once; what differs between the plain mode (SPEC section 2) and super-resolution (SPEC section 2c,
:mod:`ctpatch.core.sr`) is a method of the unit :func:`unit_for` chooses once from the settings:

* the sizes: ``scale``, the input (LR) edge ``lr_edge``, the target (HR) edge ``edge`` and the grid's
  ``padding`` (plain: scale 1, both edges the patch edge);
* :meth:`PlainUnit.copies`: the copies of a pair as the grid sees them (super-resolution: cropped to a
  multiple of the scale, the input block-averaged by it);
* :meth:`PlainUnit.rot_flip`: the rotated and the flipped copy of a patch pair;
* :meth:`PlainUnit.blend`: dose blending;
* :attr:`PlainUnit.fields` / :meth:`PlainUnit.provenance`: the fields it adds to table ``patch``
  (super-resolution: ``hr_corner``, ``hr_copy_shape``), and :meth:`PlainUnit.check_rows`, what the
  verification checks of them.

The numerics live in :mod:`ctpatch.core.grid`, :mod:`ctpatch.core.augment` and :mod:`ctpatch.core.sr`.
"""

from __future__ import annotations

import numpy as np

from ctpatch.core.augment import apply_rot_flip, dose_blend
from ctpatch.core.grid import resolve_size
from ctpatch.core.sr import SR_BASE, block_mean, modcrop, sr_dose_blend, sr_sizes
from ctpatch.settings.types import LdctPatches


class PlainUnit:
    """The plain pair: input and target patches of one edge, cut at the same corner of equal copies."""

    #: fields this unit adds to the provenance table ``patch`` (numpy dtype fields)
    fields: tuple = ()

    def __init__(self, settings: LdctPatches):
        p = settings.patch
        edge, self.padding = resolve_size(p.code, p.edge, p.padding)
        self.scale, self.lr_edge, self.edge = 1, edge, edge

    def copies(self, copies_in: list, copies_tg: list, copies_raw: list, where: str) -> tuple[list, list, list]:
        """The (factor, image) copies of the normalized input and target and of the raw target, as the grid
        is cut on them (``where`` names the pair in errors)."""
        return copies_in, copies_tg, copies_raw

    def rot_flip(self, a: np.ndarray, b: np.ndarray, k: int, flip: str) -> list[tuple]:
        """The rotated (``k`` turns) and the flipped (``flip``) copy of the patch pair: (input, target, rot_k, flip)."""
        (ra, rb, ri), (fa, fb, fi) = apply_rot_flip(a, b, k, flip)
        return [(ra, rb, ri["rot_k"], b""), (fa, fb, 0, fi["flip"].encode())]

    def blend(self, a: np.ndarray, b: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
        """The dose-blended patch pair with factor ``f``."""
        return dose_blend(a, b, f)

    def provenance(self, hr_corner: tuple[int, int], target_shape: tuple) -> tuple:
        """The values of :attr:`fields` for a patch at ``hr_corner`` of a target copy of ``target_shape``."""
        return ()

    def check_rows(self, prov: np.ndarray) -> list[str]:
        """Failures of table ``patch`` (``prov``) against this unit's fields."""
        if "hr_corner" in prov.dtype.names:
            return ["table 'patch' has hr_corner, but super_resolution is off"]
        return []


class SuperResolutionUnit(PlainUnit):
    """The super-resolution pair (SPEC section 2c): an LR input patch (edge ``lr_edge``) on the grid of the
    block-averaged input copy, its HR target patch (edge ``edge``) at the corner x ``scale``."""

    fields = (("hr_corner", "<i4", (2,)), ("hr_copy_shape", "<i4", (2,)))

    def __init__(self, settings: LdctPatches):
        p, sr = settings.patch, settings.super_resolution
        if p.code is not None:  # the HR edge base + padding of the size code
            base, padding = SR_BASE[p.code]
            hr, self.padding = base + padding, padding
        else:
            hr, self.padding = resolve_size(p.code, p.edge, p.padding)
        self.scale = int(sr.scale)
        self.lr_edge, self.edge = sr_sizes(hr, self.padding, self.scale, sr.footprint)

    def copies(self, copies_in, copies_tg, copies_raw, where):
        """Each copy cropped to a multiple of ``scale``, the input area-downscaled by ``scale``."""
        k = self.scale
        try:
            return (
                [(fa, block_mean(modcrop(img, k), k)) for fa, img in copies_in],
                [(fa, modcrop(img, k)) for fa, img in copies_tg],
                [(fa, modcrop(img, k)) for fa, img in copies_raw],
            )
        except ValueError as exc:
            raise ValueError(f"{where}: super_resolution.scale {k}: {exc}") from None

    def rot_flip(self, a, b, k, flip):
        """Input and target differ in size: each turned on its own, the same way."""
        axis = 1 if flip == "lr" else 0
        return [
            (np.ascontiguousarray(np.rot90(a, k)), np.ascontiguousarray(np.rot90(b, k)), k, b""),
            (np.ascontiguousarray(np.flip(a, axis)), np.ascontiguousarray(np.flip(b, axis)), 0, flip.encode()),
        ]

    def blend(self, a, b, f):
        """Dose blending on the target's LR version (:func:`ctpatch.core.sr.sr_dose_blend`)."""
        return sr_dose_blend(a, b, f, self.scale)

    def provenance(self, hr_corner, target_shape):
        return hr_corner, tuple(target_shape)

    def check_rows(self, prov):
        """``hr_corner`` = corner x scale and ``hr_copy_shape`` = copy_shape x scale (the footprint relation)."""
        if "hr_corner" not in prov.dtype.names:
            return ["super_resolution on, but table 'patch' has no hr_corner"]
        fails = []
        corner, cshape, scale = prov["corner"], prov["copy_shape"], self.scale
        if np.any(prov["hr_corner"] != corner * scale):
            fails.append(
                f"{int(np.any(prov['hr_corner'] != corner * scale, axis=1).sum())} patches whose "
                f"hr_corner is not corner x {scale}"
            )
        if np.any(prov["hr_copy_shape"] != cshape * scale):
            fails.append(f"patches whose hr_copy_shape is not copy_shape x {scale}")
        return fails


def unit_for(settings: LdctPatches) -> PlainUnit:
    """The unit of completed LDCT settings: :class:`SuperResolutionUnit` when ``super_resolution.enabled``."""
    return (SuperResolutionUnit if settings.super_resolution.enabled else PlainUnit)(settings)
