"""CASED-Tensorflow's LUNA16 preprocessing, run with the clone's own functions (for ``workflow.py``).

    python benchmarks/_cased.py --clone $CTPATCH_REF_CASED --root <LUNA16-like folder> --out-dir <folder>

``preprocessing/all_in_one.py`` of taki0112/CASED-Tensorflow keeps its loop under ``if __name__ ==
"__main__"`` with hard-coded paths (``src_root``, ``save_path``), so it cannot be called.  This script
replays that loop statement by statement, calling what it imports from the clone (not copies):
``preprocessing.preprocess_utils`` (``load_itk_image``, ``read_csv``, ``resample`` = cubic
``scipy.ndimage.zoom``, ``normalize_planes``, ``zero_center``, ``create_label``, ``compute_coord``,
``patch_stride``, ``get_patch``) and the constants of ``preprocessing.all_in_one`` (``OUTPUT_SPACING``,
``patch_size``, ``stride``, ``move``).  Nothing of it needs TensorFlow.

What differs from all_in_one.py, and only this:

* **the nodule centre is in x, y, z order.**  all_in_one.py indexes the transposed (x, y, z) volume
  with the voxel centre that ``compute_coord`` returns in z, y, x order, i.e. it swaps x and z; on
  scans whose z extent is smaller than the x position of a nodule the slice comes out short and
  ``get_patch`` fails on its reshape (it crashes).  Here the centre is reversed to x, y, z before
  the padding offset is added.
* ``src_root`` / ``save_path`` are ``--root`` / ``--out-dir``; the subsets looped over are the
  ``subsetK`` folders present (all_in_one.py loops over subset0..9 whatever exists);
  ``annotations[series_uid]`` missing is caught as ``KeyError`` (all_in_one.py: a bare ``except``).

Everything else is as written, including what costs time and memory: the per-patch ``print`` in
``get_patch``, ``np.shape`` of the growing lists after every scan (an array copy of every patch so
far), float64 patches kept in lists, the seeded shuffles and one lzf-compressed file per subset.
``patch_stride`` is called as it is (its ``coords = original_coords`` aliases one array, so every
"minus" shift lands back on the centre: 57 patches per nodule, 29 of them at the centre).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from random import randint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clone", required=True, help="a clone of taki0112/CASED-Tensorflow")
    ap.add_argument("--root", required=True, help="LUNA16-like folder: subsetK/*.mhd and CSVFILES/annotations.csv")
    ap.add_argument("--out-dir", required=True, help="where subsetK.h5 are written")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.clone))

    import h5py
    import numpy as np
    import preprocessing.all_in_one as A
    from preprocessing.preprocess_utils import (
        compute_coord,
        create_label,
        get_patch,
        load_itk_image,
        normalize_planes,
        patch_stride,
        read_csv,
        resample,
        zero_center,
    )

    patch_size, stride, move = A.patch_size, A.stride, A.move
    coord = False
    dst_spacing = A.OUTPUT_SPACING
    src_root = args.root
    save_path = os.path.join(args.out_dir, "")
    os.makedirs(save_path, exist_ok=True)

    annotation_csv = os.path.join(src_root, "CSVFILES/annotations.csv")
    annotations = read_csv(annotation_csv)

    subsets = sorted(
        int(d[len("subset") :]) for d in os.listdir(src_root) if d.startswith("subset") and d[len("subset") :].isdigit()
    )
    for sub_n in subsets:
        idx = 1
        sub_n_str = "subset" + str(sub_n)
        image_paths = glob.glob(os.path.join(src_root, sub_n_str, "*.mhd"))

        nodule = []
        non_nodule = []
        nodule_label = []
        non_nodule_label = []

        for i in image_paths:
            filename = os.path.split(i)[-1]
            series_uid = os.path.splitext(filename)[0]

            np_img, origin, spacing = load_itk_image(i)

            resampled_img, new_spacing = resample(np_img, spacing, dst_spacing)
            resampled_img_shape = resampled_img.shape

            norm_img = normalize_planes(resampled_img)
            norm_img = zero_center(norm_img)
            nodule_coords = []
            try:
                nodule_coords = annotations[series_uid]
                label = create_label(resampled_img_shape, nodule_coords, origin, new_spacing, coord=coord)
            except KeyError:
                label = [] if coord else np.zeros(resampled_img_shape, dtype="bool")

            image = np.transpose(norm_img)
            label = np.transpose(label)

            # padding
            offset = patch_size // 2

            non_pad = image
            non_label_pad = label

            non_pad = np.pad(non_pad, offset, "constant", constant_values=np.min(non_pad))
            non_label_pad = np.pad(non_label_pad, offset, "constant", constant_values=np.min(non_label_pad))

            image = np.pad(image, offset + (stride * move), "constant", constant_values=np.min(image))
            label = np.pad(label, offset + (stride * move), "constant", constant_values=np.min(label))

            nodule_list = []
            nodule_label_list = []

            for nodule_coord in nodule_coords:
                worldCoord = nodule_coord["position"]
                worldCoord = np.asarray([worldCoord[2], worldCoord[1], worldCoord[0]])

                # new_spacing came from resample
                voxelCoord = compute_coord(worldCoord, origin, new_spacing)
                voxelCoord = voxelCoord[::-1]  # THE ONE CHANGE: z, y, x -> x, y, z, the order of `image`
                voxelCoord = np.asarray([int(i) + offset + (stride * move) for i in voxelCoord])
                voxelCoord = np.transpose(voxelCoord)

                patch_stride(image, voxelCoord, offset, nodule_list)  # x,y,z, xy,xz,yz, xyz ... get stride patch
                patch_stride(label, voxelCoord, offset, nodule_label_list, patch_flag=False)

            nodule_num = len(nodule_list)

            non_nodule_list = []
            non_nodule_label_list = []
            x_coords = non_pad.shape[0] - offset - 1
            y_coords = non_pad.shape[1] - offset - 1
            z_coords = non_pad.shape[2] - offset - 1

            while len(non_nodule_list) < 3 * nodule_num:
                rand_x = randint(offset, x_coords)
                rand_y = randint(offset, y_coords)
                rand_z = randint(offset, z_coords)

                coords = np.array([rand_x, rand_y, rand_z])

                get_patch(non_pad, coords, offset, non_nodule_list)
                get_patch(non_label_pad, coords, offset, non_nodule_label_list, patch_flag=False)

            nodule.extend(nodule_list)
            non_nodule.extend(non_nodule_list)

            nodule_label.extend(nodule_label_list)
            non_nodule_label.extend(non_nodule_label_list)

            print(sub_n_str + " / " + str(idx) + " / " + str(len(image_paths)))
            print("nodule : ", np.shape(nodule))
            print("nodule_label : ", np.shape(nodule_label))
            print("non-nodule : ", np.shape(non_nodule))
            print("non-nodule_label : ", np.shape(non_nodule_label))
            idx += 1

        np.random.seed(0)
        np.random.shuffle(nodule)
        np.random.seed(0)
        np.random.shuffle(nodule_label)

        np.random.seed(0)
        np.random.shuffle(non_nodule)
        np.random.seed(0)
        np.random.shuffle(non_nodule_label)

        with h5py.File(save_path + "subset" + str(sub_n) + ".h5", "w") as hf:
            hf.create_dataset("nodule", data=nodule[:], compression="lzf")
            hf.create_dataset("label_nodule", data=nodule_label[:], compression="lzf")

            hf.create_dataset("non_nodule", data=non_nodule[:], compression="lzf")
            hf.create_dataset("label_non_nodule", data=non_nodule_label[:], compression="lzf")


if __name__ == "__main__":
    main()
