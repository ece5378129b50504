# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""The mip-NeRF 360 model (proposal and NeRF MLPs, the sampling loop) and full-image rendering.

Parameter names follow multinerf's flax tree: the Model's children are `NerfMLP_0`, `PropMLP_0`
(absent with single_mlp), `Embed_0` (GLO codes) and `exposure_scaling_offsets`. Inside an MLP the
torch.nn.Linear layers are registered in the order in which flax creates its `Dense_i` layers, so
the i-th Linear is `Dense_i`; `flax_names()` gives the mapping and `load_flax_params()` loads a
flax checkpoint (a kernel [in, out] is the transpose of a torch weight [out, in]).
"""

import functools
from typing import Any, Callable, Optional, Tuple

import gin
import numpy as np
import torch
from torch import nn

from common import device as device_utils
from mipnerf360.internal import configs, coord, geopoly, image, ref_utils, render, stepfun


@gin.configurable
class Model(nn.Module):
    """mip-NeRF 360: proposal levels that resample the rays, then the NeRF level that renders them.

    Args:
      config: the Config (vis_num_rays and use_bf16_autocast are read from it).
      num_prop_samples: samples of each proposal level.
      num_nerf_samples: samples of the final NeRF level.
      num_levels: sampling levels (3: two proposal levels and the NeRF level).
      bg_intensity_range: (min, max) background intensity; drawn per ray when they differ.
      anneal_slope: slope of the annealing of the resampling weights (larger: faster).
      stop_level_grad: do not backpropagate through the sample positions into earlier levels.
      use_viewdirs: feed view directions to the colour branch.
      raydist_fn: the curve of the normalised ray distance (torch.reciprocal for 360 scenes).
      ray_shape: 'cone' or 'cylinder'.
      disable_integration: zero covariances (PE instead of IPE).
      single_jitter: one jitter per ray instead of one per sample.
      dilation_multiplier, dilation_bias: the dilation of the resampling weights, relative to
        the expected interval width and absolute.
      num_glo_features: length of the per-image GLO appearance codes (0: none).
      num_glo_embeddings: number of GLO codes (an upper bound on the number of train images).
      learned_exposure_scaling: learn an RGB scale per exposure (RawNeRF).
      near_anneal_rate: fraction of training over which the near bound anneals in (None: off).
      near_anneal_init: initial normalised near bound of that annealing.
      single_mlp: use the NerfMLP for every level.
      resample_padding: added to the weights before resampling.
      use_gpu_resampling: invert CDFs with gathers rather than comparisons.
      opaque_background: make the last interval of each ray opaque.
    """

    def __init__(
        self,
        config: Any = None,
        num_prop_samples: int = 64,
        num_nerf_samples: int = 32,
        num_levels: int = 3,
        bg_intensity_range: Tuple[float, float] = (1., 1.),
        anneal_slope: float = 10,
        stop_level_grad: bool = True,
        use_viewdirs: bool = True,
        raydist_fn: Optional[Callable[..., Any]] = None,
        ray_shape: str = 'cone',
        disable_integration: bool = False,
        single_jitter: bool = True,
        dilation_multiplier: float = 0.5,
        dilation_bias: float = 0.0025,
        num_glo_features: int = 0,
        num_glo_embeddings: int = 1000,
        learned_exposure_scaling: bool = False,
        near_anneal_rate: Optional[float] = None,
        near_anneal_init: float = 0.95,
        single_mlp: bool = False,
        resample_padding: float = 0.0,
        use_gpu_resampling: bool = False,
        opaque_background: bool = False,
    ):
        super().__init__()
        self.config = config
        self.num_prop_samples = num_prop_samples
        self.num_nerf_samples = num_nerf_samples
        self.num_levels = num_levels
        self.bg_intensity_range = bg_intensity_range
        self.anneal_slope = anneal_slope
        self.stop_level_grad = stop_level_grad
        self.use_viewdirs = use_viewdirs
        self.raydist_fn = raydist_fn
        self.ray_shape = ray_shape
        self.disable_integration = disable_integration
        self.single_jitter = single_jitter
        self.dilation_multiplier = dilation_multiplier
        self.dilation_bias = dilation_bias
        self.num_glo_features = num_glo_features
        self.num_glo_embeddings = num_glo_embeddings
        self.learned_exposure_scaling = learned_exposure_scaling
        self.near_anneal_rate = near_anneal_rate
        self.near_anneal_init = near_anneal_init
        self.single_mlp = single_mlp
        self.resample_padding = resample_padding
        self.use_gpu_resampling = use_gpu_resampling
        self.opaque_background = opaque_background
        self.compile_elementwise = bool(getattr(config, 'compile_elementwise', False))

        if single_mlp and num_glo_features > 0:
            # The proposal levels get no GLO code, so one MLP cannot serve both (nor can it in
            # multinerf, whose Dense layers would be built twice with different input sizes).
            raise ValueError('single_mlp cannot be combined with GLO features.')
        self.NerfMLP_0 = NerfMLP(use_viewdirs=use_viewdirs, num_glo_features=num_glo_features)
        if not single_mlp:
            self.PropMLP_0 = PropMLP(use_viewdirs=use_viewdirs, num_glo_features=0)
        for mlp in (self.NerfMLP_0, getattr(self, 'PropMLP_0', None)):
            if mlp is not None:
                mlp.compile_elementwise = bool(getattr(config, 'compile_elementwise', False))
        if num_glo_features > 0:
            self.Embed_0 = nn.Embedding(num_glo_embeddings, num_glo_features)
            _flax_embed_init_(self.Embed_0.weight)
        if learned_exposure_scaling:
            # One RGB scale per exposure, as an offset from 1 that starts at 0.
            self.exposure_scaling_offsets = nn.Embedding(num_glo_embeddings, 3)
            nn.init.zeros_(self.exposure_scaling_offsets.weight)

    def forward(self, rng, rays, train_frac, compute_extras, zero_glo=True):
        """Renders rays through every sampling level.

        Args:
          rng: torch.Generator on the rays' device, or None for deterministic output.
          rays: utils.Rays with leading dims [...].
          train_frac: float (or 0-d tensor) in [0, 1], the fraction of training done.
          compute_extras: also compute acc, distances, normals and the `ray_*` visualisations.
          zero_glo: use all-zero GLO codes instead of the learned ones.

        Returns:
          renderings: one dict per level of render.volumetric_rendering outputs ('rgb' [..., 3],
            ...), plus 'ray_sdist', 'ray_weights', 'ray_rgbs' with compute_extras.
          ray_history: one dict per level of the MLP outputs ('density' [..., n], 'rgb'
            [..., n, 3], normals, ...) plus 'sdist' [..., n+1] and 'weights' [..., n].
        """
        nerf_mlp = self.NerfMLP_0
        prop_mlp = nerf_mlp if self.single_mlp else self.PropMLP_0

        if self.num_glo_features > 0:
            if not zero_glo:
                glo_vec = self.Embed_0(rays.cam_idx[..., 0])
            else:
                glo_vec = rays.origins.new_zeros(rays.origins.shape[:-1] + (self.num_glo_features,))
        else:
            glo_vec = None

        _, s_to_t = coord.construct_ray_warps(self.raydist_fn, rays.near, rays.far)

        # Every ray starts as the single normalised interval [init_s_near, 1] of weight 1. With
        # near_anneal_rate the near bound moves in from near_anneal_init during early training.
        if self.near_anneal_rate is None:
            init_s_near = 0.
        else:
            init_s_near = torch.clamp(
                1 - torch.as_tensor(train_frac) / self.near_anneal_rate, 0, self.near_anneal_init)
        init_s_far = 1.
        sdist = torch.cat(
            [torch.zeros_like(rays.near) + init_s_near, torch.full_like(rays.far, init_s_far)],
            dim=-1)
        weights = torch.ones_like(rays.near)
        prod_num_samples = 1

        autocast = device_utils.autocast(
            rays.origins.device, enabled=bool(getattr(self.config, 'use_bf16_autocast', False)),
            on_cpu=True)

        ray_history = []
        renderings = []
        for i_level in range(self.num_levels):
            is_prop = i_level < (self.num_levels - 1)
            num_samples = self.num_prop_samples if is_prop else self.num_nerf_samples

            # Config.compile_elementwise: the resampling as fused kernels (not at the first
            # level, whose single interval leaves nothing to fuse; fewer shapes to compile).
            max_dilate_weights, sample_intervals = (
                _compiled_resampling() if self.compile_elementwise and i_level > 0
                else (stepfun.max_dilate_weights, stepfun.sample_intervals))

            # The dilation: a multiple of the expected width of the current intervals, plus a bias.
            dilation = self.dilation_bias + self.dilation_multiplier * (
                init_s_far - init_s_near) / prod_num_samples
            prod_num_samples *= num_samples

            # Without stop_level_grad the samples stay differentiable in the earlier weights.
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.stop_level_grad):
                # Dilating the weights (a no-op at the first level) makes them overestimates,
                # which reduces aliasing.
                use_dilation = self.dilation_bias > 0 or self.dilation_multiplier > 0
                if i_level > 0 and use_dilation:
                    sdist, weights = max_dilate_weights(
                        sdist, weights, dilation, domain=(init_s_near, init_s_far),
                        renormalize=True)
                    sdist = sdist[..., 1:-1]
                    weights = weights[..., 1:-1]

                # Anneal the weights towards weights**1 with Schlick's bias curve of train_frac.
                if self.anneal_slope > 0:
                    s = self.anneal_slope
                    anneal = (s * train_frac) / ((s - 1) * train_frac + 1)
                else:
                    anneal = 1.

                # weights**anneal as logits; a zero-width interval gets weight 0 (logit -inf).
                logits_resample = torch.where(
                    sdist[..., 1:] > sdist[..., :-1],
                    anneal * torch.log(weights + self.resample_padding), -torch.inf)

                sdist = sample_intervals(
                    rng, sdist, logits_resample, num_samples, single_jitter=self.single_jitter,
                    domain=(init_s_near, init_s_far), use_gpu_resampling=self.use_gpu_resampling)

            tdist = s_to_t(sdist)
            gaussians = render.cast_rays(
                tdist, rays.origins, rays.directions, rays.radii, self.ray_shape, diag=False)
            if self.disable_integration:
                # Zero covariances turn the integrated encoding into the plain one.
                gaussians = (gaussians[0], torch.zeros_like(gaussians[1]))

            mlp = prop_mlp if is_prop else nerf_mlp
            # Only the MLPs run under bf16 autocast; their outputs come back in float32, so
            # compositing, sampling and the losses stay in full precision.
            with autocast:
                ray_results = mlp(
                    rng,
                    gaussians,
                    viewdirs=rays.viewdirs if self.use_viewdirs else None,
                    imageplane=rays.imageplane,
                    glo_vec=None if is_prop else glo_vec,
                    exposure=rays.exposure_values,
                )

            weights = render.compute_alpha_weights(
                ray_results['density'], tdist, rays.directions,
                opaque_background=self.opaque_background)[0]

            # The background colour: fixed, the middle of its range (deterministic), or random.
            bg_lo, bg_hi = self.bg_intensity_range
            if bg_lo == bg_hi:
                bg_rgbs = bg_lo
            elif rng is None:
                bg_rgbs = (bg_lo + bg_hi) / 2
            else:
                bg_rgbs = bg_lo + (bg_hi - bg_lo) * torch.rand(
                    weights.shape[:-1] + (3,), generator=rng, dtype=weights.dtype,
                    device=weights.device)

            # RawNeRF: scale the colours by the exposure, and by a learned factor per exposure.
            if rays.exposure_idx is not None:
                ray_results['rgb'] = ray_results['rgb'] * rays.exposure_values[..., None, :]
                if self.learned_exposure_scaling:
                    exposure_idx = rays.exposure_idx[..., 0]
                    # Exposure 0 keeps scale 1: it fixes the scene's brightness.
                    mask = (exposure_idx > 0)[..., None]
                    scaling = 1 + mask * self.exposure_scaling_offsets(exposure_idx)
                    ray_results['rgb'] = ray_results['rgb'] * scaling[..., None, :]

            rendering = render.volumetric_rendering(
                ray_results['rgb'],
                weights,
                tdist,
                bg_rgbs,
                rays.far,
                compute_extras,
                extras={
                    k: v for k, v in ray_results.items()
                    if k.startswith('normals') or k in ['roughness']
                })

            if compute_extras:
                # A few whole rays for visualisation (the `ray_` prefix marks bags of rays, not
                # image chunks).
                n = self.config.vis_num_rays
                rendering['ray_sdist'] = sdist.reshape([-1, sdist.shape[-1]])[:n, :]
                rendering['ray_weights'] = weights.reshape([-1, weights.shape[-1]])[:n, :]
                rgb = ray_results['rgb']
                rendering['ray_rgbs'] = rgb.reshape((-1,) + rgb.shape[-2:])[:n, :, :]

            renderings.append(rendering)
            ray_results['sdist'] = sdist
            ray_results['weights'] = weights
            ray_history.append(ray_results)

        if compute_extras:
            # The proposal MLPs output no colour: show the final level's mean ray colour instead.
            final_rgb = torch.sum(
                renderings[-1]['ray_rgbs'] * renderings[-1]['ray_weights'][..., None], dim=-2)
            for rendering in renderings[:-1]:
                rendering['ray_rgbs'] = final_rgb[:, None, :].expand(rendering['ray_rgbs'].shape)

        return renderings, ray_history

    def flax_names(self):
        """{torch parameter name: multinerf flax path}, e.g. 'NerfMLP_0.pts_layers.0.weight' ->
        'NerfMLP_0/Dense_0/kernel' (flax kernels are the transposed weights)."""
        names = {}
        for child_name, child in self.named_children():
            if isinstance(child, MLP):
                for k, v in child.flax_names().items():
                    names[f'{child_name}.{k}'] = f'{child_name}/{v}'
            else:
                names[f'{child_name}.weight'] = f'{child_name}/embedding'
        return names


def _flax_embed_init_(weight):
    """flax's default nn.Embed init in place: variance_scaling(1, 'fan_in', 'normal', out_axis=0), an
    untruncated normal of std 1/sqrt(features) for a [num_embeddings, features] table."""
    with torch.no_grad():
        nn.init.normal_(weight, std=weight.shape[-1] ** -0.5)


def load_flax_params(model, flax_params):
    """Copies a flattened multinerf checkpoint {'NerfMLP_0/Dense_0/kernel': array, ...} into model.

    The keys must be exactly model's flax paths and every shape must fit (else ValueError).
    """
    names = model.flax_names()
    unknown = sorted(set(flax_params) - set(names.values()))
    missing = sorted(set(names.values()) - set(flax_params))
    if unknown or missing:
        raise ValueError(
            f'flax parameters do not fit the model: unknown {unknown}, missing {missing}; check '
            'the Model/NerfMLP/PropMLP gin config')
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
                    f'{tuple(params[torch_name].shape)}; check the Model/NerfMLP/PropMLP gin config')
            params[torch_name].copy_(value)


def construct_model(rays, config):
    """A mip-NeRF 360 Model for `config`, its parameters initialised, on the device of `rays`.

    Args:
      rays: an example of input utils.Rays (only its device is used: torch builds every layer
        up front, where flax needed an example batch).
      config: the Config.

    Returns:
      model: the gin-configured Model.
    """
    return Model(config=config).to(rays.origins.device)


@functools.cache
def _compiled_resampling():
    """(stepfun.max_dilate_weights, stepfun.sample_intervals) under torch.compile, static shapes.

    Their [rays, bins, bins] comparison masks become fused reductions that are never stored; the
    results equal eager's within float32 round-off (tests/mipnerf360/test_compile.py).
    """
    return (torch.compile(stepfun.max_dilate_weights, dynamic=False),
            torch.compile(stepfun.sample_intervals, dynamic=False))


def encode_gaussians(means, covs, basis, warp_fn, min_deg, max_deg):
    """The MLP's input: Gaussians warped by warp_fn (if any), projected onto basis and IPE-encoded.

    Args:
      means: [..., 3] means; covs: [..., 3, 3] covariances.
      basis: [3, m] projection directions.
      warp_fn: a pointwise warp such as coord.contract, or None.
      min_deg, max_deg: ints, the frequency range of the integrated positional encoding.

    Returns:
      x: [..., 2 m (max_deg - min_deg)] features.
    """
    if warp_fn is not None:
        means, covs = coord.track_linearize(warp_fn, means, covs)
    lifted_means, lifted_vars = coord.lift_and_diagonalize(means, covs, basis)
    return coord.integrated_pos_enc(lifted_means, lifted_vars, min_deg, max_deg)


def _encode_lifted_stacked(means, covs, basis, min_deg, max_deg):
    """encode_gaussians without the warp, with the IPE as coord.integrated_pos_enc_stacked."""
    lifted_means, lifted_vars = coord.lift_and_diagonalize(means, covs, basis)
    return coord.integrated_pos_enc_stacked(lifted_means, lifted_vars, min_deg, max_deg)


@functools.cache
def _compiled_encode_flat():
    """_encode_lifted_stacked under torch.compile with static shapes: one graph per N."""
    # Static shapes: a dynamic N measured 1.7x slower (the CPU kernels vectorise worse), and a
    # run sees few N (two per training batch, two or four per render chunk size).
    return torch.compile(_encode_lifted_stacked, dynamic=False)


def encode_gaussians_compiled(means, covs, basis, warp_fn, min_deg, max_deg):
    """encode_gaussians as one fused torch.compile kernel (Config.compile_elementwise): same shapes.

    Its IPE is encode_gaussians' to 2 ulp; the projection's sums may round in another order
    (fused multiply-adds), which the top frequency 2^(max_deg-1) amplifies like any 1-ulp change
    of the means: compiled and eager are equally far from the float64 encoding
    (tests/mipnerf360/test_compile.py).
    """
    if warp_fn is not None:
        # Eager: the vmap(jvp) of track_linearize does not trace with a dynamic N, and its
        # tensors are a 28th of the encoding's.
        means, covs = coord.track_linearize(warp_fn, means, covs)
    lead = means.shape[:-1]
    # Flattened to [N, ...]: the graph depends only on the number of samples.
    x = _compiled_encode_flat()(
        means.reshape(-1, 3), covs.reshape(-1, 3, 3), basis, min_deg=min_deg, max_deg=max_deg)
    return x.reshape(lead + x.shape[-1:])


class MLP(nn.Module):
    """An MLP on the integrated positional encoding of Gaussians, with density and colour heads.

    The constructor arguments after `net_depth` ... `basis_subdivisions` are multinerf's fields
    with the same defaults; `use_viewdirs` and `num_glo_features` are set by the Model (flax
    infers the input sizes of the colour branch at the first call; torch needs them up front).
    """

    def __init__(
        self,
        net_depth: int = 8,
        net_width: int = 256,
        bottleneck_width: int = 256,
        net_depth_viewdirs: int = 1,
        net_width_viewdirs: int = 128,
        net_activation: Callable[..., Any] = nn.functional.relu,
        min_deg_point: int = 0,
        max_deg_point: int = 12,
        weight_init: str = 'he_uniform',
        skip_layer: int = 4,
        skip_layer_dir: int = 4,
        num_rgb_channels: int = 3,
        deg_view: int = 4,
        use_reflections: bool = False,
        use_directional_enc: bool = False,
        enable_pred_roughness: bool = False,
        roughness_activation: Callable[..., Any] = nn.functional.softplus,
        roughness_bias: float = -1.,
        use_diffuse_color: bool = False,
        use_specular_tint: bool = False,
        use_n_dot_v: bool = False,
        bottleneck_noise: float = 0.0,
        density_activation: Callable[..., Any] = nn.functional.softplus,
        density_bias: float = -1.,
        density_noise: float = 0.,
        rgb_premultiplier: float = 1.,
        rgb_activation: Callable[..., Any] = torch.sigmoid,
        rgb_bias: float = 0.,
        rgb_padding: float = 0.001,
        enable_pred_normals: bool = False,
        disable_density_normals: bool = False,
        disable_rgb: bool = False,
        warp_fn: Optional[Callable[..., Any]] = None,
        basis_shape: str = 'icosahedron',
        basis_subdivisions: int = 2,
        *,
        use_viewdirs: bool = True,
        num_glo_features: int = 0,
    ):
        super().__init__()
        if use_reflections and not (enable_pred_normals or not disable_density_normals):
            raise ValueError('Normals must be computed for reflection directions.')
        if use_diffuse_color and not use_viewdirs and not disable_rgb:
            raise ValueError('use_diffuse_color needs view directions.')
        self.net_activation = net_activation
        self.bottleneck_width = bottleneck_width
        self.min_deg_point = min_deg_point
        self.max_deg_point = max_deg_point
        self.skip_layer = skip_layer
        self.skip_layer_dir = skip_layer_dir
        self.use_reflections = use_reflections
        self.use_directional_enc = use_directional_enc
        self.enable_pred_roughness = enable_pred_roughness
        self.roughness_activation = roughness_activation
        self.roughness_bias = roughness_bias
        self.use_diffuse_color = use_diffuse_color
        self.use_specular_tint = use_specular_tint
        self.use_n_dot_v = use_n_dot_v
        self.bottleneck_noise = bottleneck_noise
        self.density_activation = density_activation
        self.density_bias = density_bias
        self.density_noise = density_noise
        self.rgb_premultiplier = rgb_premultiplier
        self.rgb_activation = rgb_activation
        self.rgb_bias = rgb_bias
        self.rgb_padding = rgb_padding
        self.enable_pred_normals = enable_pred_normals
        self.disable_density_normals = disable_density_normals
        self.disable_rgb = disable_rgb
        self.warp_fn = warp_fn
        self.use_viewdirs = use_viewdirs
        # Set by the Model from Config.compile_elementwise: encode_gaussians_compiled for the input.
        self.compile_elementwise = False

        # The transposed projection basis [3, m] of the IPE (a constant, not a parameter). The
        # float64 original is kept for float64 inputs (see predict_density).
        basis = np.ascontiguousarray(geopoly.generate_basis(basis_shape, basis_subdivisions).T)
        self._pos_basis_t64 = basis
        self.register_buffer(
            'pos_basis_t', torch.tensor(basis, dtype=torch.float32), persistent=False)

        if use_directional_enc:
            self.dir_enc_fn = ref_utils.generate_ide_fn(deg_view)
        else:
            self.dir_enc_fn = functools.partial(_pos_enc_viewdirs, deg_view=deg_view)

        # The layers, registered in the order flax creates them (Dense_0, Dense_1, ...).
        dense_layer = functools.partial(_dense, init=getattr(configs, weight_init))
        pos_dim = 2 * basis.shape[-1] * (max_deg_point - min_deg_point)
        width = pos_dim
        self.pts_layers = nn.ModuleList()
        for i in range(net_depth):
            self.pts_layers.append(dense_layer(width, net_width))
            width = net_width + (pos_dim if i % skip_layer == 0 and i > 0 else 0)
        self.density_layer = dense_layer(width, 1)
        if enable_pred_normals:
            self.normals_pred_layer = dense_layer(width, 3)
        if disable_rgb:
            return
        if use_viewdirs:
            if use_diffuse_color:
                self.diffuse_layer = dense_layer(width, num_rgb_channels)
            if use_specular_tint:
                self.tint_layer = dense_layer(width, 3)
            if enable_pred_roughness:
                self.roughness_layer = dense_layer(width, 1)
            if bottleneck_width > 0:
                self.bottleneck_layer = dense_layer(width, bottleneck_width)
            dir_dim = self.dir_enc_fn(torch.zeros(1, 3), torch.zeros(1, 1)).shape[-1]
            inputs_dim = bottleneck_width + dir_dim + int(use_n_dot_v) + num_glo_features
            width = inputs_dim
            self.viewdir_layers = nn.ModuleList()
            for i in range(net_depth_viewdirs):
                self.viewdir_layers.append(dense_layer(width, net_width_viewdirs))
                width = net_width_viewdirs + (
                    inputs_dim if i % skip_layer_dir == 0 and i > 0 else 0)
        self.rgb_layer = dense_layer(width, num_rgb_channels)

    def flax_names(self):
        """{torch parameter name: flax path}: the i-th Linear is `Dense_i` (weight = kernel^T)."""
        names = {}
        linears = [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Linear)]
        for i, (name, _) in enumerate(linears):
            names[f'{name}.weight'] = f'Dense_{i}/kernel'
            names[f'{name}.bias'] = f'Dense_{i}/bias'
        return names

    def predict_density(self, rng, means, covs):
        """Raw density [..., n] and features [..., n, c] of Gaussians means [..., n, 3], covs [..., n, 3, 3]."""
        basis = self.pos_basis_t
        if means.dtype == torch.float64:
            # A float64 model (model.double(), for conditioning checks) projects with the exact
            # basis, as multinerf does under jax_enable_x64, not with the float32-rounded buffer.
            basis = torch.as_tensor(self._pos_basis_t64, device=means.device)
        # The compiled encoding fuses the elementwise chains; torch.compile cannot take the
        # double backward of the density normals, so they keep the eager one.
        encode = (encode_gaussians_compiled if self.compile_elementwise and self.disable_density_normals
                  else encode_gaussians)
        x = encode(means, covs, basis, self.warp_fn, self.min_deg_point, self.max_deg_point)

        inputs = x
        for i, layer in enumerate(self.pts_layers):
            x = self.net_activation(layer(x))
            if i % self.skip_layer == 0 and i > 0:
                x = torch.cat([x, inputs], dim=-1)
        raw_density = self.density_layer(x)[..., 0].to(means.dtype)
        # Density noise regularises training; it is never added on the deterministic path.
        if rng is not None and self.density_noise > 0:
            # multinerf draws it inside the per-sample vmap when it computes density normals,
            # with one key for all samples: there every sample gets the same noise value.
            noise_shape = raw_density.shape if self.disable_density_normals else ()
            raw_density = raw_density + self.density_noise * torch.randn(
                noise_shape, generator=rng, dtype=raw_density.dtype, device=raw_density.device)
        return raw_density, x

    def forward(self, rng, gaussians, viewdirs=None, imageplane=None, glo_vec=None, exposure=None):
        """Evaluates the MLP on Gaussians.

        Args:
          rng: torch.Generator or None (no noise).
          gaussians: (means [..., n, 3], covs [..., n, 3, 3]).
          viewdirs: [..., 3] view directions, or None (no view-dependent branch).
          imageplane: [..., 2] image-plane coordinates (unused, as in multinerf).
          glo_vec: [..., num_glo_features] GLO codes, or None.
          exposure: [..., 1] exposures (unused, as in multinerf).

        Returns:
          {'density': [..., n], 'rgb': [..., n, 3], 'raw_grad_density': [..., n, 3] or None,
          'grad_pred', 'normals', 'normals_pred': [..., n, 3] or None, 'roughness': [..., n, 1]
          or None}, all float32.
        """
        means, covs = gaussians
        dtype = means.dtype  # Head outputs leave a bf16 autocast region in this precision.
        if self.disable_density_normals:
            raw_density, x = self.predict_density(rng, means, covs)
            raw_grad_density = None
            normals = None
        else:
            # Each raw density depends only on its own mean, so the gradient of their sum is the
            # per-sample gradient. It is needed even when rendering without autograd.
            create_graph = torch.is_grad_enabled()
            with torch.enable_grad():
                if not means.requires_grad:
                    means = means.detach().requires_grad_()
                raw_density, x = self.predict_density(rng, means, covs)
                (raw_grad_density,) = torch.autograd.grad(
                    raw_density.sum(), means, create_graph=create_graph)
            if not create_graph:
                raw_density, x = raw_density.detach(), x.detach()
            # Normals are the negated, normalised gradient of the raw density (the same
            # direction as that of the density, but better conditioned).
            normals = -ref_utils.l2_normalize(raw_grad_density)

        if self.enable_pred_normals:
            grad_pred = self.normals_pred_layer(x).to(dtype)
            normals_pred = -ref_utils.l2_normalize(grad_pred)
            normals_to_use = normals_pred
        else:
            grad_pred = None
            normals_pred = None
            normals_to_use = normals

        density = self.density_activation(raw_density + self.density_bias)

        roughness = None
        if self.disable_rgb:
            rgb = torch.zeros_like(means)
        else:
            if viewdirs is not None:
                if self.use_diffuse_color:
                    raw_rgb_diffuse = self.diffuse_layer(x).to(dtype)
                if self.use_specular_tint:
                    tint = torch.sigmoid(self.tint_layer(x).to(dtype))
                if self.enable_pred_roughness:
                    roughness = self.roughness_activation(
                        self.roughness_layer(x).to(dtype) + self.roughness_bias)

                sample_shape = means.shape[:-1]
                x_parts = []
                if self.bottleneck_width > 0:
                    bottleneck = self.bottleneck_layer(x)
                    if rng is not None and self.bottleneck_noise > 0:
                        bottleneck = bottleneck + self.bottleneck_noise * torch.randn(
                            bottleneck.shape, generator=rng, dtype=bottleneck.dtype,
                            device=bottleneck.device)
                    x_parts.append(bottleneck)

                if self.use_reflections:
                    # viewdirs point from the camera to the point; reflect() wants the opposite.
                    # The reflected directions point from the point to the environment.
                    refdirs = ref_utils.reflect(-viewdirs[..., None, :], normals_to_use)
                    dir_enc = self.dir_enc_fn(refdirs, _zero_if_none(roughness, refdirs))
                elif roughness is None:
                    dir_enc = self.dir_enc_fn(viewdirs, _zero_if_none(None, viewdirs))
                    dir_enc = dir_enc[..., None, :].expand(sample_shape + dir_enc.shape[-1:])
                else:
                    # A roughness per sample: encode the view direction once per sample.
                    dirs = viewdirs[..., None, :].expand(sample_shape + (3,))
                    dir_enc = self.dir_enc_fn(dirs, roughness)
                x_parts.append(dir_enc)

                if self.use_n_dot_v:
                    x_parts.append(
                        torch.sum(normals_to_use * viewdirs[..., None, :], dim=-1, keepdim=True))

                if glo_vec is not None:
                    x_parts.append(
                        glo_vec[..., None, :].expand(sample_shape + glo_vec.shape[-1:]))

                x = torch.cat(x_parts, dim=-1)
                inputs = x
                for i, layer in enumerate(self.viewdir_layers):
                    x = self.net_activation(layer(x))
                    if i % self.skip_layer_dir == 0 and i > 0:
                        x = torch.cat([x, inputs], dim=-1)

            # With diffuse colours, `rgb` is the linear specular colour, else the colour itself.
            rgb = self.rgb_activation(
                self.rgb_premultiplier * self.rgb_layer(x).to(dtype) + self.rgb_bias)

            if self.use_diffuse_color:
                # The linear diffuse colour starts near 0.25, so the sum starts near 0.5.
                diffuse_linear = torch.sigmoid(raw_rgb_diffuse - np.log(3.0))
                specular_linear = tint * rgb if self.use_specular_tint else 0.5 * rgb
                rgb = torch.clamp(image.linear_to_srgb(specular_linear + diffuse_linear), 0.0, 1.0)

            # Pad the range to [-rgb_padding, 1 + rgb_padding].
            rgb = rgb * (1 + 2 * self.rgb_padding) - self.rgb_padding

        return dict(
            density=density,
            rgb=rgb,
            raw_grad_density=raw_grad_density,
            grad_pred=grad_pred,
            normals=normals,
            normals_pred=normals_pred,
            roughness=roughness,
        )


def _pos_enc_viewdirs(direction, _, deg_view):
    """NeRF's positional encoding of directions [..., 3] (the roughness argument is ignored)."""
    return coord.pos_enc(direction, min_deg=0, max_deg=deg_view, append_identity=True)


def _zero_if_none(roughness, like):
    """roughness, or zeros [..., 1] shaped like `like` [..., 3] when it is None."""
    # multinerf passes None here, which its IDE cannot take; zero roughness is what it intends.
    return torch.zeros_like(like[..., :1]) if roughness is None else roughness


def _dense(in_features, out_features, init):
    """flax's nn.Dense as a torch Linear: kernel from `init`, zero bias."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        init(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


@gin.configurable
class NerfMLP(MLP):
    """The MLP of the final (NeRF) level; gin configures it apart from PropMLP."""


@gin.configurable
class PropMLP(MLP):
    """The MLP of the proposal levels; gin configures it apart from NerfMLP."""


def render_image(render_fn, rays, rng, config, verbose=True):
    """Renders every pixel of an image in chunks of config.render_chunk_size rays.

    Args:
      render_fn: (rng, rays) -> (renderings, ray_history), e.g. the model in eval mode.
      rays: utils.Rays [height, width].
      rng: torch.Generator or None, passed to render_fn.
      config: the Config.
      verbose: print progress.

    Returns:
      {name: [height, width, ...]} from the final level; the `ray_*` entries are instead lists
      (one per level) of config.vis_num_rays rays picked at random (with a fixed seed).
    """
    height, width = rays.origins.shape[:2]
    num_rays = height * width
    rays = rays.map(lambda r: r.reshape((num_rays, -1)))

    chunks = []
    idx0s = range(0, num_rays, config.render_chunk_size)
    for i_chunk, idx0 in enumerate(idx0s):
        if verbose and i_chunk % max(1, len(idx0s) // 10) == 0:
            print(f'Rendering chunk {i_chunk}/{len(idx0s)-1}')
        chunk_rays = rays.map(lambda r: r[idx0:idx0 + config.render_chunk_size])
        chunk_renderings, _ = render_fn(rng, chunk_rays)

        # The final level's 2D buffers, and the ray bundles of every level.
        chunk_rendering = dict(chunk_renderings[-1])
        for k in chunk_renderings[0]:
            if k.startswith('ray_'):
                chunk_rendering[k] = [r[k] for r in chunk_renderings]
        chunks.append(chunk_rendering)

    rendering = {}
    for k, z in chunks[0].items():
        if k.startswith('ray_'):
            rendering[k] = [torch.cat([c[k][i] for c in chunks]) for i in range(len(z))]
        else:
            z = torch.cat([c[k] for c in chunks])
            rendering[k] = z.reshape((height, width) + z.shape[1:])

    # Keep vis_num_rays of the concatenated ray bundles, picked at random but reproducibly.
    keys = [k for k in rendering if k.startswith('ray_')]
    if keys:
        num_bundle_rays = rendering[keys[0]][0].shape[0]
        perm = torch.randperm(num_bundle_rays, generator=torch.Generator().manual_seed(0))
        ray_idx = perm[:config.vis_num_rays]
        for k in keys:
            rendering[k] = [r[ray_idx.to(r.device)] for r in rendering[k]]
    return rendering
