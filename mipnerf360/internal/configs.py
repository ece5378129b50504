# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""The gin-configurable `Config` that holds every flag, and the flags that load it."""

import dataclasses
import logging
import os
import re
from typing import Any, Callable, Mapping, Optional, Tuple

import gin
import torch
from absl import flags

from common import config_types, dist
from mipnerf360.internal import coord, math, utils

# Config files may be named relative to the package root (`configs/360.gin`) from any directory.
gin.add_config_file_search_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _truncated_normal_(tensor, scale, fan):
    """Fills `tensor` in place from N(0, scale/fan) truncated to +-2 std, rescaled to keep that variance."""
    # 0.8796...: the std of a unit normal truncated to [-2, 2]; dividing by it restores the variance.
    std = (scale / fan) ** 0.5 / 0.87962566103423978
    return torch.nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def _fans(tensor):
    """(fan_in, fan_out) of a [out, in] weight."""
    return tensor.shape[1], tensor.shape[0]


def he_normal(tensor):
    """He normal initializer (truncated, variance 2/fan_in), in place on a [out, in] weight."""
    return _truncated_normal_(tensor, 2.0, _fans(tensor)[0])


def he_uniform(tensor):
    """He uniform initializer, U(-sqrt(6/fan_in), sqrt(6/fan_in)), in place on a [out, in] weight."""
    return torch.nn.init.kaiming_uniform_(tensor, nonlinearity='relu')


def glorot_normal(tensor):
    """Glorot normal initializer (truncated, variance 2/(fan_in+fan_out)), in place."""
    fan_in, fan_out = _fans(tensor)
    return _truncated_normal_(tensor, 2.0, fan_in + fan_out)


def glorot_uniform(tensor):
    """Glorot uniform initializer, U(-sqrt(6/(fan_in+fan_out)), +), in place."""
    return torch.nn.init.xavier_uniform_(tensor)


# The torch functions that multinerf's gin files name by their jnp / jax.nn selectors, so the
# published configs parse unchanged: `Model.raydist_fn = @jnp.reciprocal`.
configurables = {
    'jnp': [torch.reciprocal, torch.log, torch.log1p, torch.exp, torch.sqrt, torch.square],
    'jax.nn': [
        torch.nn.functional.relu, torch.nn.functional.softplus, torch.nn.functional.silu
    ],
}
for module, fns in configurables.items():
    for fn in fns:
        gin.config.external_configurable(fn, module=module)

# jax registers each initializer as the `init` function its factory returns, so the selectors
# are `@jax.nn.initializers.he_uniform.init` etc.
for initializer in [he_normal, he_uniform, glorot_normal, glorot_uniform]:
    gin.config.external_configurable(
        initializer, name='init', module=f'jax.nn.initializers.{initializer.__name__}')


# The functions models.py's MLPs are given by name: `NerfMLP.warp_fn = @coord.contract`.
# (multinerf registers these two in models.py; registering the same object twice is allowed.)
gin.config.external_configurable(math.safe_exp, module='math')
gin.config.external_configurable(coord.contract, module='coord')


@gin.configurable()
@dataclasses.dataclass
class Config:
    """Configuration flags for everything."""

    dataset_loader: str = 'llff'  # Dataset loader: 'llff', 'blender', 'tat_nerfpp', 'tat_fvs', 'dtu'.
    batching: str = 'all_images'  # How a batch is drawn: 'all_images' or 'single_image'.
    batch_size: int = 16384  # Rays (pixels) per training batch.
    patch_size: int = 1  # Side of the square pixel patches a training batch is made of.
    factor: int = 0  # Image downsampling factor; 0 keeps the full resolution.
    load_alphabetical: bool = True  # Order images by name rather than COLMAP id (fixes the test split).
    forward_facing: bool = False  # True for forward-facing LLFF captures (NDC space).
    render_path: bool = False  # Render a camera path instead of the test views (LLFF only).
    llffhold: int = 8  # Every llffhold-th image is held out for testing (LLFF only).
    llff_use_all_images_for_training: bool = False  # Train on every image, test views included.
    use_tiffs: bool = False  # Read 32-bit TIFF images (Blender only).
    compute_disp_metrics: bool = False  # Load ground-truth disparity and report its MSE.
    compute_normal_metrics: bool = False  # Load ground-truth normals and report their MAE.
    gc_every: int = 10000  # Steps between garbage collections.
    disable_multiscale_loss: bool = False  # Ignore the per-ray loss multipliers.
    randomized: bool = True  # Stratified (random) sampling during training.
    near: float = 2.  # Near plane distance.
    far: float = 6.  # Far plane distance.
    checkpoint_dir: Optional[str] = None  # Where checkpoints, logs and the config go.
    render_dir: Optional[str] = None  # Where rendered paths go.
    data_dir: Optional[str] = None  # The scene's directory.
    vocab_tree_path: Optional[str] = None  # COLMAP vocabulary tree.
    render_chunk_size: int = 16384  # Rays per chunk when rendering a whole image.
    num_showcase_images: int = 5  # Test images shown in TensorBoard.
    deterministic_showcase: bool = True  # Show the same test images each time.
    vis_num_rays: int = 16  # Rays drawn in the ray visualizations.
    vis_decimate: int = 0  # Subsample TensorBoard images as x[::d, ::d]; 0 keeps all pixels.

    # train.py only.
    max_steps: int = 250000  # Optimization steps.
    early_exit_steps: Optional[int] = None  # Stop after this many steps (debugging).
    checkpoint_every: int = 25000  # Steps between checkpoints.
    print_every: int = 100  # Steps between TensorBoard reports.
    train_render_every: int = 5000  # Steps between test-image renders.
    cast_rays_in_train_step: bool = False  # Cast rays from pixels inside the train step.
    data_loss_type: str = 'charb'  # Data loss: 'mse', 'charb', 'rawnerf' or 'robustnerf'.
    charb_padding: float = 0.001  # Epsilon of the Charbonnier loss.
    data_loss_mult: float = 1.0  # Weight of the data loss of the final level.
    data_coarse_loss_mult: float = 0.  # Weight of the data losses of the proposal levels.
    interlevel_loss_mult: float = 1.0  # Weight of the proposal (interlevel) loss.
    orientation_loss_mult: float = 0.0  # Weight of the Ref-NeRF orientation loss.
    orientation_coarse_loss_mult: float = 0.0  # Its weight on the coarser levels.
    # RobustNeRF loss.
    robustnerf_inlier_quantile: float = 0.5
    enable_robustnerf_loss: bool = False
    robustnerf_inner_patch_size: int = 8
    robustnerf_smoothed_filter_size: int = 3
    robustnerf_smoothed_inlier_quantile: float = 0.5
    robustnerf_inner_patch_inlier_quantile: float = 0.5
    orientation_loss_target: str = 'normals_pred'  # Normals the orientation loss acts on.
    predicted_normal_loss_mult: float = 0.0  # Weight of the predicted-normal loss.
    predicted_normal_coarse_loss_mult: float = 0.0  # Its weight on the coarser levels.
    # L2 weight decay per parameter-name prefix, e.g. {'NerfMLP_0': 1e-5}; unnamed ones get 0.
    weight_decay_mults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    lr_init: float = 0.002  # Initial learning rate.
    lr_final: float = 0.00002  # Final learning rate.
    lr_delay_steps: int = 512  # Length of the learning-rate warm-up.
    lr_delay_mult: float = 0.01  # Learning-rate multiplier at the start of the warm-up.
    adam_beta1: float = 0.9  # Adam beta1.
    adam_beta2: float = 0.999  # Adam beta2.
    adam_eps: float = 1e-6  # Adam epsilon.
    grad_max_norm: float = 0.001  # Per-MLP gradient norm clip; 0 disables it.
    grad_max_val: float = 0.  # Per-MLP gradient value clip; 0 disables it.
    distortion_loss_mult: float = 0.01  # Weight of the distortion loss.

    # eval.py only.
    eval_only_once: bool = True  # Evaluate the latest checkpoint once, rather than in a loop.
    eval_save_output: bool = True  # Write the rendered test images.
    eval_save_ray_data: bool = False  # Write the per-ray visualization data.
    eval_render_interval: int = 1  # Render every n-th test image.
    eval_dataset_limit: int = torch.iinfo(torch.int32).max  # Evaluate at most this many images.
    eval_quantize_metrics: bool = True  # Compute metrics on 8-bit quantized images.
    eval_crop_borders: int = 0  # Ignore a border of c pixels (x[c:-c, c:-c]) in the metrics.

    # render.py only.
    render_video_fps: int = 60  # Video frame rate.
    render_video_crf: int = 18  # ffmpeg constant rate factor (video quality).
    render_path_frames: int = 120  # Frames in the render path.
    z_variation: float = 0.  # Height variation of the render path.
    z_phase: float = 0.  # Phase of that height variation.
    render_dist_percentile: float = 0.5  # Percentile trimmed from both ends of the depth range.
    render_dist_curve_fn: Callable[..., Any] = torch.log  # Curve applied to depth before colouring.
    render_path_file: Optional[str] = None  # A .npy file of render poses.
    render_job_id: int = 0  # This render job's index.
    render_num_jobs: int = 1  # Number of render jobs sharing the path.
    render_resolution: Optional[Tuple[int, int]] = None  # Render (width, height).
    render_focal: Optional[float] = None  # Render focal length.
    render_camtype: Optional[str] = None  # 'perspective', 'fisheye' or 'pano'.
    render_spherical: bool = False  # Render 360-degree spherical panoramas.
    render_save_async: bool = True  # Write rendered frames from a background thread.
    # A text file naming the keyframe images of a spline path, or a directory holding them.
    render_spline_keyframes: Optional[str] = None
    render_spline_n_interp: int = 30  # Frames interpolated between keyframes.
    render_spline_degree: int = 5  # Degree of the B-spline.
    render_spline_smoothness: float = .03  # B-spline smoothing; 0 interpolates the keyframes.
    render_spline_interpolate_exposure: bool = False  # Interpolate exposure between keyframes.

    # Raw (RawNeRF) datasets.
    rawnerf_mode: bool = False  # Load raw images and train in raw colour space.
    exposure_percentile: float = 97.  # Image percentile exposed as white.
    num_border_pixels_to_mask: int = 0  # Ignore an N-pixel border of each training image.
    apply_bayer_mask: bool = False  # Apply a Bayer mosaic mask during training.
    autoexpose_renders: bool = False  # Autoexpose each rendered image.
    eval_raw_affine_cc: bool = False  # Affine raw-space colour correction on raw test scenes.

    # Added by this port (not in multinerf); the defaults keep multinerf's behaviour.
    checkpoint_keep: int = 100  # Checkpoints kept on disk (multinerf's train.py keeps 100).
    prefetch_batches: int = 3  # Batches a Dataset thread prepares ahead (multinerf's queue holds 3).
    use_tf32: bool = True  # Allow TF32 matmuls on CUDA GPUs (JAX's default GPU precision).
    use_bf16_autocast: bool = False  # Run the MLPs under bf16 autocast; compositing stays fp32.
    use_compile: bool = False  # torch.compile the model (measured slower on CPU).
    # torch.compile only the elementwise chains (the MLPs' input encoding, the resampling's
    # step-function comparisons), equal to eager within float32 round-off: faster on CPU too.
    compile_elementwise: bool = False
    nan_check: bool = True  # Stop training with an error when the loss becomes non-finite.
    # Micro-batches per step: gradients of batch_size / grad_accum_steps rays at a time are summed
    # before the one optimizer update, which is the update of the whole batch (less memory).
    grad_accum_steps: int = 1
    data_on_device: Optional[bool] = None  # Training images on the device; None: when they fit.
    device: Optional[str] = None  # 'cpu', 'cuda:1', ...; None: cuda:LOCAL_RANK if any, else CPU.
    # Fixes of the original's bugs (see mipnerf360/README.md); False is multinerf's behaviour.
    fix_pca_eigh: bool = False  # Pose PCA with eigh: orthonormal axes when eigenvalues repeat.
    eval_wait_timeout: Optional[float] = None  # Continuous eval: give up after this many seconds without a new checkpoint (None: wait, as multinerf).


def define_common_flags():
    """Defines the absl flags shared by train.py, eval.py and render.py (once per process)."""
    # train, eval, render and the tests may share a process; absl rejects a second definition.
    if 'gin_configs' in flags.FLAGS:
        return
    flags.DEFINE_string('mode', None, 'Required by GINXM, not used.')
    flags.DEFINE_string('base_folder', None, 'Required by GINXM, not used.')
    flags.DEFINE_multi_string('gin_bindings', None, 'Gin parameter bindings.')
    flags.DEFINE_multi_string('gin_configs', None, 'Gin config files.')
    flags.DEFINE_bool('gin_skip_unknown', False,
                      'Skip bindings of unknown configurables with a warning naming each (multinerf '
                      'skips them silently); by default they are an error.')


def load_config(save_config=True):
    """Parses --gin_configs and --gin_bindings into a Config; saves config.gin in checkpoint_dir.

    A binding to an unknown configurable is an error naming it (multinerf skips it silently);
    --gin_skip_unknown skips it with a warning naming it. An unknown parameter of a known
    configurable, or a Config value of the wrong type, is an error naming the key.
    """
    parse_gin(flags.FLAGS.gin_configs, flags.FLAGS.gin_bindings, flags.FLAGS.gin_skip_unknown)
    config = Config()
    config_types.check_types(config)
    if save_config:
        write_config(config)
    return config


def parse_gin(gin_configs, gin_bindings, skip_unknown=False):
    """gin.parse_config_files_and_bindings; unknown configurables fail, or with skip_unknown are
    skipped with a warning naming each. Returns the names skipped."""
    skipped = []
    while True:
        try:
            gin.parse_config_files_and_bindings(gin_configs, gin_bindings, skip_unknown=skipped or False)
            break
        except ValueError as e:
            unknown = re.search(r"No configurable matching '([^']+)'", str(e))
            if not unknown:
                raise
            if not skip_unknown:
                raise ValueError(f'{e}\n(pass --gin_skip_unknown to skip bindings of unknown configurables, '
                                 'as multinerf does)') from None
            skipped.append(unknown.group(1))
    for name in skipped:
        logging.warning('gin: skipped the bindings of the unknown configurable %s (--gin_skip_unknown)', name)
    return skipped


def write_config(config):
    """Writes the parsed gin configuration to checkpoint_dir/config.gin (on the main process)."""
    if not dist.is_main_process():
        return
    if config.checkpoint_dir is None:
        raise ValueError('Config.checkpoint_dir must be set to save the config.')
    utils.makedirs(config.checkpoint_dir)
    with utils.open_file(os.path.join(config.checkpoint_dir, 'config.gin'), 'w') as f:
        f.write(gin.config_str())
