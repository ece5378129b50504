# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""What the fork's MipNeRFSystem (Lightning) wires together, as plain functions shared by train.py,
eval.py and render_video.py: model and dataset from the config, one training step, image rendering."""

import math
import os

import gin
import torch

from common import checkpoints
from common import device as device_utils
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import dataset_dict, datasets
from depth_mipnerf.models import loss as loss_lib
from depth_mipnerf.models.mip_nerf import MipNerf


def build_model(sections):
    """MipNerf from the nerf, nerf.mlp and loss sections (the fork's MipNeRFSystem.__init__)."""
    nerf, mlp, loss = sections['nerf'], sections['nerf.mlp'], sections['loss']
    return MipNerf(
        num_samples=nerf.num_samples, num_levels=nerf.num_levels, resample_padding=nerf.resample_padding,
        stop_resample_grad=nerf.stop_resample_grad, use_viewdirs=nerf.use_viewdirs, disparity=nerf.disparity,
        depth_sampling=nerf.depth_sampling, ray_shape=nerf.ray_shape, min_deg_point=nerf.min_deg_point,
        max_deg_point=nerf.max_deg_point, deg_view=nerf.deg_view, density_activation=nerf.density_activation,
        density_noise=nerf.density_noise, density_bias=nerf.density_bias, rgb_activation=nerf.rgb_activation,
        rgb_padding=nerf.rgb_padding, disable_integration=nerf.disable_integration,
        append_identity=nerf.append_identity, mlp_net_depth=mlp.net_depth, mlp_net_width=mlp.net_width,
        mlp_net_depth_condition=mlp.net_depth_condition, mlp_net_width_condition=mlp.net_width_condition,
        mlp_skip_index=mlp.skip_index, mlp_num_rgb_channels=mlp.num_rgb_channels,
        mlp_num_density_channels=mlp.num_density_channels, mlp_net_activation=mlp.net_activation,
        prop_mlp=mlp.prop_mlp, num_glo_embeddings=mlp.num_glo_embeddings, num_glo_features=mlp.num_glo_features,
        mlp_normals=mlp.mlp_normals, num_fine_samples=nerf.num_fine_samples, prop_net_depth=mlp.prop_net_depth,
        prop_net_width=mlp.prop_net_width, encode_glo=mlp.encode_glo, depth_loss=loss.depth_loss,
        cdf_beta=loss.cdf_beta, cdf_sigma_from_eps=loss.cdf_sigma_from_eps, urf_fix_sigma=loss.urf_fix_sigma,
        ds_nerf_sigma=loss.ds_nerf_sigma, fix_resample_count=nerf.fix_resample_count,
        fix_ray_shape=nerf.fix_ray_shape)


def build_dataset(config, sections, split):
    """The split of Config.data_dir with dataset_dict[Config.dataset_name]; train uses train.num_images."""
    if config.dataset_name not in dataset_dict:
        raise ValueError(f'Config.dataset_name must be one of {sorted(dataset_dict)}, got {config.dataset_name!r}')
    if not config.data_dir:
        raise ValueError("Config.data_dir is not set (--gin_bindings=\"Config.data_dir='...'\")")
    section = sections['train'] if split == 'train' else sections['val']
    return dataset_dict[config.dataset_name](
        config.data_dir, split, white_bkgd=section.white_bkgd, batch_type=section.batch_type,
        factor=config.factor, num_images=sections['train'].num_images if split == 'train' else None,
        load_depth=config.load_depth, depth_source=config.depth_source)


def build_loss(config, sections):
    """MSELoss on the fork's flattened hparams."""
    return loss_lib.MSELoss(config_lib.hparams(config, sections))


def depth_eps(step, max_steps):
    """The fork's annealed depth window: max(0.45 - 0.4 sqrt(4 step / max_steps), 0.15)."""
    return max(0.45 - 0.4 * math.sqrt(4 * step / max_steps), 0.15)


def targets(rays, rgbs):
    """The fork's training_step targets dict of a batch."""
    return {'rgb': rgbs[..., :3], 'depth': rays.depth.reshape(-1), 'normal': rays.normal, 'dirs': rays.viewdirs,
            'dmask': rays.mask.reshape(-1)}


def use_mlp_autocast(model, config, device):
    """Config.precision 16 on a GPU: bf16 autocast of the MLPs (the fork trains in fp16)."""
    model.mlp_autocast = config.precision == 16 and torch.device(device).type == 'cuda'


def use_compile(model, enabled):
    """Config.use_compile: torch.compile the MLPs' forward in place (state-dict names unchanged);
    their shapes are fixed for a given batch and sample count."""
    for mlp in (model.mlp, model.prop_mlp if model.use_prop_mlp else None):
        if mlp is not None:
            mlp.forward = device_utils.maybe_compile(mlp.forward, enabled, dynamic=False)


def render_image(model, rays, chunk, randomized=False, white_bkgd=True, compute_normals=False):
    """Renders Rays of [H, W, k] in chunks with zero GLO codes: {rgb_fine [H, W, 3], depth, acc [H, W], ...}."""
    shape = rays.origins.shape[:-1]
    flat = datasets.namedtuple_map(lambda r: r.reshape(-1, r.shape[-1]), rays)
    pieces = {}
    with torch.no_grad():
        for i in range(0, flat.origins.shape[0], chunk):
            out = model(datasets.namedtuple_map(lambda r: r[i:i + chunk], flat), randomized, white_bkgd,
                        compute_normals=compute_normals, zero_glo=True)
            for key in ('rgb_fine', 'depth', 'acc'):
                pieces.setdefault(key, []).append(out[key].detach())
    return {k: torch.cat(v).reshape(shape + v[0].shape[1:]) for k, v in pieces.items()}


def load_run(checkpoint_dir, gin_configs=(), gin_bindings=(), device='cpu'):
    """(config, sections, model, step) of a trained run: its config.gin (+ overrides), newest readable
    checkpoint. A FileNotFoundError naming the file when config.gin or every checkpoint is missing;
    common.checkpoints.UnreadableCheckpointsError naming them when none is readable (nothing changed)."""
    saved_config = os.path.join(checkpoint_dir, 'config.gin')
    if not os.path.isfile(saved_config):
        raise FileNotFoundError(f'{saved_config}: missing (is {checkpoint_dir} a training run?)')
    gin.clear_config()
    config, sections = config_lib.parse([saved_config, *gin_configs], gin_bindings)
    state, path = checkpoints.restore_latest(checkpoint_dir, map_location=device)
    if state is None:
        raise FileNotFoundError(f'{checkpoint_dir}: no readable checkpoint_*.pt')
    model = build_model(sections).to(device)
    model.load_state_dict(state['model'])
    model.eval()
    use_mlp_autocast(model, config, device)
    return config, sections, model, int(state['step'])

