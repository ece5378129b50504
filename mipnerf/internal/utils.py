# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""The gin-configurable `Config`, the flags that load it, the `Rays` container and file/image I/O."""

import dataclasses
import os
from typing import Optional

import gin
import numpy as np
import torch
from absl import flags
from PIL import Image

from common import config_types

# Config files may be named relative to the package root (`configs/blender.gin`) from any directory.
gin.add_config_file_search_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The published ablation configs select activations by their flax names
# (`MipNerfModel.density_activation = @flax.nn.relu`): the torch functions answer to those names.
for _fn in (torch.nn.functional.relu, torch.sigmoid, torch.nn.functional.softplus):
    gin.config.external_configurable(_fn, name=_fn.__name__, module='flax.nn')


@dataclasses.dataclass(frozen=True)
class Rays:
    """Rays: origins/directions/viewdirs [..., 3]; radii, lossmult, near, far [..., 1].

    A loader may hold one tensor per image in each field (a list), as the original's Multicam does.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor
    radii: torch.Tensor
    lossmult: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor

    def map(self, fn):
        """Rays with fn applied to every field."""
        return Rays(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})


@gin.configurable()
@dataclasses.dataclass
class Config:
    """Configuration flags for everything."""

    dataset_loader: str = 'multicam'  # Dataset loader: 'multicam', 'blender' or 'llff'.
    batching: str = 'all_images'  # How a batch is drawn: 'all_images' or 'single_image'.
    batch_size: int = 4096  # Rays (pixels) per training batch.
    factor: int = 0  # Image downsampling factor; 0 keeps the full resolution.
    spherify: bool = False  # True for spherical 360-degree LLFF captures (no NDC).
    render_path: bool = False  # Render a camera path instead of the test views (LLFF only).
    llffhold: int = 8  # Every llffhold-th image is held out for testing (LLFF only).
    lr_init: float = 5e-4  # Initial learning rate.
    lr_final: float = 5e-6  # Final learning rate.
    lr_delay_steps: int = 2500  # Length of the learning-rate warm-up.
    lr_delay_mult: float = 0.01  # Learning-rate multiplier at the start of the warm-up.
    grad_max_norm: float = 0.  # Gradient norm clip; 0 disables it.
    grad_max_val: float = 0.  # Gradient value clip; 0 disables it.
    max_steps: int = 1000000  # Optimization steps.
    save_every: int = 100000  # Steps between checkpoints.
    print_every: int = 100  # Steps between TensorBoard reports.
    gc_every: int = 10000  # Steps between garbage collections.
    test_render_interval: int = 1  # Write every n-th rendered test image to disk.
    disable_multiscale_loss: bool = False  # Ignore the per-ray loss multipliers (lossmult).
    randomized: bool = True  # Stratified (random) sampling during training.
    near: float = 2.  # Near plane distance.
    far: float = 6.  # Far plane distance.
    coarse_loss_mult: float = 0.1  # Weight of the coarse level's loss.
    weight_decay_mult: float = 0.  # Weight of the L2 weight decay.
    white_bkgd: bool = True  # Composite images (and renders) on white rather than black.

    # Added by this port (not in google/mipnerf); the defaults keep the original's behaviour.
    checkpoint_keep: int = 100  # Checkpoints kept on disk (the original's train.py keeps 100).
    use_tf32: bool = True  # Allow TF32 matmuls on CUDA GPUs (JAX's default GPU precision).
    use_bf16_autocast: bool = False  # Run the MLP under bf16 autocast; compositing stays fp32.
    use_compile: bool = False  # torch.compile the model (measured slower on CPU).
    nan_check: bool = True  # Stop training with an error when the loss becomes non-finite (ours).
    prefetch_batches: int = 3  # Batches a Dataset thread prepares ahead (the original's queue holds 3).
    # Micro-batches per step: each one's gradients accumulate, then one clip and Adam step (the
    # update of the whole batch, with the activation memory of batch_size / grad_accum_steps rays).
    grad_accum_steps: int = 1
    # Training images and rays on the device, batches drawn there: None decides by their size
    # against the GPU's free memory; False keeps them on the host (prefetch thread, a copy a step).
    data_on_device: Optional[bool] = None


def define_common_flags():
    """Defines the absl flags shared by train.py and eval.py (once per process)."""
    # train, eval and the tests may share a process; absl rejects a second definition.
    if 'gin_file' in flags.FLAGS:
        return
    flags.DEFINE_multi_string('gin_file', None, 'List of paths to the config files.')
    flags.DEFINE_multi_string('gin_param', None, 'Newline separated list of Gin parameter bindings.')
    flags.DEFINE_string('train_dir', None, 'Where to store checkpoints and logs.')
    flags.DEFINE_string('data_dir', None, 'Input data directory.')
    flags.DEFINE_integer('chunk', 8192, 'Rays per chunk when rendering a whole image.')


def load_config():
    """Parses --gin_file and --gin_param into a Config.

    As in the original, parsing is strict: import the modules whose classes the files bind
    (mipnerf.internal.models for MipNerfModel and MLP) first.
    """
    gin.parse_config_files_and_bindings(flags.FLAGS.gin_file, flags.FLAGS.gin_param)
    return config_types.check_types(Config())


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
        return img.detach().float().cpu().numpy()
    return np.asarray(img)


def save_img_uint8(img, pth):
    """Saves an image in [0, 1] ([H, W] or [H, W, 3]) as an 8-bit PNG; NaN becomes 0."""
    img = np.clip(np.nan_to_num(_to_numpy(img)), 0., 1.)
    with open_file(pth, 'wb') as f:
        Image.fromarray((img * 255.).astype(np.uint8)).save(f, 'PNG')


def save_img_float32(depthmap, pth):
    """Saves a one-channel image [H, W] (a depth map, say) as a float32 TIFF; NaN becomes 0."""
    depthmap = np.nan_to_num(_to_numpy(depthmap)).astype(np.float32)
    with open_file(pth, 'wb') as f:
        Image.fromarray(depthmap).save(f, 'TIFF')
