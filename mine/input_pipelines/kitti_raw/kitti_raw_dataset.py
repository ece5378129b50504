"""KITTI raw for MINE: rectified stereo pairs (left image_02 / right image_03) with their calibration.

Folder layout read (the KITTI raw release, "synced+rectified" data and the calibration zips):

    root/<date>/calib_cam_to_cam.txt                                   P_rect_02, P_rect_03 (3x4)
    root/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame>.png     left colour camera
    root/<date>/<date>_drive_<nnnn>_sync/image_03/data/<frame>.png     right colour camera

Which drives: by default (`data.kitti_split: tulsiani`) the split of Tulsiani et al. 2018 that MINE
evaluates on, shipped in splits/: training reads the 20 drives of splits/train.txt under root, the
held-out set the 4 of splits/test.txt (splits/val.txt holds the other 4); a listed drive missing
under root is an error naming it. `data.kitti_split: all` reads every drive under root. `root` may
also be a text file listing drive folder names (`2011_09_26_drive_0001_sync`, one per line; `#`
starts a comment); the drives are then looked up in the folder holding that file. Every frame with
both images is one item. Training takes the
left or the right image as source at random and the other one as target; validation predicts
the right image from the left one.

Poses are metric (the stereo baseline from P_rect), so MINE uses scale 1 and no point loss for
kitti_raw: items carry `visible_point_count` placeholder points at depth 1.
"""

import glob
import os
import random

import numpy as np

from mine.input_pipelines.realestate10k.realestate10k_dataset import (
    PairDataset,
    load_image,
    make_pair,
    placeholder_points,
    view_item,
)

CAMERAS = ("02", "03")
SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits")
KITTI_SPLITS = ("tulsiani", "all")


def read_calib_file(path):
    """KITTI `key: values` calibration file -> {key: float64 array} (non-numeric entries skipped)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"KITTI calibration file not found: {path}")
    calib = {}
    with open(path) as f:
        for line in f:
            key, sep, values = line.partition(":")
            if not sep:
                continue
            try:
                calib[key.strip()] = np.array([float(v) for v in values.split()])
            except ValueError:
                continue  # calib_time holds a date
    return calib


def rectified_camera(calib, camera, path):
    """(K [3, 3], G_cam_rect0 [4, 4]) of rectified camera `camera` ('02' or '03') from P_rect_<camera>."""
    key = f"P_rect_{camera}"
    if key not in calib or calib[key].size != 12:
        raise ValueError(f"{path}: missing or malformed {key} (expected 12 values)")
    P = calib[key].reshape(3, 4)
    K = P[:, :3]
    # P = K [I | t]: the rectified camera sits at -t in the frame of rectified camera 0.
    G = np.eye(4)
    G[:3, 3] = np.linalg.solve(K, P[:, 3])
    return K, G


class KittiRawDataset(PairDataset):
    """Stereo pairs of KITTI raw drives: source and target are the two rectified colour cameras."""

    def __init__(self, config, logger, root, is_validation, img_size,
                 supervision_count=1, visible_points_count=256):
        if supervision_count != 1:
            raise ValueError(f"KITTI stereo pairs have one target view, got supervision_count={supervision_count}")
        super().__init__(config, logger, is_validation, img_size, supervision_count, visible_points_count)
        self.frames = []  # (left path, right path, calib file)
        split = config.get("data.kitti_split", "tulsiani")
        if split not in KITTI_SPLITS:
            raise ValueError(f"data.kitti_split: {split!r} is not one of {', '.join(KITTI_SPLITS)}")
        for drive_dir in self._drive_dirs(root, split, is_validation):
            date_dir = os.path.dirname(drive_dir)
            calib_path = os.path.join(date_dir, "calib_cam_to_cam.txt")
            if not os.path.isfile(calib_path):
                raise FileNotFoundError(f"KITTI calibration file not found: {calib_path} (for {drive_dir})")
            left = sorted(glob.glob(os.path.join(drive_dir, "image_02", "data", "*.png")))
            for left_path in left:
                right_path = os.path.join(drive_dir, "image_03", "data", os.path.basename(left_path))
                if os.path.isfile(right_path):
                    self.frames.append((left_path, right_path, calib_path))
        if not self.frames:
            raise FileNotFoundError(
                f"no stereo pair under {root}: expected <date>/<drive>_sync/image_02/data/*.png "
                f"with the same names in image_03/data"
            )
        self.calibs = {}
        if logger:
            logger.info(f"KITTI raw {root}: {len(self)} stereo pairs (is_validation: {is_validation})")

    @staticmethod
    def _drive_dirs(root, split="all", is_validation=False):
        """Drive folders (<date>/<drive>_sync): those a split file lists, the shipped Tulsiani split's
        test (is_validation) or train drives under root, or every drive under root (split "all")."""
        if os.path.isfile(root):
            return KittiRawDataset._listed_drives(root, os.path.dirname(os.path.abspath(root)))
        if not os.path.isdir(root):
            raise FileNotFoundError(f"KITTI raw root not found: {root}")
        if split == "tulsiani":
            listing = os.path.join(SPLITS_DIR, "test.txt" if is_validation else "train.txt")
            return KittiRawDataset._listed_drives(
                listing, root, "; set data.kitti_split: all to read every drive under the root instead")
        return sorted(glob.glob(os.path.join(root, "*", "*_sync")))

    @staticmethod
    def _listed_drives(listing, base, remedy=""):
        """base/<date>/<name> of every drive name in the text file `listing` ('#' starts a comment)."""
        with open(listing) as f:
            names = [line.split("#")[0].strip() for line in f]
        dirs = [os.path.join(base, name[:10], name) for name in names if name]
        missing = [d for d in dirs if not os.path.isdir(d)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} drive(s) listed in {listing} not found: "
                                    f"{', '.join(missing)}{remedy}")
        return dirs

    def __len__(self):
        return len(self.frames)

    def _view(self, img_path, calib_path, camera):
        """Item of one rectified image: K rescaled to img_size, G_cam_rect0, placeholder points."""
        if calib_path not in self.calibs:
            self.calibs[calib_path] = read_calib_file(calib_path)
        K, G = rectified_camera(self.calibs[calib_path], camera, calib_path)
        img, (w, h) = load_image(img_path, self.img_size)
        K = np.diag([self.img_size[0] / w, self.img_size[1] / h, 1.0]) @ K
        points = placeholder_points(self.visible_points_count)
        return view_item(img, K.astype(np.float32), G.astype(np.float32), points,
                         np.arange(self.visible_points_count))

    def __getitem__(self, index):
        left_path, right_path, calib_path = self.frames[index]
        views = [(left_path, calib_path, "02"), (right_path, calib_path, "03")]
        if not self.is_validation and random.random() < 0.5:
            views.reverse()
        src, tgt = (self._view(*v) for v in views)
        return make_pair(src, [tgt])
