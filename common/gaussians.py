# Copyright 2021, 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Gaussians of ray segments shared by the mip-NeRF family (google/mipnerf's mip.py and multinerf's
render.py compute these two alike; each package keeps its own conical frustum, whose numerical
guards differ between the originals)."""

import torch


def lift_gaussian(d, t_mean, t_var, r_var, diag):
    """3D Gaussian of a 1D Gaussian along direction d (mip-NeRF eq. 8): d [..., 3], t_* [..., n].

    The covariance is t_var along d and r_var in the plane perpendicular to d.

    Returns:
      mean [..., n, 3] and cov [..., n, 3] (its diagonal, when diag) or [..., n, 3, 3].
    """
    mean = d[..., None, :] * t_mean[..., None]
    # Clamp |d|^2: a zero direction would otherwise divide 0 by 0 in the perpendicular projector.
    d_mag_sq = torch.clamp_min(torch.sum(d**2, dim=-1, keepdim=True), 1e-10)

    if diag:
        d_outer_diag = d**2
        null_outer_diag = 1 - d_outer_diag / d_mag_sq
        t_cov_diag = t_var[..., None] * d_outer_diag[..., None, :]
        xy_cov_diag = r_var[..., None] * null_outer_diag[..., None, :]
        return mean, t_cov_diag + xy_cov_diag

    d_outer = d[..., :, None] * d[..., None, :]
    eye = torch.eye(d.shape[-1], dtype=d.dtype, device=d.device)
    null_outer = eye - d[..., :, None] * (d / d_mag_sq)[..., None, :]
    t_cov = t_var[..., None, None] * d_outer[..., None, :, :]
    xy_cov = r_var[..., None, None] * null_outer[..., None, :, :]
    return mean, t_cov + xy_cov


def cylinder_to_gaussian(d, t0, t1, radius, diag):
    """Gaussian of the cylinder segment t in [t0, t1] of radius `radius` around axis d.

    Args:
      d: [..., 3] cylinder axis, not renormalised.
      t0, t1: [..., n] start and end distances.
      radius: [..., 1] or [..., n].

    Returns:
      mean [..., n, 3] and cov [..., n, 3] (diag) or [..., n, 3, 3].
    """
    t_mean = (t0 + t1) / 2
    r_var = radius**2 / 4
    t_var = (t1 - t0) ** 2 / 12
    return lift_gaussian(d, t_mean, t_var, r_var, diag)
