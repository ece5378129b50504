# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's yaml sections as gin configurables: `train.batch_size = 8192`, `nerf.mlp.net_depth = 8`,
`loss.lambda_near_loss = 0.1`, ... read exactly like configs/lego.yaml. `hparams()` flattens them
into the fork's dotted dict ('loss.lambda_depth': ...) that models.loss.MSELoss takes."""

import dataclasses
import os
from typing import Optional

import gin

from common import config_types

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(CONFIG_DIR)
# `include 'depth_mipnerf/configs/lego.gin'` inside a config resolves from any directory.
gin.add_config_file_search_path(os.path.dirname(PACKAGE_DIR))


@gin.configurable('Config')
@dataclasses.dataclass
class Config:
    """Top-level keys of the yaml (data_path -> data_dir, out_dir -> checkpoint_dir) and this port's."""

    seed: int = 4
    num_gpus: int = 1  # Processes under torchrun; the port trains on one device per process.
    precision: int = 16  # 16: bf16 autocast of the MLPs on CUDA (fp32 on the CPU); 32: fp32.
    accumulate_grad_batches: int = 1
    exp_name: str = 'default'
    data_dir: Optional[str] = None  # The yaml's data_path.
    checkpoint_dir: Optional[str] = None  # Where this run's checkpoints, logs, config.gin go.
    dataset_name: str = 'blender'  # 'blender' or 'scannet' (the matterport config uses scannet).
    # Added by this port (defaults = the fork's behaviour).
    factor: int = 0  # 0 or 2 (half resolution), as the fork's loaders.
    gradient_clip_val: float = 1e-3  # The fork's Lightning Trainer clips the gradient norm at 1e-3.
    load_depth: bool = True  # False: no depth files read (depth 0 everywhere): the no-depth baseline.
    depth_source: str = 'sensor'  # scannet: 'sensor' (the fork), 'mono_sensor', 'mono_colmap'.
    save_every: int = 5000  # Steps between checkpoints.
    print_every: int = 100  # Steps between TensorBoard scalars.
    checkpoint_keep: int = 3
    # GPU switches (README "Running on a GPU"); precision 16 above is the bf16 autocast.
    use_tf32: bool = True  # TF32 matmuls on CUDA (the MLPs; compositing stays float32).
    use_compile: bool = False  # torch.compile the MLPs (fixed shapes); slower on the CPU.
    data_on_device: Optional[bool] = None  # Training rays on the device: None = if they fit (half the free memory).


@gin.configurable('train')
@dataclasses.dataclass
class TrainSection:
    batch_size: int = 8192
    # Port key: micro-batches per step (divides batch_size); gradients and losses equal one shot's.
    grad_accum_steps: int = 1
    num_images: Optional[int] = None  # Train on the first num_images views (3 / 6 / 100 in the table).
    batch_type: str = 'all_images'
    num_work: int = 4
    randomized: bool = True
    white_bkgd: bool = True


@gin.configurable('val')
@dataclasses.dataclass
class ValSection:
    batch_size: int = 1
    batch_type: str = 'single_image'
    num_work: int = 0
    randomized: bool = False
    white_bkgd: bool = True
    check_interval: int = 500
    chunk_size: int = 8192
    sample_num: int = 12


@gin.configurable('nerf')
@dataclasses.dataclass
class NerfSection:
    num_samples: int = 64
    num_levels: int = 3
    resample_padding: float = 0.01
    stop_resample_grad: bool = True
    use_viewdirs: bool = True
    disparity: bool = False
    depth_sampling: bool = False
    ray_shape: str = 'cone'
    min_deg_point: int = 0
    max_deg_point: int = 16
    deg_view: int = 4
    density_activation: str = 'softplus'
    density_noise: float = 0.
    density_bias: float = -1.
    rgb_activation: str = 'sigmoid'
    rgb_padding: float = 0.001
    disable_integration: bool = False
    append_identity: bool = True
    compute_density_normals: bool = False
    num_fine_samples: int = 32  # Port key: the fork hard-codes 32 samples on the last level.
    # Fix: without stop_resample_grad the fork's levels keep the first level's sample count.
    fix_resample_count: bool = False
    # Fix: the fork casts cones whatever ray_shape says; True honours 'cylinder'.
    fix_ray_shape: bool = False


@gin.configurable('mlp', module='nerf')
@dataclasses.dataclass
class MlpSection:
    net_depth: int = 8
    net_width: int = 256
    net_depth_condition: int = 1
    net_width_condition: int = 128
    net_activation: str = 'relu'
    skip_index: int = 4
    num_rgb_channels: int = 3
    num_density_channels: int = 1
    prop_mlp: bool = True
    num_glo_embeddings: int = 0
    num_glo_features: int = 0
    mlp_normals: bool = False
    prop_net_depth: int = 4  # Port keys: the fork hard-codes the proposal MLP at 4 x 256.
    prop_net_width: int = 256
    encode_glo: bool = False  # Port key: the fork reads self.encode_glo but never sets it.


@gin.configurable('optimizer')
@dataclasses.dataclass
class OptimizerSection:
    lr_init: float = 3e-3
    lr_final: float = 2e-5
    lr_delay_steps: int = 512
    lr_delay_mult: float = 0.01
    max_steps: int = 50000


@gin.configurable('loss')
@dataclasses.dataclass
class LossSection:
    disable_multiscale_loss: bool = False
    coarse_loss_mult: float = 0.1
    lambda_depth: float = 0.0
    lambda_orientation: float = 0.0
    lambda_distortion: float = 0.0
    lambda_normal: float = 0.0
    lambda_near_loss: float = 0.1
    lambda_empty_loss: float = 1.0
    lambda_prop_loss: float = 1.0
    # Port keys (defaults = the fork's code).
    depth_loss: str = 'cdf'  # 'cdf' (the method), 'urf', 'cdf_test', 'ds_nerf' (ours), 'none'.
    cdf_beta: float = 0.0  # The write-up's beta * eps offset of the two CDF bounds (0.06 = 2 x 0.03).
    cdf_sigma_from_eps: bool = False  # Fix: the CDF's std is the annealed eps (write-up), not 0.03.
    depth_divide_acc: bool = False  # Fix: the L2 depth term uses sum(w t) / acc.
    urf_fix_sigma: bool = False  # Fix: the URF target's std is eps / 3, not (eps / 3)^2.
    ds_nerf_sigma: float = 0.03  # DS-NeRF's Gaussian std around the depth.


@gin.configurable('checkpoint')
@dataclasses.dataclass
class CheckpointSection:
    resume_path: Optional[str] = None  # A checkpoint file to start from (else the newest in checkpoint_dir).
    test: Optional[str] = None  # A checkpoint to evaluate on the test split after training.


SECTIONS = {'train': TrainSection, 'val': ValSection, 'nerf': NerfSection, 'nerf.mlp': MlpSection,
            'optimizer': OptimizerSection, 'loss': LossSection, 'checkpoint': CheckpointSection}


def resolve_config_path(path):
    """A gin file as given, or relative to the package (configs/lego.gin) when it is not found."""
    if os.path.exists(path) or not os.path.exists(os.path.join(PACKAGE_DIR, path)):
        return path
    return os.path.join(PACKAGE_DIR, path)


def parse(gin_configs, gin_bindings):
    """Parses gin files + bindings into (Config, {section name: section dataclass}); a value of the
    wrong type is a ValueError naming its key (e.g. `loss.lambda_depth`)."""
    # Not finalized (locked): eval and render_video parse a run's config.gin after the command line's.
    gin.parse_config_files_and_bindings([resolve_config_path(p) for p in gin_configs or []],
                                        list(gin_bindings or []), finalize_config=False)
    sections = {name: config_types.check_types(cls(), name) for name, cls in SECTIONS.items()}
    return config_types.check_types(Config()), sections


def hparams(config, sections):
    """The fork's flat dict: 'seed', 'train.batch_size', 'nerf.mlp.prop_mlp', 'loss.lambda_depth', ..."""
    flat = dataclasses.asdict(config)
    for name, section in sections.items():
        flat.update({f'{name}.{k}': v for k, v in dataclasses.asdict(section).items()})
    return flat
