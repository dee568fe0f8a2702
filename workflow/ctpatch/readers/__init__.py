"""Reading patch files for training: the public façade of the readers.

Everything here reads the merged files of either mode (torch stays optional: nothing imports it).
Each piece lives in its own module; import from here:

* :class:`PatchDataset` (:mod:`ctpatch.readers.dataset`) -- ``len(ds)`` patches of one or more files,
  ``ds[i]`` is ``(image, label, provenance)`` or, with ``items="dict"``,
  ``{"image", "label", "kind", "provenance"}``; a ``transform`` is applied per item.  Safe in
  PyTorch ``DataLoader`` workers, and any mix of kinds collates with the default collate.
* :class:`BalancedSampler` (:mod:`ctpatch.readers.sampler`) -- positions with a chosen nodule :
  non-nodule ratio, reproducible from a seed and the epoch.
* :func:`iter_batches` and :func:`load_all` (:mod:`ctpatch.readers.bulk`) -- whole batches read by a
  pool of processes (or threads) straight into shared memory.
* :func:`folds`, :func:`train_val` and :func:`check_folds` (:mod:`ctpatch.readers.folds`) -- LUNA16
  subsets as folds, LDCT patients split into folds, and the check that no scan or patient is in
  two folds.
* :data:`KINDS`, :data:`DEFAULT_LAYOUT`, :func:`file_mode`, :func:`file_settings` (:mod:`ctpatch.readers.contract`)
  -- the file contract: which datasets a kind reads, and the channel layouts.

Kinds (``kind=``): ``nodule`` and ``non_nodule`` (LUNA16), ``patch`` (LDCT, whose "label" is the
full-dose target).  Layout (``layout=``): ``"tf"`` channel last, ``"torch"`` channel first; every
reader's default (:data:`DEFAULT_LAYOUT`, None) is the layout the files store: ``tf`` for LUNA16, the
``output.layout`` an LDCT file was written with.  LUNA16 images are (x, y, z, 1) and labels
(8, 8, 8, 2) (pooled one-hot, class 0 background, class 1 nodule) in ``tf``; (1, x, y, z) and
(2, 8, 8, 8) in ``torch`` -- the spatial axes keep their (x, y, z) order.  LDCT patches are
(H, W, 1) or (1, H, W).  A single channel moves for free; the two-class LUNA label is transposed
(4 KiB per patch).

LUNA16 files written with ``output.layout: crops`` store one crop per nodule instead of its
shifted patches (:mod:`ctpatch.core.bricks`); ``nodule`` patches are cut from the crops as they are
read (:mod:`ctpatch.luna16.layouts`), equal to the full layout's.  Reading many rows at once
(:func:`load_all`, a batch) decodes each crop once; a random single patch costs one crop
(~7 patches) of decompression.

Example (DataLoader is optional)::

    ds = PatchDataset(paths, ("nodule", "non_nodule"), layout="torch", items="dict")
    sampler = BalancedSampler(ds, {"nodule": 1, "non_nodule": 1}, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, sampler=sampler, num_workers=4)

    for batch in iter_batches(paths, "non_nodule", batch_size=64, workers=4, shuffle=True, epoch=epoch):
        batch.images, batch.labels, batch.index   # index: positions in PatchDataset(paths, kind)
"""

from ctpatch.readers.bulk import BACKENDS, MAX_DEFAULT_WORKERS, Batch, default_workers, iter_batches, load_all
from ctpatch.readers.contract import DEFAULT_LAYOUT, KINDS, LAYOUTS, MODE_KINDS, file_mode, file_settings, to_layout
from ctpatch.readers.dataset import ITEMS, PatchDataset
from ctpatch.readers.folds import FOLD_UNIT, Fold, check_folds, folds, train_val
from ctpatch.readers.sampler import BalancedSampler
from ctpatch.readers.selection import Segment

__all__ = [
    "BACKENDS",
    "DEFAULT_LAYOUT",
    "FOLD_UNIT",
    "ITEMS",
    "KINDS",
    "LAYOUTS",
    "MAX_DEFAULT_WORKERS",
    "MODE_KINDS",
    "BalancedSampler",
    "Batch",
    "Fold",
    "PatchDataset",
    "Segment",
    "check_folds",
    "default_workers",
    "file_mode",
    "file_settings",
    "folds",
    "iter_batches",
    "load_all",
    "to_layout",
    "train_val",
]
