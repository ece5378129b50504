# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Mip-NeRF's ray geometry: positional encodings, frustum Gaussians, ray sampling, volume rendering."""

import torch

from common.gaussians import cylinder_to_gaussian, lift_gaussian
from mipnerf.internal import math


def _scales(min_deg, max_deg, like):
    """2^min_deg, ..., 2^(max_deg - 1) in the dtype and on the device of `like`: [L]."""
    return 2.0 ** torch.arange(min_deg, max_deg, dtype=like.dtype, device=like.device)


def pos_enc(x, min_deg, max_deg, append_identity=True):
    """NeRF's positional encoding [x, sin(2^l x), cos(2^l x)]: x [..., d] -> [..., (d +) 2 d L].

    The features are laid out scale-major (all d coordinates of one scale together), sines
    first; the cosines are computed as sin(y + pi/2), and x itself leads when append_identity.
    """
    xb = (x[..., None, :] * _scales(min_deg, max_deg, x)[:, None]).flatten(-2)
    four_feat = torch.sin(torch.cat([xb, xb + 0.5 * torch.pi], dim=-1))
    if append_identity:
        return torch.cat([x, four_feat], dim=-1)
    return four_feat


def expected_sin_mean(x, x_var):
    """Mean of sin(z), z ~ N(x, x_var): expected_sin's first output alone, [...] -> [...]."""
    # A wide Gaussian averages sin out: the mean shrinks by exp(-var / 2).
    return torch.exp(-0.5 * x_var) * math.safe_sin(x)


def expected_sin(x, x_var):
    """Mean and variance of sin(z), z ~ N(x, x_var) (mip-NeRF eq. 15): [...] -> ([...], [...])."""
    y = expected_sin_mean(x, x_var)
    # Clamp at 0: the difference of two nearly equal terms can round below zero.
    y_var = torch.clamp_min(0.5 * (1 - torch.exp(-2 * x_var) * math.safe_cos(2 * x)) - y**2, 0)
    return y, y_var


def conical_frustum_to_gaussian(d, t0, t1, base_radius, diag, stable=True):
    """Gaussian of the conical frustum t in [t0, t1] of a cone from the origin (mip-NeRF eq. 7).

    Args:
      d: [..., 3] cone axis, not necessarily unit length.
      t0, t1: [..., n] start and end distances of the frustum.
      base_radius: [..., 1] or [..., n] cone radius at distance 1.
      diag: return only the covariance's diagonal.
      stable: the paper's reparametrisation by mid-point and half-width; False evaluates the raw
        moments (differences of t^3, t^4, t^5), which cancel catastrophically in float32.

    Returns:
      mean [..., n, 3] and cov [..., n, 3] (diag) or [..., n, 3, 3].
    """
    if stable:
        mu = (t0 + t1) / 2
        hw = (t1 - t0) / 2
        t_mean = mu + (2 * mu * hw**2) / (3 * mu**2 + hw**2)
        t_var = (hw**2) / 3 - (4 / 15) * ((hw**4 * (12 * mu**2 - hw**2)) / (3 * mu**2 + hw**2) ** 2)
        r_var = base_radius**2 * (
            (mu**2) / 4 + (5 / 12) * hw**2 - 4 / 15 * (hw**4) / (3 * mu**2 + hw**2)
        )
    else:
        t_mean = (3 * (t1**4 - t0**4)) / (4 * (t1**3 - t0**3))
        r_var = base_radius**2 * (3 / 20 * (t1**5 - t0**5) / (t1**3 - t0**3))
        t_mosq = 3 / 5 * (t1**5 - t0**5) / (t1**3 - t0**3)
        t_var = t_mosq - t_mean**2
    return lift_gaussian(d, t_mean, t_var, r_var, diag)


def cast_rays(t_vals, origins, directions, radii, ray_shape, diag=True):
    """Gaussians of the ray segments between consecutive t_vals, offset by the ray origins.

    Args:
      t_vals: [..., n + 1] segment endpoints ("fenceposts") along each ray.
      origins, directions: [..., 3].
      radii: [..., 1] ray radii (the base radius at distance 1 for cones).
      ray_shape: 'cone' (conical frusta) or 'cylinder'.
      diag: return only the covariances' diagonals.

    Returns:
      means [..., n, 3] and covs [..., n, 3] (diag) or [..., n, 3, 3].
    """
    t0 = t_vals[..., :-1]
    t1 = t_vals[..., 1:]
    if ray_shape == "cone":
        gaussian_fn = conical_frustum_to_gaussian
    elif ray_shape == "cylinder":
        gaussian_fn = cylinder_to_gaussian
    else:
        raise ValueError(f"ray_shape must be 'cone' or 'cylinder', got {ray_shape!r}")
    means, covs = gaussian_fn(directions, t0, t1, radii, diag)
    return means + origins[..., None, :], covs


def integrated_pos_enc(x_coord, min_deg, max_deg, diag=True):
    """Integrated positional encoding (mip-NeRF eq. 14) of Gaussians at scales 2^min..2^(max-1).

    Args:
      x_coord: (mean [..., d], cov [..., d] (diag) or [..., d, d]).
      min_deg, max_deg: the scales are 2^l for l in [min_deg, max_deg).
      diag: whether x_coord holds diagonal covariances.

    Returns:
      [..., 2 d L]: the expected sines, then the expected cosines (sin(y + pi/2)), each scale-major;
      no identity term.
    """
    x, x_cov = x_coord
    scales = _scales(min_deg, max_deg, x)
    if diag:
        y = (x[..., None, :] * scales[:, None]).flatten(-2)
        y_var = (x_cov[..., None, :] * scales[:, None] ** 2).flatten(-2)
    else:
        num_dims = x.shape[-1]
        eye = torch.eye(num_dims, dtype=x.dtype, device=x.device)
        # basis [d, d L]: the columns are 2^l e_i, scale-major.
        basis = (scales[:, None, None] * eye).permute(1, 0, 2).reshape(num_dims, -1)
        y = math.matmul(x, basis)
        # diag(basis^T cov basis) without forming the [d L, d L] matrix.
        y_var = torch.sum(math.matmul(x_cov, basis) * basis, dim=-2)
    # expected_sin(...)[0] without the variance, which nothing reads (XLA drops it from the original's
    # graph; eager PyTorch would compute it: an exp, a cos and four products per feature).
    return expected_sin_mean(torch.cat([y, y + 0.5 * torch.pi], dim=-1), torch.cat([y_var, y_var], dim=-1))


def volumetric_rendering(rgb, density, t_vals, dirs, white_bkgd):
    """Alpha compositing of samples along rays (NeRF eq. 3).

    Args:
      rgb: [..., n, 3] colours.
      density: [..., n, 1] volume densities.
      t_vals: [..., n + 1] segment endpoints.
      dirs: [..., 3] ray directions; segment lengths are scaled by |dirs|.
      white_bkgd: composite onto white (add 1 - acc to every channel).

    Returns:
      comp_rgb [..., 3]; distance [...], the weights' mean of segment mid-points, clipped to
      [t_vals[..., 0], t_vals[..., -1]]; acc [...], the opacity; weights [..., n].
      A ray of zero opacity (acc == 0) gets distance t_vals[..., 0], the near bound, as in the
      original: its NaN distance becomes 0 (its nan_to_num's `jnp.inf` is the `copy` argument,
      not a replacement value) and the clip then moves it to the near bound.
    """
    t_mids = 0.5 * (t_vals[..., :-1] + t_vals[..., 1:])
    t_dists = t_vals[..., 1:] - t_vals[..., :-1]
    delta = t_dists * torch.linalg.norm(dirs[..., None, :], dim=-1)
    density_delta = density[..., 0] * delta

    alpha = 1 - torch.exp(-density_delta)
    # Exclusive cumulative sum: the transmittance in front of the first sample is 1.
    trans = torch.exp(
        -torch.cat(
            [torch.zeros_like(density_delta[..., :1]), torch.cumsum(density_delta[..., :-1], -1)],
            dim=-1,
        )
    )
    weights = alpha * trans

    comp_rgb = (weights[..., None] * rgb).sum(dim=-2)
    acc = weights.sum(dim=-1)
    # acc == 0 only when every weight is 0: dividing by 1 there gives the original's 0 (see the
    # docstring) and keeps the gradient free of 0/0.
    distance = (weights * t_mids).sum(dim=-1) / torch.where(acc > 0, acc, 1)
    distance = torch.clamp(distance, t_vals[..., 0], t_vals[..., -1])
    if white_bkgd:
        comp_rgb = comp_rgb + (1.0 - acc[..., None])
    return comp_rgb, distance, acc, weights


def sample_along_rays(
    key, origins, directions, radii, num_samples, near, far, randomized, lindisp, ray_shape
):
    """Stratified samples along rays, evenly spaced in depth or in disparity, and their Gaussians.

    Args:
      key: torch.Generator for the jitter, or None for torch's default generator; unused when
        randomized is False.
      origins, directions: [B, 3] rays.
      radii: [B, 1] ray radii.
      num_samples: int, the number of segments (num_samples + 1 endpoints).
      near, far: [B, 1] (or floats) clip distances.
      randomized: jitter each endpoint uniformly within its stratum (between the mid-points of its
        neighbours); else the evenly spaced endpoints themselves.
      lindisp: space the endpoints evenly in disparity 1/t rather than in depth t.
      ray_shape: 'cone' or 'cylinder'.

    Returns:
      t_vals [B, num_samples + 1] and (means [B, num_samples, 3], covs [B, num_samples, 3]).
    """
    batch_shape = origins.shape[:-1]
    factory = {"dtype": origins.dtype, "device": origins.device}
    t_vals = torch.linspace(0.0, 1.0, num_samples + 1, **factory)
    if lindisp:
        t_vals = 1.0 / (1.0 / near * (1.0 - t_vals) + 1.0 / far * t_vals)
    else:
        t_vals = near * (1.0 - t_vals) + far * t_vals

    if randomized:
        mids = 0.5 * (t_vals[..., 1:] + t_vals[..., :-1])
        upper = torch.cat([mids, t_vals[..., -1:]], dim=-1)
        lower = torch.cat([t_vals[..., :1], mids], dim=-1)
        t_rand = torch.rand(batch_shape + (num_samples + 1,), generator=key, **factory)
        t_vals = lower + (upper - lower) * t_rand
    else:
        t_vals = t_vals.expand(batch_shape + (num_samples + 1,))
    means, covs = cast_rays(t_vals, origins, directions, radii, ray_shape)
    return t_vals, (means, covs)


def resample_along_rays(
    key,
    origins,
    directions,
    radii,
    t_vals,
    weights,
    randomized,
    ray_shape,
    stop_grad,
    resample_padding,
):
    """Hierarchical resampling: endpoints drawn from blurred coarse weights, and their Gaussians.

    The weights are "blurpooled" (max over each pair of neighbours, then the mean of adjacent
    maxima; the ends are edge-padded), raised by resample_padding and sampled as a piecewise
    constant PDF over t_vals, with as many new endpoints as t_vals has.

    Args:
      key: torch.Generator, or None for torch's default generator; unused when randomized is
        False.
      origins, directions: [B, 3] rays.
      radii: [B, 1] ray radii.
      t_vals: [B, n + 1] coarse endpoints.
      weights: [B, n] coarse compositing weights.
      randomized: stratified random samples of the PDF, else evenly spaced ones.
      ray_shape: 'cone' or 'cylinder'.
      stop_grad: detach the new endpoints from the graph.
      resample_padding: added to the blurred weights before they are normalised.

    Returns:
      new t_vals [B, n + 1] and (means [B, n, 3], covs [B, n, 3]).
    """
    weights_pad = torch.cat([weights[..., :1], weights, weights[..., -1:]], dim=-1)
    weights_max = torch.maximum(weights_pad[..., :-1], weights_pad[..., 1:])
    weights_blur = 0.5 * (weights_max[..., :-1] + weights_max[..., 1:])
    # The constant keeps sampling where the coarse weights vanish; the sampler renormalises.
    weights = weights_blur + resample_padding

    new_t_vals = math.sorted_piecewise_constant_pdf(
        key, t_vals, weights, t_vals.shape[-1], randomized
    )
    if stop_grad:
        new_t_vals = new_t_vals.detach()
    means, covs = cast_rays(new_t_vals, origins, directions, radii, ray_shape)
    return new_t_vals, (means, covs)
