# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""The mip-NeRF model (one MLP shared by the coarse and fine levels) and chunked image rendering.

Parameter names follow google/mipnerf's flax tree: MipNerfModel has a single child `MLP_0`, whose
torch.nn.Linear layers are registered in the order in which flax creates its `Dense_i` layers, so
the i-th Linear is `MLP_0/Dense_i`. `flax_names()` gives that mapping; a flax kernel [in, out] is
the transpose of a torch weight [out, in].
"""

from typing import Any, Callable

import gin
import numpy as np
import torch
from torch import nn

from common import device as device_utils
from mipnerf.internal import mip


@gin.configurable
class MipNerfModel(nn.Module):
    """mip-NeRF: IPE features of conical frustums through one MLP, sampled then resampled.

    Args:
      num_samples: samples per level.
      num_levels: sampling levels (the first samples, every later one resamples).
      resample_padding: added to the blurred weights before resampling.
      stop_level_grad: do not backpropagate through the resampled positions.
      use_viewdirs: feed the encoded view direction to the colour branch.
      lindisp: sample linearly in disparity rather than depth.
      ray_shape: 'cone' or 'cylinder'.
      min_deg_point, max_deg_point: scales 2^min .. 2^(max-1) of the IPE of the samples.
      deg_view: scales 2^0 .. 2^(deg_view-1) of the view-direction encoding.
      density_activation: applied to raw density + density_bias.
      density_noise: std of the noise added to the raw density when randomized.
      density_bias: shift of the raw density before its activation.
      rgb_activation: applied to the raw colour.
      rgb_padding: the colour range is widened to [-rgb_padding, 1 + rgb_padding].
      disable_integration: zero covariances, i.e. NeRF's PE instead of the IPE.
    """

    def __init__(
        self,
        num_samples: int = 128,
        num_levels: int = 2,
        resample_padding: float = 0.01,
        stop_level_grad: bool = True,
        use_viewdirs: bool = True,
        lindisp: bool = False,
        ray_shape: str = 'cone',
        min_deg_point: int = 0,
        max_deg_point: int = 16,
        deg_view: int = 4,
        density_activation: Callable[..., Any] = nn.functional.softplus,
        density_noise: float = 0.,
        density_bias: float = -1.,
        rgb_activation: Callable[..., Any] = torch.sigmoid,
        rgb_padding: float = 0.001,
        disable_integration: bool = False,
    ):
        super().__init__()
        self.num_samples = num_samples
        self.num_levels = num_levels
        self.resample_padding = resample_padding
        self.stop_level_grad = stop_level_grad
        self.use_viewdirs = use_viewdirs
        self.lindisp = lindisp
        self.ray_shape = ray_shape
        self.min_deg_point = min_deg_point
        self.max_deg_point = max_deg_point
        self.deg_view = deg_view
        self.density_activation = density_activation
        self.density_noise = density_noise
        self.density_bias = density_bias
        self.rgb_activation = rgb_activation
        self.rgb_padding = rgb_padding
        self.disable_integration = disable_integration
        # Set from Config.use_bf16_autocast by train.py and eval.py (not a field of the original).
        self.use_bf16_autocast = False
        # flax infers the input widths at the first call; torch needs them up front: the IPE has
        # sin and cos of 3 coordinates per scale, the view encoding adds the identity.
        self.MLP_0 = MLP(
            input_dim=2 * 3 * (max_deg_point - min_deg_point),
            condition_dim=3 + 2 * 3 * deg_view if use_viewdirs else 0)

    def forward(self, rng, rays, randomized, white_bkgd):
        """Renders rays through every level.

        Args:
          rng: torch.Generator on the rays' device, or None (torch's global generator; unused
            when not randomized, which is the deterministic path).
          rays: utils.Rays with fields [batch, ...].
          randomized: stratified sampling, random resampling and density noise.
          white_bkgd: composite on white instead of black.

        Returns:
          [(comp_rgb [batch, 3], distance [batch], acc [batch])], one per level.
        """
        if self.use_viewdirs:
            viewdirs_enc = mip.pos_enc(
                rays.viewdirs, min_deg=0, max_deg=self.deg_view, append_identity=True)
        else:
            viewdirs_enc = None

        ret = []
        weights = None  # Each level's weights guide the resampling of the next.
        for i_level in range(self.num_levels):
            if i_level == 0:
                t_vals, samples = mip.sample_along_rays(
                    rng, rays.origins, rays.directions, rays.radii, self.num_samples, rays.near,
                    rays.far, randomized, self.lindisp, self.ray_shape)
            else:
                t_vals, samples = mip.resample_along_rays(
                    rng, rays.origins, rays.directions, rays.radii, t_vals, weights, randomized,
                    self.ray_shape, self.stop_level_grad, resample_padding=self.resample_padding)
            if self.disable_integration:
                # Zero covariances turn the integrated encoding into the plain one.
                samples = (samples[0], torch.zeros_like(samples[1]))
            samples_enc = mip.integrated_pos_enc(samples, self.min_deg_point, self.max_deg_point)

            # Only the MLP runs under bf16 autocast; its outputs come back in float32, so
            # compositing, resampling and the loss stay in full precision.
            # (A no-op context when disabled, so that any device, also one without autocast, runs.)
            with device_utils.autocast(rays.origins.device, self.use_bf16_autocast, on_cpu=True):
                raw_rgb, raw_density = self.MLP_0(samples_enc, viewdirs_enc)
            raw_rgb, raw_density = raw_rgb.float(), raw_density.float()

            # Noise on the raw density regularises training.
            if randomized and self.density_noise > 0:
                raw_density = raw_density + self.density_noise * torch.randn(
                    raw_density.shape, generator=rng, dtype=raw_density.dtype,
                    device=raw_density.device)

            rgb = self.rgb_activation(raw_rgb)
            rgb = rgb * (1 + 2 * self.rgb_padding) - self.rgb_padding
            density = self.density_activation(raw_density + self.density_bias)
            comp_rgb, distance, acc, weights = mip.volumetric_rendering(
                rgb, density, t_vals, rays.directions, white_bkgd=white_bkgd)
            ret.append((comp_rgb, distance, acc))
        return ret

    def flax_names(self):
        """{torch parameter name: flax path}, e.g. 'MLP_0.pts_layers.0.weight' -> 'MLP_0/Dense_0/kernel'."""
        return {f'MLP_0.{k}': f'MLP_0/{v}' for k, v in self.MLP_0.flax_names().items()}


def load_flax_params(model, flax_params):
    """Copies flattened flax parameters {'MLP_0/Dense_0/kernel': [in, out] array, ...} into model."""
    names = model.flax_names()
    unknown = sorted(set(flax_params) - set(names.values()))
    missing = sorted(set(names.values()) - set(flax_params))
    if unknown or missing:
        raise ValueError(f'flax parameters do not fit the model: unknown {unknown}, missing {missing}')
    params = dict(model.named_parameters())
    with torch.no_grad():
        for torch_name, flax_name in names.items():
            value = torch.as_tensor(np.asarray(flax_params[flax_name]))
            if flax_name.endswith('/kernel'):
                value = value.T  # flax Dense kernels are [in, out], torch weights [out, in].
            # copy_ would broadcast a wrong shape silently.
            if value.shape != params[torch_name].shape:
                raise ValueError(
                    f'{flax_name}: shape {tuple(value.shape)} does not fit {torch_name} '
                    f'{tuple(params[torch_name].shape)}; check the MipNerfModel/MLP gin config')
            params[torch_name].copy_(value)


def construct_mipnerf(rng, example_batch):
    """A gin-configured MipNerfModel on the device of example_batch['rays'].

    Args:
      rng: torch.Generator (any device) or None; its next draw seeds the initialisation, which
        runs on the CPU so that the parameters do not depend on the device.
      example_batch: {'rays': utils.Rays, ...} (only the device is used: torch builds every layer
        up front, where flax needed an example input).

    Returns:
      model: the MipNerfModel; its parameters are the flax `init_variables` of the original.
    """
    seed = None if rng is None else int(torch.randint(2**62, (), generator=rng, device=rng.device))
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = MipNerfModel()
    return model.to(example_batch['rays'].origins.device)


@gin.configurable
class MLP(nn.Module):
    """The NeRF MLP: a trunk with a skip connection, a density head, a conditioned colour branch.

    The arguments before `*` are google/mipnerf's fields with its defaults. `input_dim` and
    `condition_dim` (0: no condition branch) are set by MipNerfModel.
    """

    def __init__(
        self,
        net_depth: int = 8,
        net_width: int = 256,
        net_depth_condition: int = 1,
        net_width_condition: int = 128,
        net_activation: Callable[..., Any] = nn.functional.relu,
        skip_layer: int = 4,
        num_rgb_channels: int = 3,
        num_density_channels: int = 1,
        *,
        input_dim: int = 96,
        condition_dim: int = 27,
    ):
        super().__init__()
        self.net_activation = net_activation
        self.skip_layer = skip_layer

        # Registered in the order flax creates its layers (Dense_0, Dense_1, ...).
        width = input_dim
        self.pts_layers = nn.ModuleList()
        for i in range(net_depth):
            self.pts_layers.append(_dense(width, net_width))
            width = net_width + (input_dim if i % skip_layer == 0 and i > 0 else 0)
        self.density_layer = _dense(width, num_density_channels)
        if condition_dim > 0:
            self.bottleneck_layer = _dense(width, net_width)
            width = net_width + condition_dim
        self.condition_layers = nn.ModuleList()
        for _ in range(net_depth_condition if condition_dim > 0 else 0):
            self.condition_layers.append(_dense(width, net_width_condition))
            width = net_width_condition
        self.rgb_layer = _dense(width, num_rgb_channels)

    def flax_names(self):
        """{torch parameter name: flax path}: the i-th Linear is `Dense_i` (weight = kernel^T)."""
        names = {}
        linears = [name for name, m in self.named_modules() if isinstance(m, nn.Linear)]
        for i, name in enumerate(linears):
            names[f'{name}.weight'] = f'Dense_{i}/kernel'
            names[f'{name}.bias'] = f'Dense_{i}/bias'
        return names

    def forward(self, x, condition=None):
        """Raw colour and density of encoded samples.

        Args:
          x: [..., num_samples, input_dim] encoded sample points.
          condition: [..., condition_dim] per-ray condition (the encoded view direction), shared
            by the samples of its ray; None when the MLP has no condition branch.

        Returns:
          raw_rgb: [..., num_samples, num_rgb_channels].
          raw_density: [..., num_samples, num_density_channels].
        """
        inputs = x
        for i, layer in enumerate(self.pts_layers):
            x = self.net_activation(layer(x))
            if i % self.skip_layer == 0 and i > 0:
                x = torch.cat([x, inputs], dim=-1)
        raw_density = self.density_layer(x)

        if condition is not None:
            bottleneck = self.bottleneck_layer(x)
            condition = condition[..., None, :].expand(x.shape[:-1] + condition.shape[-1:])
            x = torch.cat([bottleneck, condition], dim=-1)
            for layer in self.condition_layers:
                x = self.net_activation(layer(x))
        raw_rgb = self.rgb_layer(x)
        return raw_rgb, raw_density


def _dense(in_features, out_features):
    """flax's nn.Dense as the original builds it: glorot-uniform kernel, zero bias."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        # Fans of a torch weight [out, in] are (in, out), those of the flax kernel [in, out].
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


def render_image(render_fn, rays, rng, chunk=8192):
    """Renders every pixel of an image with the last level, `chunk` rays at a time.

    Args:
      render_fn: (rng, rays) -> [(rgb, distance, acc)] per level, e.g. the model in eval mode
        (run it without autograd to keep the memory of a chunk).
      rays: utils.Rays with fields [height, width, ...].
      rng: torch.Generator or None, passed to render_fn.
      chunk: rays per call of render_fn.

    Returns:
      rgb [height, width, 3], distance [height, width], acc [height, width].
    """
    height, width = rays.origins.shape[:2]
    num_rays = height * width
    rays = rays.map(lambda r: r.reshape((num_rays, -1)))

    results = []
    for i in range(0, num_rays, chunk):
        chunk_rays = rays.map(lambda r: r[i:i + chunk])
        results.append(render_fn(rng, chunk_rays)[-1])
    rgb, distance, acc = [torch.cat(r, dim=0) for r in zip(*results)]
    return (
        rgb.reshape((height, width, -1)),
        distance.reshape((height, width)),
        acc.reshape((height, width)))
