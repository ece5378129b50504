# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Ray and batch containers, dataset enums, and file and image I/O."""

import dataclasses
import enum
import os
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from PIL import ExifTags, Image


class _TensorFields:
    """Mixin for dataclasses of tensors (or nested such dataclasses) that share leading dims."""

    def map(self, fn):
        """Returns a copy with `fn` applied to every tensor field; None fields stay None."""

        def apply(value):
            if value is None:
                return None
            if isinstance(value, _TensorFields):
                return value.map(fn)
            return fn(value)

        return dataclasses.replace(
            self, **{f.name: apply(getattr(self, f.name)) for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class Pixels(_TensorFields):
    """Integer pixel coordinates and per-ray data; all fields share the leading dims."""

    pix_x_int: torch.Tensor
    pix_y_int: torch.Tensor
    lossmult: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    cam_idx: torch.Tensor
    exposure_idx: Optional[torch.Tensor] = None
    exposure_values: Optional[torch.Tensor] = None


@dataclasses.dataclass(frozen=True)
class Rays(_TensorFields):
    """Rays: origins/directions/viewdirs [..., 3], imageplane [..., 2], the rest [..., 1]."""

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor
    radii: torch.Tensor
    imageplane: torch.Tensor
    lossmult: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    cam_idx: torch.Tensor
    exposure_idx: Optional[torch.Tensor] = None
    exposure_values: Optional[torch.Tensor] = None


@dataclasses.dataclass(frozen=True)
class Batch(_TensorFields):
    """A training or test batch: rays (or pixels) and the matching ground truth."""

    rays: Union[Pixels, Rays]
    rgb: Optional[torch.Tensor] = None
    disps: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None
    alphas: Optional[torch.Tensor] = None


class DataSplit(enum.Enum):
    """Dataset split."""

    TRAIN = 'train'
    TEST = 'test'


class BatchingMethod(enum.Enum):
    """Whether each batch draws rays from all images or from a single one."""

    ALL_IMAGES = 'all_images'
    SINGLE_IMAGE = 'single_image'


def open_file(pth, mode='r'):
    return open(pth, mode=mode)


def file_exists(pth):
    return os.path.exists(pth)


def listdir(pth):
    return os.listdir(pth)


def isdir(pth):
    return os.path.isdir(pth)


def makedirs(pth):
    os.makedirs(pth, exist_ok=True)


def _to_numpy(img):
    """A numpy copy of a numpy array or a torch tensor on any device."""
    if isinstance(img, torch.Tensor):
        return img.detach().cpu().numpy()
    return np.asarray(img)


def load_img(pth: str) -> np.ndarray:
    """Loads an image as float32 [H, W(, C)] with the file's values (0..255 for 8-bit images)."""
    with open_file(pth, 'rb') as f:
        return np.array(Image.open(f), dtype=np.float32)


def load_exif(pth: str) -> Dict[str, Any]:
    """Loads the EXIF tags of an image (IFD0 and the Exif sub-IFD) by name; {} if it has none."""
    with open_file(pth, 'rb') as f:
        exif = Image.open(f).getexif()
        # Exposure time and ISO live in the Exif sub-IFD, not in IFD0.
        tags = {**exif, **exif.get_ifd(ExifTags.IFD.Exif)}
    return {ExifTags.TAGS[k]: v for k, v in tags.items() if k in ExifTags.TAGS}


def save_img_u8(img, pth):
    """Saves an image in [0, 1] ([H, W] or [H, W, 3]) as an 8-bit PNG; NaN becomes 0."""
    img = np.clip(np.nan_to_num(_to_numpy(img)), 0., 1.)
    with open_file(pth, 'wb') as f:
        Image.fromarray((img * 255.).astype(np.uint8)).save(f, 'PNG')


def save_img_f32(depthmap, pth):
    """Saves a one-channel image [H, W] (a depth map, say) as a float32 TIFF; NaN becomes 0."""
    depthmap = np.nan_to_num(_to_numpy(depthmap)).astype(np.float32)
    with open_file(pth, 'wb') as f:
        Image.fromarray(depthmap).save(f, 'TIFF')
