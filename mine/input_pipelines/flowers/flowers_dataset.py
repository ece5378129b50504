"""Flowers light fields (Srinivasan et al. 2017) for MINE: 8x8 sub-aperture views of Lytro ESLF images.

Folder layout read (`root` = `data.training_set_path` or `data.val_set_path`):

    root/imgs/IMG_<id>_eslf.png           14x14 views interleaved per pixel: row y*14+v, column x*14+u
    root/dataset_list/train.list          optional: the lines `imgs/IMG_<id>_eslf.png` of the split
    root/dataset_list/test.list           (copies ship in mine/input_pipelines/flowers/dataset_list)
    root/cam_params.txt                   optional, else mine/input_pipelines/flowers/cam_params.txt

The training dataset reads `dataset_list/train.list`, the validation one `dataset_list/test.list`;
without the list every `imgs/*_eslf.png` is used. cam_params.txt (MINE's release) has one line per
view `i_j fx fy cx cy k1 k2 p00 .. p23` (intrinsics normalised by the image size, p the 3x4
world-to-camera matrix); view i_j is column u = 3 + i, row v = 3 + j of the 14x14 grid (the
central 8x8 views, as in Srinivasan et al.). Training pairs two random views of a light field;
validation renders the four corner views from the centre view (4_4), four items per light field.

Poses are metric, so MINE uses scale 1 and no point loss for flowers: items carry placeholder
points at depth 1.
"""

import glob
import os
import random

import numpy as np

from mine.input_pipelines.realestate10k.realestate10k_dataset import (
    PairDataset,
    make_pair,
    normalised_intrinsics_to_K,
    placeholder_points,
    pose_3x4_to_G,
    read_image,
    resize_image,
    view_item,
)

ANGULAR = 14  # views per axis in an ESLF image
GRID = 8  # central views used
OFFSET = (ANGULAR - GRID) // 2
CENTRE = "4_4"
CORNERS = ("0_0", "7_0", "0_7", "7_7")
DEFAULT_CAM_PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cam_params.txt")


def read_cam_params(path):
    """cam_params.txt -> {'i_j': (intrinsics [4], pose [12])}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flowers camera parameters not found: {path}")
    params = {}
    with open(path) as f:
        for n, line in enumerate(f):
            values = line.split()
            if not values:
                continue
            if len(values) != 19:
                raise ValueError(f"{path}, line {n + 1}: expected 19 values (i_j fx fy cx cy k1 k2 and a 3x4 matrix)")
            params[values[0]] = ([float(v) for v in values[1:5]], [float(v) for v in values[7:19]])
    return params


def sub_aperture_view(eslf, i, j):
    """View i_j (u = OFFSET + i, v = OFFSET + j) of an ESLF array [14 H, 14 W, C] -> [H, W, C]."""
    h, w = eslf.shape[0] // ANGULAR, eslf.shape[1] // ANGULAR
    lf = eslf[: h * ANGULAR, : w * ANGULAR].reshape(h, ANGULAR, w, ANGULAR, -1)
    return lf[:, OFFSET + j, :, OFFSET + i]


class FlowersDataset(PairDataset):
    """Pairs of sub-aperture views of the Flowers light fields."""

    def __init__(self, config, logger, root, is_validation, img_size,
                 supervision_count=1, visible_points_count=256):
        super().__init__(config, logger, is_validation, img_size, supervision_count, visible_points_count)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"Flowers root not found: {root}")
        cam_params = os.path.join(root, "cam_params.txt")
        self.cam_params = read_cam_params(cam_params if os.path.isfile(cam_params) else DEFAULT_CAM_PARAMS)
        missing = [f"{i}_{j}" for i in range(GRID) for j in range(GRID) if f"{i}_{j}" not in self.cam_params]
        if missing:
            raise ValueError(f"camera parameters lack views {', '.join(missing)}")
        self.views = sorted(self.cam_params)
        self.images = self._image_paths(root)
        if is_validation:
            self.keys = [(path, CENTRE, corner) for path in self.images for corner in CORNERS]
        else:
            self.keys = [(path, None, None) for path in self.images]
        if logger:
            logger.info(f"Flowers {root}: {len(self.images)} light fields (is_validation: {is_validation})")

    def _image_paths(self, root):
        """ESLF paths of the split list, or every imgs/*_eslf.png without a list."""
        list_path = os.path.join(root, "dataset_list", "test.list" if self.is_validation else "train.list")
        if os.path.isfile(list_path):
            with open(list_path) as f:
                paths = [os.path.join(root, line.strip()) for line in f if line.strip()]
            missing = [p for p in paths if not os.path.isfile(p)]
            if missing:
                raise FileNotFoundError(f"{len(missing)} light fields of {list_path} are missing, e.g. {missing[0]}")
            return paths
        paths = sorted(glob.glob(os.path.join(root, "imgs", "*_eslf.png")))
        if not paths:
            raise FileNotFoundError(f"no light field in {root}: expected imgs/*_eslf.png (or {list_path})")
        return paths

    def __len__(self):
        return len(self.keys)

    def _view(self, eslf, name):
        """Item of view `name` ('i_j') of a decoded ESLF image."""
        i, j = (int(v) for v in name.split("_"))
        img = resize_image(np.ascontiguousarray(sub_aperture_view(eslf, i, j)), self.img_size)
        intrinsics, pose = self.cam_params[name]
        points = placeholder_points(self.visible_points_count)
        return view_item(img, normalised_intrinsics_to_K(*intrinsics, self.img_size), pose_3x4_to_G(pose),
                         points, np.arange(self.visible_points_count))

    def __getitem__(self, index):
        path, src_name, tgt_name = self.keys[index]
        eslf = read_image(path)
        if eslf.shape[0] < ANGULAR or eslf.shape[1] < ANGULAR:
            raise ValueError(f"{path}: expected an ESLF image of 14x14 views, got shape {eslf.shape}")
        if src_name is None:
            src_name, *tgt_names = random.sample(self.views, 1 + self.supervision_count)
        else:
            tgt_names = [tgt_name]
        return make_pair(self._view(eslf, src_name), [self._view(eslf, name) for name in tgt_names])
