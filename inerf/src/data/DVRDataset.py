# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""DVR layout: NMR ShapeNet 64x64 and DTU (rs_dtu_4): <cat>/<obj>/{image/*, mask/*, cameras.npz}, <cat>/<prefix><stage>.lst."""

import glob
import os

import cv2
import imageio.v2 as imageio
import numpy as np
import torch
import torch.nn.functional as F

from common import images
from inerf.src.util import get_image_to_tensor_balanced, get_mask_to_tensor

_FLIP_YZ = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], dtype=torch.float32)
_SHAPENET_WORLD = torch.tensor([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float32)


def _bbox(mask, path):
    """[cmin, rmin, cmax, rmax] of the non-zero pixels of mask (H, W, 1)."""
    rnz = np.where(np.any(mask, axis=1))[0]
    cnz = np.where(np.any(mask, axis=0))[0]
    if len(rnz) == 0:
        raise RuntimeError(f"{path}: the mask is empty (no object pixel to bound)")
    return torch.tensor([cnz[0], rnz[0], cnz[-1], rnz[-1]], dtype=torch.float32)


def dtu_pose_and_intrinsics(all_cam, i):
    """(c2w (4, 4) numpy, K (3, 3)) of view i from DVR's DTU cameras.npz (world_mat_i, scale_mat_i)."""
    P = all_cam["world_mat_" + str(i)][:3]
    K, R, t = cv2.decomposeProjectionMatrix(P)[:3]
    K = K / K[2, 2]
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3] = R.transpose()
    pose[:3, 3] = (t[:3] / t[3])[:, 0]
    scale_mtx = all_cam["scale_mat_" + str(i)] if "scale_mat_" + str(i) in all_cam else None
    if scale_mtx is not None:
        pose[:3, 3:] -= scale_mtx[:3, 3:]
        pose[:3, 3:] /= np.diagonal(scale_mtx[:3, :3])[..., None]
    return pose, K


class DVRDataset(torch.utils.data.Dataset):
    """One item per object: images (NV, 3, H, W) in [-1, 1], OpenGL c2w poses, focal [, c, masks, bbox].

    scale_focal: focal in cameras.npz is for an image of side 2 ([-1, 1] coordinates).
    sub_format: shapenet (one focal, fx = fy) | dtu (intrinsics averaged over views, c returned).
    """

    def __init__(self, path, stage="train", list_prefix="softras_", image_size=None, sub_format="shapenet",
                 scale_focal=True, max_imgs=100000, z_near=1.2, z_far=4.0, skip_step=None):
        super().__init__()
        self.base_path = path
        if not os.path.isdir(self.base_path):
            raise FileNotFoundError(f"DVR dataset: {path} does not exist (expected <cat>/<obj>/"
                                    "{image/*, cameras.npz} and <cat>/" + list_prefix + stage + ".lst)")
        cats = [x for x in glob.glob(os.path.join(path, "*")) if os.path.isdir(x)]
        file_lists = [os.path.join(x, list_prefix + stage + ".lst") for x in cats]
        all_objs = []
        for file_list in file_lists:
            if not os.path.exists(file_list):
                continue
            base_dir = os.path.dirname(file_list)
            cat = os.path.basename(base_dir)
            with open(file_list, "r") as f:
                all_objs.extend((cat, os.path.join(base_dir, x.strip())) for x in f.readlines() if x.strip())
        self.all_objs = all_objs
        self.stage = stage
        self.image_to_tensor = get_image_to_tensor_balanced()
        self.mask_to_tensor = get_mask_to_tensor()
        print("Loading DVR dataset", self.base_path, "stage", stage, len(self.all_objs), "objs", "type:", sub_format)
        self.image_size = image_size
        self._coord_trans_world = _FLIP_YZ if sub_format == "dtu" else _SHAPENET_WORLD
        self._coord_trans_cam = _FLIP_YZ
        self.sub_format = sub_format
        self.scale_focal = scale_focal
        self.max_imgs = max_imgs
        self.z_near = z_near
        self.z_far = z_far
        self.lindisp = False

    def __len__(self):
        return len(self.all_objs)

    def __getitem__(self, index):
        _, root_dir = self.all_objs[index]
        rgb_paths = sorted(x for x in glob.glob(os.path.join(root_dir, "image", "*"))
                           if x.endswith(".jpg") or x.endswith(".png"))
        mask_paths = sorted(glob.glob(os.path.join(root_dir, "mask", "*.png")))
        if not mask_paths:
            mask_paths = [None] * len(rgb_paths)
        if len(rgb_paths) <= self.max_imgs:
            sel_indices = np.arange(len(rgb_paths))
        else:
            sel_indices = np.random.choice(len(rgb_paths), self.max_imgs, replace=False)
            rgb_paths = [rgb_paths[i] for i in sel_indices]
            mask_paths = [mask_paths[i] for i in sel_indices]
        cam_path = os.path.join(root_dir, "cameras.npz")
        if not os.path.exists(cam_path):
            raise FileNotFoundError(f"{cam_path} is missing (DVR layout: world_mat_<i>, camera_mat_<i>)")
        all_cam = np.load(cam_path)

        all_imgs, all_poses, all_masks, all_bboxes = [], [], [], []
        focal = None
        intrinsics = []  # (fx, fy, cx, cy) per view, DTU only
        for idx, (rgb_path, mask_path) in enumerate(zip(rgb_paths, mask_paths)):
            i = sel_indices[idx]
            with images.naming(rgb_path):
                img = imageio.imread(rgb_path)[..., :3]
            if self.scale_focal:
                x_scale, y_scale, xy_delta = img.shape[1] / 2.0, img.shape[0] / 2.0, 1.0
            else:
                x_scale = y_scale = 1.0
                xy_delta = 0.0
            if self.sub_format == "dtu":
                pose, K = dtu_pose_and_intrinsics(all_cam, i)
                intrinsics.append((K[0, 0] * x_scale, K[1, 1] * y_scale,
                                   (K[0, 2] + xy_delta) * x_scale, (K[1, 2] + xy_delta) * y_scale))
            else:
                if "world_mat_inv_" + str(i) in all_cam:
                    extr_inv_mtx = all_cam["world_mat_inv_" + str(i)]
                else:
                    extr_inv_mtx = all_cam["world_mat_" + str(i)]
                    if extr_inv_mtx.shape[0] == 3:
                        extr_inv_mtx = np.vstack((extr_inv_mtx, np.array([0, 0, 0, 1])))
                    extr_inv_mtx = np.linalg.inv(extr_inv_mtx)
                intr_mtx = all_cam["camera_mat_" + str(i)]
                fx, fy = intr_mtx[0, 0], intr_mtx[1, 1]
                assert abs(fx - fy) < 1e-9
                fx = fx * x_scale
                if focal is None:
                    focal = fx
                else:
                    assert abs(fx - focal) < 1e-5
                pose = extr_inv_mtx
            all_poses.append(self._coord_trans_world @ torch.tensor(pose, dtype=torch.float32) @ self._coord_trans_cam)
            all_imgs.append(self.image_to_tensor(img))
            if mask_path is not None:
                with images.naming(mask_path):
                    mask = imageio.imread(mask_path)
                mask = (mask[..., None] if mask.ndim == 2 else mask)[..., :1]
                all_masks.append(self.mask_to_tensor(mask))
                all_bboxes.append(_bbox(mask, mask_path))

        c = None
        if self.sub_format != "shapenet":
            fx, fy, cx, cy = np.mean(np.array(intrinsics, dtype=np.float64), axis=0)
            focal = torch.tensor((fx, fy), dtype=torch.float32)
            c = torch.tensor((cx, cy), dtype=torch.float32)
            all_bboxes = None
        elif mask_paths[-1] is not None:
            all_bboxes = torch.stack(all_bboxes)
        else:
            all_bboxes = None
        all_imgs = torch.stack(all_imgs)
        all_poses = torch.stack(all_poses)
        all_masks = torch.stack(all_masks) if all_masks else None

        if self.image_size is not None and tuple(all_imgs.shape[-2:]) != tuple(self.image_size):
            scale = self.image_size[0] / all_imgs.shape[-2]
            focal *= scale
            if c is not None:
                c *= scale
            elif all_bboxes is not None:
                all_bboxes *= scale
            all_imgs = F.interpolate(all_imgs, size=self.image_size, mode="area")
            if all_masks is not None:
                all_masks = F.interpolate(all_masks, size=self.image_size, mode="area")

        result = {"path": root_dir, "img_id": index, "focal": focal, "images": all_imgs, "poses": all_poses}
        if all_masks is not None:
            result["masks"] = all_masks
        if c is not None:
            result["c"] = c
        else:
            result["bbox"] = all_bboxes
        return result
