# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Gaussians of ray segments, ray casting and volume rendering (multinerf's internal/render.py)."""

import torch

from common.gaussians import cylinder_to_gaussian, lift_gaussian
from mipnerf360.internal import stepfun


def conical_frustum_to_gaussian(d, t0, t1, base_radius, diag, stable=True):
    """Gaussian of the conical frustum t in [t0, t1] (mip-NeRF eq. 7) of a cone from the origin.

    Args:
      d: [..., 3] cone axis, not necessarily unit length.
      t0, t1: [..., n] frustum start and end distances.
      base_radius: [..., 1] or [..., n] cone radius at distance 1.
      diag: whether to return only the covariance's diagonal.
      stable: mip-NeRF's stable reparametrisation by mid-point and half-width; False evaluates
        the raw moment formulas (mip-NeRF eqs. 37-39), which cancel catastrophically.

    Returns:
      mean [..., n, 3] and cov [..., n, 3] (diag) or [..., n, 3, 3].
    """
    if stable:
        mu = (t0 + t1) / 2
        hw = (t1 - t0) / 2
        eps = torch.finfo(torch.float32).eps
        # Clamp the denominator at eps: it is 0 only for a frustum of zero length at t = 0.
        denom = torch.clamp_min(3 * mu**2 + hw**2, eps)
        t_mean = mu + (2 * mu * hw**2) / denom
        t_var = (hw**2) / 3 - (4 / 15) * hw**4 * (12 * mu**2 - hw**2) / denom**2
        r_var = (mu**2) / 4 + (5 / 12) * hw**2 - (4 / 15) * (hw**4) / denom
    else:
        t_mean = (3 * (t1**4 - t0**4)) / (4 * (t1**3 - t0**3))
        r_var = 3 / 20 * (t1**5 - t0**5) / (t1**3 - t0**3)
        t_mosq = 3 / 5 * (t1**5 - t0**5) / (t1**3 - t0**3)
        t_var = t_mosq - t_mean**2
    r_var = r_var * base_radius**2
    return lift_gaussian(d, t_mean, t_var, r_var, diag)


def cast_rays(tdist, origins, directions, radii, ray_shape, diag=True):
    """Gaussians of the segments between consecutive distances tdist [..., n+1] along cones or cylinders.

    origins, directions: [..., 3]; radii: [..., 1] (a cone's radius at distance 1);
    ray_shape: 'cone' or 'cylinder'. Returns means [..., n, 3] and covs [..., n, 3] or [..., n, 3, 3].
    """
    t0 = tdist[..., :-1]
    t1 = tdist[..., 1:]
    if ray_shape == "cone":
        gaussian_fn = conical_frustum_to_gaussian
    elif ray_shape == "cylinder":
        gaussian_fn = cylinder_to_gaussian
    else:
        raise ValueError("ray_shape must be 'cone' or 'cylinder'")
    means, covs = gaussian_fn(directions, t0, t1, radii, diag)
    return means + origins[..., None, :], covs


def compute_alpha_weights(density, tdist, dirs, opaque_background=False):
    """Alpha-compositing weights (NeRF eq. 3) of densities [..., n] on intervals tdist [..., n+1].

    Interval lengths are scaled by |dirs| [..., 3]. Returns (weights, alpha, trans), each [..., n].
    """
    t_delta = tdist[..., 1:] - tdist[..., :-1]
    delta = t_delta * torch.linalg.norm(dirs[..., None, :], dim=-1)
    density_delta = density * delta

    if opaque_background:
        # An infinitely wide last interval: the ray stops there (alpha = 1).
        density_delta = torch.cat(
            [density_delta[..., :-1], torch.full_like(density_delta[..., -1:], torch.inf)], dim=-1
        )

    alpha = 1 - torch.exp(-density_delta)
    trans = torch.exp(
        -torch.cat(
            [torch.zeros_like(density_delta[..., :1]), torch.cumsum(density_delta[..., :-1], dim=-1)],
            dim=-1,
        )
    )
    return alpha * trans, alpha, trans


def volumetric_rendering(rgbs, weights, tdist, bg_rgbs, t_far, compute_extras, extras=None):
    """Composites colours along rays over a background.

    Args:
      rgbs: [..., n, 3] sample colours.
      weights: [..., n] compositing weights (summing to at most 1).
      tdist: [..., n+1] interval endpoints.
      bg_rgbs: background colour, broadcastable to [..., 3].
      t_far: [..., 1] far-plane distance.
      compute_extras: also return acc, the distance statistics and the composited extras.
      extras: {name: [..., n, c] or None} values to composite like the colour.

    Returns:
      {'rgb': [..., 3]} and, with compute_extras, 'acc', 'distance_mean', 'distance_median',
      'distance_percentile_5', 'distance_percentile_95' (each [...]) and the extras ([..., c]).
    """
    eps = torch.finfo(torch.float32).eps
    rendering = {}

    acc = weights.sum(dim=-1)
    bg_w = torch.clamp_min(1 - acc[..., None], 0)  # The background's weight.
    rendering["rgb"] = (weights[..., None] * rgbs).sum(dim=-2) + bg_w * bg_rgbs
    if not compute_extras:
        return rendering

    rendering["acc"] = acc
    if extras is not None:
        for k, v in extras.items():
            if v is not None:
                rendering[k] = (weights[..., None] * v).sum(dim=-2)

    # Normalise by acc, clamped at eps: empty rays (acc = 0) would divide 0 by 0.
    def expectation(x):
        return (weights * x).sum(dim=-1) / torch.clamp_min(acc, eps)

    t_mids = 0.5 * (tdist[..., :-1] + tdist[..., 1:])
    # The mean distance is averaged in log space (a geometric mean) for numerical stability. NaNs
    # (from log 0 at t = 0) become 0 and infinities the largest float, then clip into the ray's range.
    rendering["distance_mean"] = torch.clamp(
        torch.nan_to_num(torch.exp(expectation(torch.log(t_mids)))), tdist[..., 0], tdist[..., -1]
    )

    # A last interval ending at t_far carries the background's weight, so the weights sum to 1.
    t_aug = torch.cat([tdist, t_far], dim=-1)
    weights_aug = torch.cat([weights, bg_w], dim=-1)
    ps = [5, 50, 95]
    distance_percentiles = stepfun.weighted_percentile(t_aug, weights_aug, ps)
    for i, p in enumerate(ps):
        s = "median" if p == 50 else "percentile_" + str(p)
        rendering["distance_" + s] = distance_percentiles[..., i]
    return rendering
