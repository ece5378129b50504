# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Multi-object ShapeNet scenes: <scene>/transforms.json + <frame>_obj.png (RGBA) [+ <frame>_env.png]."""

import glob
import json
import os
import os.path as osp
import warnings

import imageio.v2 as imageio
import numpy as np
import torch

from common import checkpoints, images
from inerf.src.util import get_image_to_tensor_balanced, get_mask_to_tensor


class MultiObjectDataset(torch.utils.data.Dataset):
    """Scenes found under path (any depth), split by a seeded permutation saved as split_<seed>.pth.

    compose: paste each view on its background <frame>_env.png instead of white.
    n_views: when set, scenes without exactly that many frames and PNGs yield {}.
    """

    def __init__(self, path, stage="train", z_near=4, z_far=9, n_views=None, compose=False,
                 split_seed=1234, val_frac=0.2, test_frac=0.2):
        super().__init__()
        self.base_path = path
        self.stage = stage
        if not os.path.isdir(path):
            raise FileNotFoundError(f"multi-object dataset: {path} does not exist "
                                    "(expected scene folders with transforms.json and <frame>_obj.png)")
        print("Loading NeRF synthetic dataset", self.base_path, "stage", self.stage)
        self.trans_files = sorted(osp.join(root, "transforms.json") for root, _, files in os.walk(path)
                                  if "transforms.json" in files)
        self.image_to_tensor = get_image_to_tensor_balanced()
        self.mask_to_tensor = get_mask_to_tensor()
        self.z_near = z_near
        self.z_far = z_far
        self.lindisp = False
        self.compose = compose
        self.n_views = n_views
        self._load_split(val_frac, test_frac, split_seed)

    def __len__(self):
        return len(self.trans_files)

    def _check_valid(self, index):
        """False for a scene whose transforms.json is unreadable or has not n_views frames/PNGs."""
        if self.n_views is None:
            return True
        trans_file = self.trans_files[index]
        try:
            with open(trans_file, "r") as f:
                transform = json.load(f)
        except (OSError, ValueError) as e:
            print("Problematic transforms.json file", trans_file, "JSON loading exception", e)
            return False
        if len(transform["frames"]) != self.n_views:
            return False
        return len(glob.glob(osp.join(osp.dirname(trans_file), "*.png"))) == self.n_views

    def _permutation(self, seed, num_objs):
        """The scene permutation of split_<seed>.pth, created (numpy seed) if absent or unreadable."""
        permute_file = osp.join(self.base_path, "split_{}.pth".format(seed))
        if osp.isfile(permute_file):
            try:
                print("Loading dataset split from {}".format(permute_file))
                return np.asarray(checkpoints.load_checkpoint(permute_file))
            except Exception as e:  # the release pickled a numpy array: rebuild it from the same seed
                warnings.warn(f"{permute_file}: not loadable weights-only ({type(e).__name__}); "
                              "recomputing the same seeded permutation")
        state = np.random.get_state()
        np.random.seed(seed)
        permute = np.random.permutation(num_objs)
        np.random.set_state(state)
        if not osp.isfile(permute_file):
            checkpoints.save_atomic(permute_file, torch.from_numpy(permute))
            print("Created dataset split in {}".format(permute_file))
        return permute

    def _load_split(self, val_frac, test_frac, seed):
        """Keeps this stage's share of the scenes: train, then val_frac, then test_frac of the permutation."""
        num_objs = len(self)
        if val_frac == 0 and test_frac == 0:
            warnings.warn("creating empty validation and test sets")
        permute = self._permutation(seed, num_objs)
        val_size = int(val_frac * num_objs)
        test_size = int(test_frac * num_objs)
        train_end = num_objs - (val_size + test_size)
        val_end = num_objs - test_size
        subset = {"train": permute[:train_end], "val": permute[train_end:val_end], "test": permute[val_end:]}[self.stage]
        self.trans_files = [self.trans_files[i] for i in subset]

    def __getitem__(self, index):
        if not self._check_valid(index):
            return {}
        trans_file = self.trans_files[index]
        dir_path = osp.dirname(trans_file)
        with open(trans_file, "r") as f:
            transform = json.load(f)
        all_imgs, all_bboxes, all_masks, all_poses = [], [], [], []
        for frame in transform["frames"]:
            basename = osp.splitext(osp.basename(frame["file_path"]))[0]
            obj_path = osp.join(dir_path, "{}_obj.png".format(basename))
            with images.naming(obj_path):
                img = imageio.imread(obj_path)
            if img.ndim != 3 or img.shape[-1] != 4:
                raise ValueError(f"{dir_path}/{basename}_obj.png: expected an RGBA image, got shape {img.shape}")
            mask = self.mask_to_tensor(img[..., 3])
            rnz = np.where(np.any(img, axis=1))[0]
            cnz = np.where(np.any(img, axis=0))[0]
            if len(rnz) == 0:
                cmin = rmin = 0
                cmax, rmax = mask.shape[-1], mask.shape[-2]
            else:
                rmin, rmax = rnz[[0, -1]]
                cmin, cmax = cnz[[0, -1]]
            img_tensor = self.image_to_tensor(img[..., :3])
            if self.compose:
                env_path = osp.join(dir_path, "{}_env.png".format(basename))
                with images.naming(env_path):
                    env_img = self.image_to_tensor(imageio.imread(env_path)[..., :3])
                background = env_img * (1.0 - mask)
            else:
                background = 1.0 - mask  # white where transparent
            all_imgs.append(img_tensor * mask + background)
            all_bboxes.append(torch.tensor([cmin, rmin, cmax, rmax], dtype=torch.float32))
            all_masks.append(mask)
            all_poses.append(torch.tensor(frame["transform_matrix"]))
        imgs = torch.stack(all_imgs)
        W = imgs.shape[-1]
        focal = 0.5 * W / np.tan(0.5 * transform.get("camera_angle_x"))
        return {"path": dir_path, "img_id": index, "focal": focal, "images": imgs,
                "masks": torch.stack(all_masks), "bbox": torch.stack(all_bboxes), "poses": torch.stack(all_poses)}
