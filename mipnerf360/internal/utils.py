# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Ray and batch containers, dataset enums, and file and image I/O."""

import dataclasses
import enum
import functools
import logging
import os
from typing import Any, Dict, Optional, Union

import cv2
import numpy as np
import torch
from PIL import ExifTags, Image

from common import images


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


def _png_bit_depth(pth):
    """Bit depth of a PNG file from its IHDR chunk, or None for any other file."""
    with open_file(pth, 'rb') as f:
        head = f.read(25)
    return head[24] if head[:8] == b'\x89PNG\r\n\x1a\n' and len(head) == 25 else None


def load_img(pth: str) -> np.ndarray:
    """Loads an image as float32 [H, W(, C)] on the 8-bit scale (0..255), as multinerf.

    A 16-bit PNG (which PIL would cut to its high byte) is read at full precision as
    value / 65535 * 255, so that the loaders' / 255 gives value / 65535; a log line says so once.
    Any file that cannot be decoded is an ImageFileError naming it.
    """
    with images.naming(pth):
        if _png_bit_depth(pth) == 16:
            image = cv2.imread(pth, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError('OpenCV cannot decode it')
            if image.ndim == 3:
                image = image[..., [2, 1, 0, 3][:image.shape[-1]]]  # BGR(A) -> RGB(A)
            _note_sixteen_bit(os.path.dirname(pth))
            return image.astype(np.float32) * np.float32(255. / 65535.)
        with open_file(pth, 'rb') as f:
            return np.array(Image.open(f), dtype=np.float32)


@functools.lru_cache(maxsize=None)
def _note_sixteen_bit(folder):
    """Says once per folder how 16-bit PNGs are scaled."""
    logging.info('16-bit PNG images in %s are read at full precision, as value / 65535.', folder)


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
