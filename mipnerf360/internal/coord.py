# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Coordinate spaces and ray distances: the scene contraction, ray warps and positional encodings."""

import torch

from mipnerf360.internal import math


def contract(x):
    """The contraction of Eq. 10 of mip-NeRF 360, unit ball to itself, the rest to |z| < 2: [..., 3] -> [..., 3]."""
    eps = torch.finfo(torch.float32).eps
    # Clamp |x|^2 to eps: the discarded branch would otherwise divide by zero at x == 0 and
    # poison the gradient with NaNs.
    x_mag_sq = torch.clamp(torch.sum(x**2, dim=-1, keepdim=True), min=eps)
    return torch.where(x_mag_sq <= 1, x, ((2 * torch.sqrt(x_mag_sq) - 1) / x_mag_sq) * x)


def inv_contract(z):
    """The inverse of contract(), for |z| < 2: [..., 3] -> [..., 3]."""
    eps = torch.finfo(torch.float32).eps
    # Clamp |z|^2 to eps: keeps the discarded branch, and so the gradient, finite at z == 0.
    z_mag_sq = torch.clamp(torch.sum(z**2, dim=-1, keepdim=True), min=eps)
    return torch.where(z_mag_sq <= 1, z, z / (2 * torch.sqrt(z_mag_sq) - z_mag_sq))


def track_linearize(fn, mean, cov):
    """Pushes Gaussians through fn linearised at their means (Kalman-filter style): fn(mean), J cov J^T.

    Args:
      fn: a function mapping points [..., d] to [..., d'] point by point, e.g. contract.
      mean: [..., d] means.
      cov: [..., d, d] full covariances.

    Returns:
      fn_mean: [..., d'], fn applied to the means.
      fn_cov: [..., d', d'], J cov J^T with J [..., d', d] the Jacobian of fn at the means.
    """
    if mean.dim() + 1 != cov.dim():
        raise ValueError("cov must be non-diagonal")
    fn_mean = fn(mean)

    def lin_fn(tangent):
        """J tangent: [..., d] -> [..., d'] (forward-mode derivative of fn at the means)."""
        return torch.func.jvp(fn, (mean,), (tangent,))[1]

    # Mapping J over the columns of cov, stacked as rows, gives (J cov)^T = cov J^T; doing it
    # again gives (J cov J^T)^T, which is J cov J^T for a symmetric cov.
    lin_fn_cols = torch.func.vmap(lin_fn, in_dims=-1, out_dims=-2)
    return fn_mean, lin_fn_cols(lin_fn_cols(cov))


def construct_ray_warps(fn, t_near, t_far):
    """The bijection between metric distances t and normalised distances s in [0, 1] (Eq. 11).

    Args:
      fn: None (s linear in t), 'piecewise' (linear up to t = 1, then 1/t; allows t_near = 0), or
        one of torch.reciprocal, torch.log, torch.exp, torch.sqrt, torch.square (the inverse is
        found by the function's __name__).
      t_near: [...] near distances, broadcastable against the t and s queried.
      t_far: [...] far distances.

    Returns:
      t_to_s: maps distances to normalised distances, 0 at t_near and 1 at t_far.
      s_to_t: its inverse.
    """
    if fn is None:
        fn_fwd = lambda x: x
        fn_inv = lambda x: x
    elif fn == "piecewise":
        # Identity below 1 and 1/x beyond, scaled to meet at 0.5.
        fn_fwd = lambda x: torch.where(x < 1, 0.5 * x, 1 - 0.5 / x)
        fn_inv = lambda x: torch.where(x < 0.5, 2 * x, 0.5 / (1 - x))
    else:
        inv_mapping = {
            "reciprocal": torch.reciprocal,
            "log": torch.exp,
            "exp": torch.log,
            "sqrt": torch.square,
            "square": torch.sqrt,
        }
        fn_fwd = fn
        fn_inv = inv_mapping[fn.__name__]

    s_near, s_far = fn_fwd(t_near), fn_fwd(t_far)
    t_to_s = lambda t: (fn_fwd(t) - s_near) / (s_far - s_near)
    s_to_t = lambda s: fn_inv(s * s_far + (1 - s) * s_near)
    return t_to_s, s_to_t


def expected_sin(mean, var):
    """E[sin(x)] for x ~ N(mean, var), exp(-var / 2) sin(mean): [...] -> [...]."""
    return torch.exp(-0.5 * var) * math.safe_sin(mean)  # Large variance -> small value.


def integrated_pos_enc(mean, var, min_deg, max_deg):
    """Integrated positional encoding of Gaussians by sinusoids scaled by 2^[min_deg, max_deg).

    Args:
      mean: [..., d] means of the (diagonal) Gaussians.
      var: [..., d] their variances.
      min_deg, max_deg: ints, the range of the frequency exponents.

    Returns:
      encoded: [..., 2 d (max_deg - min_deg)], the expected sines then the expected cosines.
    """
    scales = 2.0 ** torch.arange(min_deg, max_deg, dtype=mean.dtype, device=mean.device)
    shape = mean.shape[:-1] + (-1,)
    scaled_mean = torch.reshape(mean[..., None, :] * scales[:, None], shape)
    scaled_var = torch.reshape(var[..., None, :] * scales[:, None] ** 2, shape)
    # expected_sin of [mean, mean + pi/2] with [var, var], elementwise the same numbers, but the
    # shared exp(-var / 2) is computed once: this is the largest tensor of the model.
    attenuation = torch.exp(-0.5 * scaled_var)
    return torch.cat(
        [attenuation * math.safe_sin(scaled_mean),
         attenuation * math.safe_sin(scaled_mean + 0.5 * torch.pi)], dim=-1)


def integrated_pos_enc_stacked(mean, var, min_deg, max_deg):
    """integrated_pos_enc, the same numbers bit for bit, as one [..., 2, degrees, d] expression.

    The sines and cosines are sin(scaled_mean + [0, pi/2]) of one broadcast tensor instead of a
    concatenation, so that torch.compile fuses the whole encoding into one vectorised loop over
    the features (models.encode_gaussians_compiled); eager, it is no faster than the original.
    """
    scales = 2.0 ** torch.arange(min_deg, max_deg, dtype=mean.dtype, device=mean.device)
    offsets = torch.tensor([0, 0.5 * torch.pi], dtype=mean.dtype, device=mean.device)
    scaled_mean = mean[..., None, None, :] * scales[:, None]  # [..., 1, degrees, d]
    attenuation = torch.exp(-0.5 * (var[..., None, None, :] * scales[:, None] ** 2))
    encoded = attenuation * math.safe_sin(scaled_mean + offsets[:, None, None])  # [..., 2, degrees, d]
    return encoded.reshape(mean.shape[:-1] + (-1,))


def lift_and_diagonalize(mean, cov, basis):
    """Projects Gaussians onto the basis, keeping the diagonal of the projected covariance.

    Args:
      mean: [..., 3] means.
      cov: [..., 3, 3] covariances.
      basis: [3, n] projection directions (geopoly.generate_basis(...).T).

    Returns:
      fn_mean: [..., n] projected means.
      fn_cov_diag: [..., n] variances along each basis direction, b^T cov b.
    """
    fn_mean = math.matmul(mean, basis)
    fn_cov_diag = torch.sum(basis * math.matmul(cov, basis), dim=-2)
    return fn_mean, fn_cov_diag


def pos_enc(x, min_deg, max_deg, append_identity=True):
    """NeRF's positional encoding with sinusoids scaled by 2^[min_deg, max_deg): [..., d] -> [..., (1 +) 2 d n]."""
    scales = 2.0 ** torch.arange(min_deg, max_deg, dtype=x.dtype, device=x.device)
    shape = x.shape[:-1] + (-1,)
    scaled_x = torch.reshape(x[..., None, :] * scales[:, None], shape)
    # Plain sin, not safe_sin as in the IPE: the original does the same.
    four_feat = torch.sin(torch.cat([scaled_x, scaled_x + 0.5 * torch.pi], dim=-1))
    if append_identity:
        return torch.cat([x, four_feat], dim=-1)
    return four_feat
