# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""LLFF scenes for MINE (the loader the original released): source/target pairs with COLMAP sparse points.

Layout read under `root` (every sub-folder is a scene):
    <scene>/sparse/0/{cameras,images,points3D}.bin   COLMAP model, one camera (SIMPLE_RADIAL as LLFF's,
                                                     or any pinhole-type model)
    <scene>/images_<ratio>[_val]/<name>              images (`images[_val]` when ratio is None or <= 1);
                                                     `_val` is the validation folder; COLMAP images
                                                     without a file there are skipped
`img_pre_downsample_ratio` is the factor between the COLMAP images and the files read (7.875 for the
LLFF release resized with misc/resize_nerf_llff_images.py); intrinsics are scaled to `img_size`.
"""

import logging
import os
import random
from collections import defaultdict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data.dataloader import default_collate

from common import images as image_files
from mine.input_pipelines import colmap_utils

# COLMAP models whose first four parameters are fx, fy, cx, cy; the others start with f, cx, cy.
_FXFY_MODELS = ("PINHOLE", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "FOV", "THIN_PRISM_FISHEYE")


def _collate_fn(batch):
    """Batches (src_item, tgt_items) pairs: src values -> Bx..., tgt lists of L -> BxLx...; drops G_cam_world."""
    src_list, tgt_list = zip(*batch)
    tgt_items = defaultdict(list)
    for item in tgt_list:
        for k, v in item.items():
            tgt_items[k].append(default_collate(v))
    tgt_items = {k: torch.stack(v, dim=0) for k, v in tgt_items.items()}
    src_items = {k: v for k, v in default_collate(list(src_list)).items() if k != "G_cam_world"}
    return src_items, tgt_items


def load_image(path, img_h, img_w):
    """RGB image resized (PIL bicubic) to img_h x img_w: -> 3xHxW float32 in [0, 1].

    A file that does not decode (truncated, not an image) is an ImageFileError naming it.
    """
    with image_files.naming(path), Image.open(path) as img:
        img = img.convert("RGB").resize((img_w, img_h), Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class NeRFDataset(Dataset):
    """Each item is a source view and `supervision_count` target views of the same scene."""

    def __init__(self, config, logger, root, is_validation, img_size, supervision_count=5, visible_points_count=8,
                 img_pre_downsample_ratio=7.875):
        self.logger = logger or logging.getLogger("mine")
        self.config = config
        self.img_w, self.img_h = img_size
        self.is_validation = is_validation
        self.visible_points_count = visible_points_count
        self.supervision_count = supervision_count
        self.collate_fn = _collate_fn

        if img_pre_downsample_ratio is None or img_pre_downsample_ratio <= 1:
            image_folder = "images"
        else:
            image_folder = "images_" + str(img_pre_downsample_ratio)
        if is_validation:
            image_folder += "_val"
        if not os.path.isdir(root):
            raise FileNotFoundError(f"LLFF root {root} does not exist (expected <root>/<scene>/sparse/0)")

        self.dataset_infos = defaultdict(dict)
        self.scene_to_indices = defaultdict(list)
        self.keys = []
        for scene_name in sorted(p for p in os.listdir(root) if os.path.isdir(os.path.join(root, p))):
            scene_dir = os.path.join(root, scene_name)
            cameras, images, points3D = colmap_utils.read_model(os.path.join(scene_dir, "sparse/0"), ext=".bin")
            if len(cameras) != 1:
                raise ValueError(f"{scene_dir}/sparse/0 has {len(cameras)} cameras, expected exactly 1")
            for img_item in images.values():
                img_path = os.path.join(scene_dir, image_folder, img_item.name)
                if not os.path.exists(img_path):
                    continue
                with image_files.naming(img_path), Image.open(img_path) as img:
                    w, h = img.size
                xyzs = [(pid, xy, points3D[pid].xyz) for xy, pid in zip(img_item.xys, img_item.point3D_ids)
                        if pid != -1]
                if len(xyzs) < visible_points_count:
                    raise ValueError(f"{img_path}: {len(xyzs)} sparse points, data.visible_point_count needs "
                                     f"{visible_points_count}")
                camera = cameras[img_item.camera_id]
                ratio = 1.0 if img_pre_downsample_ratio is None else img_pre_downsample_ratio
                self.scene_to_indices[scene_name].append(len(self.keys))
                self.keys.append((scene_name, img_path))
                self.dataset_infos[scene_name][img_path] = self._info_transform(
                    {"img": load_image(img_path, self.img_h, self.img_w), "qvec": img_item.qvec,
                     "tvec": img_item.tvec, "xyzs": xyzs, "camera_params": camera.params,
                     "camera_model": camera.model},
                    (w * ratio / self.img_w, h * ratio / self.img_h),
                )
        self.length = len(self.keys)
        if self.length == 0:
            raise FileNotFoundError(f"no images found in {root}/<scene>/{image_folder}/ for the COLMAP models")
        self.logger.info("Dataset root: %s, is_validation: %s, number of images: %d", root, is_validation,
                         self.length)

    def __getitem__(self, index):
        scene_name, img_path = self.keys[index]
        src_item = dict(self.dataset_infos[scene_name][img_path])
        tgt_items = self._sample_tgt_items(index, src_item)
        # Random points in validation too (the original's TODO): validation is not deterministic.
        sampled = random.sample(range(len(src_item["xyzs_ids"])), self.visible_points_count)
        src_item["xyzs"] = src_item["xyzs"][:, sampled]
        src_item["xyzs_ids"] = src_item["xyzs_ids"][sampled]
        src_item["depths"] = src_item["depths"][sampled]
        return src_item, tgt_items

    def __len__(self):
        return self.length

    def _info_transform(self, info, downsample_ratio):
        """Pose, intrinsics at the output size and camera-frame sparse points of one COLMAP image.

        Returns a dict: img, G_cam_world 4x4 (world -> camera), K, K_inv 3x3, xyzs 3xN (camera frame),
        xyzs_ids N, depths N.
        """
        ratio_x, ratio_y = downsample_ratio
        out = {"img": info["img"]}
        R_cam_world = colmap_utils.qvec2rotmat(info["qvec"]).astype(np.float32)
        T_cam_world = np.array(info["tvec"], dtype=np.float32)
        out["G_cam_world"] = np.vstack([np.hstack((R_cam_world, T_cam_world[:, None])),
                                        np.array([0, 0, 0, 1])]).astype(np.float32)

        params = info["camera_params"]
        if info.get("camera_model", "SIMPLE_RADIAL") in _FXFY_MODELS:
            fx, fy, cx, cy = params[0], params[1], params[2], params[3]
        else:
            fx, fy, cx, cy = params[0], params[0], params[1], params[2]
        out["K"] = np.array([[fx / ratio_x, 0, cx / ratio_x], [0, fy / ratio_y, cy / ratio_y], [0, 0, 1]],
                            dtype=np.float32)
        out["K_inv"] = np.linalg.inv(out["K"])

        # Depth of each point as in Hartley-Zisserman 6.2.3: sign(det M) w / |m3|.
        I_zero = np.eye(3, 4, dtype=np.float32)
        P = out["K"] @ I_zero @ out["G_cam_world"]
        det_sign = np.sign(np.linalg.det(P[:, :-1]))
        m3_norm = np.linalg.norm(P[2][:-1])

        xyzs_ids, _, xyzs_world = zip(*info["xyzs"])
        xyzs_world = np.array(xyzs_world)
        xyzs_world_homo = np.hstack((xyzs_world, np.ones((len(xyzs_world), 1)))).T.astype(np.float32)
        xyzs_cam_homo = out["G_cam_world"] @ xyzs_world_homo
        xyzs_cam_homo /= xyzs_cam_homo[-1]
        reprojected = out["K"] @ I_zero @ xyzs_cam_homo

        out["xyzs"] = xyzs_cam_homo[:-1]
        out["xyzs_ids"] = np.array(xyzs_ids)
        out["depths"] = (det_sign * reprojected[-1]) / m3_norm
        return out

    def _sample_tgt_items(self, src_idx, src_item):
        """Target views of the source's scene: random ones (train) or the original's fixed neighbour (val)."""
        G_src_world = src_item["G_cam_world"]
        scene_name, _ = self.keys[src_idx]
        scene_indices = [i for i in self.scene_to_indices[scene_name] if i != src_idx]
        if not self.is_validation:
            sampled_indices = random.sample(scene_indices, self.supervision_count)
        else:
            sampled_indices = [scene_indices[(src_idx + 1) % len(scene_indices) - 1]]

        items = defaultdict(list)
        for index in sampled_indices:
            info = self.dataset_infos[scene_name][self.keys[index][1]]
            items["img"].append(info["img"])
            items["K"].append(info["K"])
            items["K_inv"].append(info["K_inv"])
            items["G_src_tgt"].append(G_src_world @ np.linalg.inv(info["G_cam_world"]))
            sampled = random.sample(range(len(info["xyzs_ids"])), self.visible_points_count)
            items["xyzs"].append(info["xyzs"][:, sampled])
            items["xyzs_ids"].append(info["xyzs_ids"][sampled])
            items["depths"].append(info["depths"][sampled])
        return items
