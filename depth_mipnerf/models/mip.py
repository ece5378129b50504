# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's Mip-NeRF ray geometry: encodings, frustum Gaussians, sampling (with depth-guided
supersampling), volume rendering without acc normalisation, and the batch-mean distortion loss."""

import torch

_EPS16 = torch.finfo(torch.float16).eps
_EPS32 = torch.finfo(torch.float32).eps


def distloss(weight, samples):
    """Mip-NeRF 360 distortion loss (its eq. 15), averaged over rays: weight [B, N], samples [B, N+1] -> []."""
    interval = samples[:, 1:] - samples[:, :-1]
    mid_points = 0.5 * (samples[:, 1:] + samples[:, :-1])
    loss_uni = (1 / 3) * (interval * weight**2).sum(-1).mean()
    ww = weight[..., :, None] * weight[..., None, :]
    mm = (mid_points[..., :, None] - mid_points[..., None, :]).abs()
    loss_bi = (ww * mm).sum((-1, -2)).mean()
    return loss_uni + loss_bi


def _scales(min_deg, max_deg, like):
    """2^min_deg, ..., 2^(max_deg - 1) in the dtype and on the device of `like`: [L]."""
    return 2.0 ** torch.arange(min_deg, max_deg, dtype=like.dtype, device=like.device)


def pos_enc(x, min_deg, max_deg, append_identity=True):
    """NeRF positional encoding, scale-major, sines then cosines: x [..., d] -> [..., (d +) 2dL]."""
    xb = (x[..., None, :] * _scales(min_deg, max_deg, x)[:, None]).flatten(-2)
    four_feat = torch.sin(torch.cat([xb, xb + 0.5 * torch.pi], dim=-1))
    if append_identity:
        return torch.cat([x, four_feat], dim=-1)
    return four_feat


def expected_sin(x, x_var):
    """Mean of sin(z), z ~ N(x, x_var) (mip-NeRF eq. 15; the fork keeps only the mean): [...]."""
    return torch.exp(-0.5 * x_var) * torch.sin(x)


def integrated_pos_enc(means_covs, min_deg, max_deg, diagonal=True):
    """Integrated positional encoding (mip-NeRF eq. 14): (mean, diag cov) [..., 3] -> [..., 6L]."""
    if not diagonal:
        raise ValueError('the fork encodes diagonal covariances only (diagonal=True)')
    mean, var = means_covs
    scales = _scales(min_deg, max_deg, mean)[:, None]
    y = (mean[..., None, :] * scales).flatten(-2)
    y_var = (var[..., None, :] * scales**2).flatten(-2)
    return expected_sin(torch.cat([y, y + 0.5 * torch.pi], dim=-1), torch.cat([y_var, y_var], dim=-1))


def lift_gaussian(directions, t_mean, t_var, r_var, diagonal=True):
    """3D Gaussian of a 1D one along `directions` (mip-NeRF eq. 8): d [B, 3], t_* [B, N] -> [B, N, 3]."""
    if not diagonal:
        raise ValueError('the fork lifts diagonal covariances only (diagonal=True)')
    mean = directions[..., None, :] * t_mean[..., None]
    # + 1e-10 as the fork: a zero direction would divide 0 by 0.
    d_norm_denominator = torch.sum(directions**2, dim=-1, keepdim=True) + 1e-10
    d_outer_diag = directions**2
    null_outer_diag = 1 - d_outer_diag / d_norm_denominator
    cov_diag = t_var[..., None] * d_outer_diag[..., None, :] + r_var[..., None] * null_outer_diag[..., None, :]
    return mean, cov_diag


def compute_parameters(t0, t1, base_radius):
    """Stable conical-frustum moments (mip-NeRF eq. 7): t0, t1 [B, N], radius [B, 1] -> 3 x [B, N]."""
    mu = (t0 + t1) / 2
    hw = (t1 - t0) / 2
    # Clamp at float16 eps as the fork (it trained in fp16): keeps a zero-length frustum at t=0 finite.
    denom = torch.clamp_min(3 * mu**2 + hw**2, _EPS16)
    t_mean = mu + (2 * mu * hw**2) / denom
    t_var = (hw**2) / 3 - (4 / 15) * ((hw**4 * (12 * mu**2 - hw**2)) / denom**2)
    r_var = base_radius**2 * ((mu**2) / 4 + (5 / 12) * hw**2 - 4 / 15 * (hw**4) / denom)
    return t_mean, t_var, r_var


def conical_frustum_to_gaussian(directions, t0, t1, base_radius, diagonal=True):
    """Gaussian (mean, diag cov) [B, N, 3] of the cone frusta [t0, t1] with radius base_radius at t=1."""
    t_mean, t_var, r_var = compute_parameters(t0, t1, base_radius)
    return lift_gaussian(directions, t_mean, t_var, r_var, diagonal)


def cylinder_to_gaussian(directions, t0, t1, radius, diagonal=True):
    """Gaussian (mean, diag cov) [B, N, 3] of the cylinder segments [t0, t1] of the given radius."""
    return lift_gaussian(directions, (t0 + t1) / 2, (t1 - t0) ** 2 / 12, radius**2 / 4, diagonal)


def cast_rays(t_samples, origins, directions, radii, ray_shape, diagonal=True):
    """Gaussians of the segments between fenceposts t_samples [B, N+1]: -> means, covs [B, N, 3]."""
    shapes = {'cone': conical_frustum_to_gaussian, 'cylinder': cylinder_to_gaussian}
    if ray_shape not in shapes:
        raise ValueError(f"ray_shape must be 'cone' or 'cylinder', got {ray_shape!r}")
    means, covs = shapes[ray_shape](directions, t_samples[..., :-1], t_samples[..., 1:], radii, diagonal)
    return means + origins[..., None, :], covs


def depth_guided_supersampling(rays, n_samples, start_sigma):
    """n_samples t's per ray drawn from N(depth, start_sigma), uniform in [near, far] where depth == 0: [B, n]."""
    depth, near, far = rays.depth, rays.near, rays.far
    gauss = torch.randn(depth.shape[0], n_samples, dtype=depth.dtype, device=depth.device)
    around_depth = gauss * start_sigma + depth.detach()
    uniform = near + (far - near) * torch.rand_like(gauss)
    return torch.where(depth == 0, uniform, around_depth)


def sample_along_rays(origins, directions, radii, num_samples, near, far, randomized, disparity,
                      ray_shape, rays=None, sigma_depth=None):
    """Stratified fenceposts in [near, far] (3/4 of them plus 1/4 around the depth when sigma_depth).

    Returns:
      t_samples [B, num_samples + 1] (sorted), (means, covs) [B, num_samples, 3].
    """
    num_t_samples = num_samples // 4 * 3 + 1 if sigma_depth is not None else num_samples + 1
    batch_size = origins.shape[0]
    t_samples = torch.linspace(0., 1., num_t_samples, dtype=origins.dtype, device=origins.device)
    if disparity:
        t_samples = 1. / (1. / near * (1. - t_samples) + 1. / far * t_samples)
    else:
        t_samples = near + (far - near) * t_samples
    if randomized:
        mids = 0.5 * (t_samples[..., 1:] + t_samples[..., :-1])
        upper = torch.cat([mids, t_samples[..., -1:]], -1)
        lower = torch.cat([t_samples[..., :1], mids], -1)
        t_samples = lower + (upper - lower) * torch.rand_like(upper.expand(batch_size, -1))
    else:
        t_samples = t_samples.expand(batch_size, -1)
    if sigma_depth is not None:
        extra = depth_guided_supersampling(rays, num_samples // 4, sigma_depth)
        t_samples = torch.sort(torch.cat([t_samples, extra], -1), -1).values
    return t_samples, cast_rays(t_samples, origins, directions, radii, ray_shape)


def sorted_piecewise_constant_pdf(bins, weights, num_samples, randomized):
    """Inverse-CDF samples of the piecewise-constant PDF weights [B, n] on bins [B, n+1]: -> [B, num_samples]."""
    # Pad rows summing below eps up to eps: an all-zero row would divide 0 by 0.
    eps = 1e-5
    weight_sum = torch.sum(weights, dim=-1, keepdim=True)
    padding = torch.clamp_min(eps - weight_sum, 0)
    weights = weights + padding / weights.shape[-1]
    weight_sum = weight_sum + padding
    cdf = torch.clamp_max(torch.cumsum(weights[..., :-1] / weight_sum, dim=-1), 1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf, torch.ones_like(cdf[..., :1])], dim=-1)
    shape = cdf.shape[:-1] + (num_samples,)
    if randomized:
        s = 1 / num_samples
        u = torch.arange(num_samples, dtype=cdf.dtype, device=cdf.device) * s
        u = u + torch.rand(shape, dtype=cdf.dtype, device=cdf.device) * (s - _EPS32)
        # u stays below 1 so that it always falls inside the last interval.
        u = torch.clamp_max(u, 1. - _EPS32)
    else:
        u = torch.linspace(0., 1. - _EPS32, num_samples, dtype=cdf.dtype, device=cdf.device).expand(shape)
    inds = torch.searchsorted(cdf, u.contiguous(), right=True)
    below = torch.clamp_min(inds - 1, 0)
    above = torch.clamp_max(inds, cdf.shape[-1] - 1)
    cdf0, cdf1 = torch.gather(cdf, -1, below), torch.gather(cdf, -1, above)
    bins0, bins1 = torch.gather(bins, -1, below), torch.gather(bins, -1, above)
    # A zero-width CDF interval (< 1e-5) divides by 1 instead, as the fork.
    denom = cdf1 - cdf0
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bins0 + (u - cdf0) / denom * (bins1 - bins0)


def resample_along_rays(origins, directions, radii, t_samples, weights, randomized, ray_shape,
                        stop_grad, resample_padding, num_samples, fix_resample_count=False):
    """Fenceposts [B, num_samples + 1] drawn from blurpooled weights [B, N], and their Gaussians.

    Without stop_grad the fork draws as many fenceposts as t_samples has ([B, N + 1], num_samples
    ignored); fix_resample_count draws num_samples + 1 there too.
    """
    weights_pad = torch.cat([weights[..., :1], weights, weights[..., -1:]], dim=-1)
    weights_max = torch.maximum(weights_pad[..., :-1], weights_pad[..., 1:])
    weights_blur = 0.5 * (weights_max[..., :-1] + weights_max[..., 1:])
    count = num_samples + 1 if stop_grad or fix_resample_count else t_samples.shape[-1]
    new_t = sorted_piecewise_constant_pdf(t_samples, weights_blur + resample_padding, count, randomized)
    if stop_grad:
        new_t = new_t.detach()
    return new_t, cast_rays(new_t, origins, directions, radii, ray_shape)


def compute_weights(density, t_samples, dirs):
    """Compositing weights (NeRF eq. 3): density [B, N, 1], t [B, N+1], dirs [B, 3] -> w, t_mids, delta [B, N]."""
    t_mids = 0.5 * (t_samples[..., :-1] + t_samples[..., 1:])
    delta = (t_samples[..., 1:] - t_samples[..., :-1]) * torch.linalg.norm(dirs[..., None, :], dim=-1)
    density_delta = density[..., 0] * delta
    alpha = 1 - torch.exp(-density_delta)
    trans = torch.exp(-torch.cat([torch.zeros_like(density_delta[..., :1]),
                                  torch.cumsum(density_delta[..., :-1], dim=-1)], dim=-1))
    return alpha * trans, t_mids, delta


def volumetric_rendering(rgb, density, t_samples, dirs, white_bkgd, depth=None):
    """Alpha compositing; distance = sum(w * t_mid), NOT divided by acc (the fork's): -> rgb [B, 3], distance, acc [B], w [B, N].

    `depth` is accepted for the fork's signature and unused.
    """
    weights, t_mids, _ = compute_weights(density, t_samples, dirs)
    comp_rgb = (weights[..., None] * rgb).sum(dim=-2)
    acc = weights.sum(dim=-1)
    distance = (weights * t_mids).sum(dim=-1)
    if white_bkgd:
        comp_rgb = comp_rgb + (1. - acc[..., None])
    return comp_rgb, distance, acc, weights
