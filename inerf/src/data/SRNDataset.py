# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""SRN ShapeNet (cars, chairs): <path>_<stage>/<obj>/{rgb/*.png, pose/*.txt, intrinsics.txt}."""

import glob
import os

import imageio.v2 as imageio
import numpy as np
import torch
import torch.nn.functional as F

from common import images
from inerf.src.util import get_image_to_tensor_balanced, get_mask_to_tensor


def read_srn_intrinsics(path):
    """(focal, cx, cy, height, width) from an SRN intrinsics.txt (first line f cx cy _, last line H W)."""
    with open(path, "r") as intrinfile:
        lines = [line for line in intrinfile.read().splitlines() if line.strip()]
    try:
        focal, cx, cy, _ = map(float, lines[0].split())
        height, width = map(int, lines[-1].split())
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: expected 'f cx cy 0' on the first line and 'H W' on the last ({e})") from e
    return focal, cx, cy, height, width


def read_srn_pose(path):
    """(4, 4) camera-to-world matrix (OpenCV axes) from an SRN pose/*.txt of 16 numbers."""
    values = np.loadtxt(path, dtype=np.float32).reshape(-1)
    if values.size != 16:
        raise ValueError(f"{path}: expected 16 numbers (a 4x4 camera-to-world matrix), got {values.size}")
    return torch.from_numpy(values.reshape(4, 4))


class SRNDataset(torch.utils.data.Dataset):
    """One item per object: images (NV, 3, H, W) in [-1, 1], OpenGL c2w poses, focal, c, masks, bbox."""

    def __init__(self, path, stage="train", image_size=(128, 128), world_scale=1.0):
        super().__init__()
        self.base_path = path + "_" + stage
        self.dataset_name = os.path.basename(path)
        print("Loading SRN dataset", self.base_path, "name:", self.dataset_name)
        self.stage = stage
        if not os.path.isdir(self.base_path):
            raise FileNotFoundError(
                f"SRN dataset: {self.base_path} does not exist (expected <datadir>_{stage}/<obj>/"
                "{rgb/*.png, pose/*.txt, intrinsics.txt}, e.g. -D data/cars for data/cars_test)")
        is_chair = "chair" in self.dataset_name
        if is_chair and stage == "train":
            # SRN's public chairs archive nests the train split one level deeper.
            tmp = os.path.join(self.base_path, "chairs_2.0_train")
            if os.path.exists(tmp):
                self.base_path = tmp
        self.intrins = sorted(glob.glob(os.path.join(self.base_path, "*", "intrinsics.txt")))
        self.image_to_tensor = get_image_to_tensor_balanced()
        self.mask_to_tensor = get_mask_to_tensor()
        self.image_size = tuple(image_size)
        self.world_scale = world_scale
        # SRN poses use OpenCV camera axes (y down, z forward); flip to OpenGL.
        self._coord_trans = torch.diag(torch.tensor([1, -1, -1, 1], dtype=torch.float32))
        self.z_near, self.z_far = (1.25, 2.75) if is_chair else (0.8, 1.8)
        self.lindisp = False

    def __len__(self):
        return len(self.intrins)

    def __getitem__(self, index):
        intrin_path = self.intrins[index]
        dir_path = os.path.dirname(intrin_path)
        rgb_paths = sorted(glob.glob(os.path.join(dir_path, "rgb", "*")))
        pose_paths = sorted(glob.glob(os.path.join(dir_path, "pose", "*")))
        if len(rgb_paths) != len(pose_paths) or not rgb_paths:
            raise ValueError(f"{dir_path}: {len(rgb_paths)} rgb/* images but {len(pose_paths)} pose/*.txt files "
                             "(expected the same non-zero number)")
        focal, cx, cy, _, _ = read_srn_intrinsics(intrin_path)

        all_imgs, all_poses, all_masks, all_bboxes = [], [], [], []
        for rgb_path, pose_path in zip(rgb_paths, pose_paths):
            with images.naming(rgb_path):
                img = imageio.imread(rgb_path)[..., :3]
            mask = (img != 255).all(axis=-1)[..., None].astype(np.uint8) * 255
            rows = np.any(mask, axis=1)
            cols = np.any(mask, axis=0)
            rnz = np.where(rows)[0]
            cnz = np.where(cols)[0]
            if len(rnz) == 0:
                raise RuntimeError(f"{rgb_path}: the image is all white (no object pixel to bound)")
            rmin, rmax = rnz[[0, -1]]
            cmin, cmax = cnz[[0, -1]]
            all_imgs.append(self.image_to_tensor(img))
            all_masks.append(self.mask_to_tensor(mask))
            all_poses.append(read_srn_pose(pose_path) @ self._coord_trans)
            all_bboxes.append(torch.tensor([cmin, rmin, cmax, rmax], dtype=torch.float32))
        all_imgs = torch.stack(all_imgs)
        all_poses = torch.stack(all_poses)
        all_masks = torch.stack(all_masks)
        all_bboxes = torch.stack(all_bboxes)

        if tuple(all_imgs.shape[-2:]) != self.image_size:
            scale = self.image_size[0] / all_imgs.shape[-2]
            focal *= scale
            cx *= scale
            cy *= scale
            all_bboxes *= scale
            all_imgs = F.interpolate(all_imgs, size=self.image_size, mode="area")
            all_masks = F.interpolate(all_masks, size=self.image_size, mode="area")
        if self.world_scale != 1.0:
            focal *= self.world_scale
            all_poses[:, :3, 3] *= self.world_scale
        return {
            "path": dir_path,
            "img_id": index,
            "focal": torch.tensor(focal, dtype=torch.float32),
            "c": torch.tensor([cx, cy], dtype=torch.float32),
            "images": all_imgs,
            "masks": all_masks,
            "bbox": all_bboxes,
            "poses": all_poses,
        }
