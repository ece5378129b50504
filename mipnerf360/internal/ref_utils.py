# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Ref-NeRF tools: reflected directions, (integrated) directional encodings, normal error."""

import math as pymath

import numpy as np
import torch

from mipnerf360.internal import math


def reflect(viewdirs, normals):
    """Reflection u = 2 (n . v) n - v of directions v about unit normals n: [..., 3] -> [..., 3]."""
    return 2.0 * torch.sum(normals * viewdirs, dim=-1, keepdim=True) * normals - viewdirs


def l2_normalize(x, eps=torch.finfo(torch.float32).eps):
    """x / |x| along the last axis: [..., d] -> [..., d]."""
    # Clamp |x|^2 to eps: a zero vector stays finite (and zero) instead of 0/0.
    return x / torch.sqrt(torch.clamp(torch.sum(x**2, dim=-1, keepdim=True), min=eps))


def compute_weighted_mae(weights, normals, normals_gt):
    """Weighted mean angle in degrees between unit normals: weights [...], normals [..., 3] -> []."""
    # Clip the cosine inside (-1, 1): arccos has an infinite slope at +-1.
    one_eps = 1 - torch.finfo(torch.float32).eps
    cos = torch.clamp((normals * normals_gt).sum(-1), -one_eps, one_eps)
    return (weights * torch.arccos(cos)).sum() / weights.sum() * 180.0 / torch.pi


def generalized_binomial_coeff(a, k):
    """Binomial coefficient (a choose k) for real a and integer k >= 0."""
    return np.prod(a - np.arange(k)) / pymath.factorial(k)


def assoc_legendre_coeff(l, m, k):
    """Coefficient of cos^k(theta) sin^m(theta) in the associated Legendre polynomial P_l^m(cos theta)."""
    return (
        (-1) ** m * 2**l * pymath.factorial(l) / pymath.factorial(k) / pymath.factorial(l - k - m)
        * generalized_binomial_coeff(0.5 * (l + k + m - 1.0), l)
    )  # fmt: skip


def sph_harm_coeff(l, m, k):
    """Coefficient of cos^k(theta) sin^m(theta) e^{i m phi} in the spherical harmonic Y_l^m."""
    norm = np.sqrt(
        (2.0 * l + 1.0) * pymath.factorial(l - m) / (4.0 * np.pi * pymath.factorial(l + m))
    )
    return norm * assoc_legendre_coeff(l, m, k)


def get_ml_array(deg_view):
    """All (m, l) pairs of the encoding, l = 1, 2, 4, ..., 2^(deg_view-1) and 0 <= m <= l: int [2, n]."""
    # Only m >= 0: the real and imaginary parts of Y_l^m carry the m < 0 harmonics.
    ml_list = [(m, 2**i) for i in range(deg_view) for m in range(2**i + 1)]
    return np.array(ml_list).T


def generate_ide_fn(deg_view):
    """The integrated directional encoding (IDE, Eqs. 6-8 of Ref-NeRF) for deg_view degrees.

    Returns:
      integrated_dir_enc_fn(xyz [..., 3] unit directions, kappa_inv [..., 1]) -> [..., 2 n]: the
      real parts then the imaginary parts of the attenuated spherical harmonics, n = number of
      (m, l) pairs of get_ml_array(deg_view).
    """
    if deg_view > 5:
        raise ValueError("Only deg_view of at most 5 is numerically stable.")

    ml_array = get_ml_array(deg_view)
    l_max = 2 ** (deg_view - 1)
    # mat[k, i]: the coefficient of z^k in harmonic i, so that (z Vandermonde) @ mat gives the
    # z-dependent factor of every harmonic.
    mat = np.zeros((l_max + 1, ml_array.shape[1]))
    for i, (m, l) in enumerate(ml_array.T):
        for k in range(l - m + 1):
            mat[k, i] = sph_harm_coeff(l, m, k)
    m_index = torch.from_numpy(ml_array[0])
    sigma = 0.5 * ml_array[1] * (ml_array[1] + 1)  # The attenuation rate l (l + 1) / 2.

    def integrated_dir_enc_fn(xyz, kappa_inv):
        """IDE of directions xyz [..., 3] with vMF spreads kappa_inv [..., 1]: [..., 2 n]."""
        x, y, z = xyz[..., 0:1], xyz[..., 1:2], xyz[..., 2:3]
        vmz = torch.cat([z**i for i in range(mat.shape[0])], dim=-1)
        # (x + iy)^m for m = 0..l_max by repeated complex multiplication, kept as real and
        # imaginary parts: exact integer powers, and no complex dtype (not every device has one).
        re_pows, im_pows = [torch.ones_like(x)], [torch.zeros_like(x)]
        for _ in range(l_max):
            re, im = re_pows[-1], im_pows[-1]
            re_pows.append(re * x - im * y)
            im_pows.append(re * y + im * x)
        index = m_index.to(xyz.device)
        vmxy_re = torch.cat(re_pows, dim=-1)[..., index]
        vmxy_im = torch.cat(im_pows, dim=-1)[..., index]
        z_part = math.matmul(vmz, torch.as_tensor(mat, dtype=xyz.dtype, device=xyz.device))
        attenuation = torch.exp(
            -torch.as_tensor(sigma, dtype=xyz.dtype, device=xyz.device) * kappa_inv
        )
        scale = z_part * attenuation
        return torch.cat([vmxy_re * scale, vmxy_im * scale], dim=-1)

    return integrated_dir_enc_fn


def generate_dir_enc_fn(deg_view):
    """The directional encoding (the IDE at kappa_inv = 0): returns dir_enc_fn(xyz [..., 3]) -> [..., 2 n]."""
    integrated_dir_enc_fn = generate_ide_fn(deg_view)

    def dir_enc_fn(xyz):
        """Directional encoding of unit directions xyz [..., 3]: [..., 2 n]."""
        return integrated_dir_enc_fn(xyz, torch.zeros_like(xyz[..., :1]))

    return dir_enc_fn
