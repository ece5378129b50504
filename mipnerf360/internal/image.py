# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Image tools: sRGB curves, PSNR/MSE and SSIM/DSSIM conversions, downsampling, colour correction, metrics."""

import math

import numpy as np
import torch

from common import metrics
from mipnerf360.internal.math import matmul


def mse_to_psnr(mse):
    """PSNR in dB of an MSE, for a maximum pixel value of 1: [...] -> [...]."""
    return -10.0 / math.log(10.0) * torch.log(mse)


def psnr_to_mse(psnr):
    """MSE of a PSNR in dB, for a maximum pixel value of 1: [...] -> [...]."""
    return torch.exp(-0.1 * math.log(10.0) * psnr)


def ssim_to_dssim(ssim):
    """DSSIM = (1 - SSIM) / 2: [...] -> [...]."""
    return (1 - ssim) / 2


def dssim_to_ssim(dssim):
    """SSIM = 1 - 2 DSSIM: [...] -> [...]."""
    return 1 - 2 * dssim


def linear_to_srgb(linear, eps=None, xnp=torch):
    """The sRGB transfer curve of linear values in [0, 1]: [...] -> [...] (xnp: torch or numpy)."""
    if eps is None:
        eps = xnp.finfo(xnp.float32).eps
    srgb0 = 323 / 25 * linear
    # Clamp to eps before the fractional power: its gradient is infinite at 0 (that branch is
    # discarded there, but its NaN gradient would not be).
    srgb1 = (211 * xnp.clip(linear, eps, None) ** (5 / 12) - 11) / 200
    return xnp.where(linear <= 0.0031308, srgb0, srgb1)


def srgb_to_linear(srgb, eps=None, xnp=torch):
    """The inverse sRGB transfer curve of values in [0, 1]: [...] -> [...] (xnp: torch or numpy)."""
    if eps is None:
        eps = xnp.finfo(xnp.float32).eps
    linear0 = 25 / 323 * srgb
    # Clamp the base to eps: keeps the discarded branch finite, and its gradient, for srgb < -11/200.
    linear1 = xnp.clip((200 * srgb + 11) / 211, eps, None) ** (12 / 5)
    return xnp.where(srgb <= 0.04045, linear0, linear1)


def downsample(img, factor):
    """Box-filter downsampling by an integer factor dividing H and W: [H, W, ...] -> [H/f, W/f, ...]."""
    sh = img.shape
    if not (sh[0] % factor == 0 and sh[1] % factor == 0):
        raise ValueError(
            f"Downsampling factor {factor} does not evenly divide image shape {sh[:2]}"
        )
    img = img.reshape((sh[0] // factor, factor, sh[1] // factor, factor) + tuple(sh[2:]))
    return img.mean((1, 3))


def color_correct(img, ref, num_iters=5, eps=0.5 / 255):
    """Warps the colours of img to match ref with a per-channel quadratic fit: [..., C] -> [..., C].

    Each output channel is a least-squares quadratic polynomial of all input channels, fitted on the
    pixels unclipped (within [eps, 1 - eps]) in img, ref and the current estimate; the fit is redone
    num_iters times as the set of clipped pixels changes.
    """
    if img.shape[-1] != ref.shape[-1]:
        raise ValueError(f"img's {img.shape[-1]} and ref's {ref.shape[-1]} channels must match")
    num_channels = img.shape[-1]
    img_mat = img.reshape([-1, num_channels])
    ref_mat = ref.reshape([-1, num_channels])

    def is_unclipped(z):
        return (z >= eps) & (z <= (1 - eps))

    mask0 = is_unclipped(img_mat)
    for _ in range(num_iters):
        # Columns: the products c_i c_j (i <= j), the channels, and a bias.
        quadratic = [img_mat[:, c : (c + 1)] * img_mat[:, c:] for c in range(num_channels)]
        a_mat = torch.cat(quadratic + [img_mat, torch.ones_like(img_mat[:, :1])], dim=-1)
        warp = []
        for c in range(num_channels):
            b = ref_mat[:, c]
            # Fit only on rows unclipped in the input, the current estimate and the reference.
            mask = mask0[:, c] & is_unclipped(img_mat[:, c]) & is_unclipped(b)
            ma_mat = torch.where(mask[:, None], a_mat, 0)
            mb = torch.where(mask, b, 0)
            # numpy's SVD-based lstsq (rcond=-1 as the original): it copes with the rank-deficient
            # systems of flat images, which torch's only CUDA driver (QR, full rank) does not.
            w = np.linalg.lstsq(ma_mat.cpu().numpy(), mb.cpu().numpy(), rcond=-1)[0]
            if not np.all(np.isfinite(w)):
                raise ValueError("color_correct: the least-squares fit is not finite")
            warp.append(torch.from_numpy(w).to(img_mat))
        warp = torch.stack(warp, dim=-1)
        # The original's full-precision product (math.matmul): exact float32 under TF32 too.
        img_mat = torch.clamp(matmul(a_mat, warp), 0, 1)
    return img_mat.reshape(img.shape)


class MetricHarness:
    """PSNR and SSIM (multinerf / dm_pix variant) of a rendered image against the truth."""

    def __call__(self, rgb_pred, rgb_gt, name_fn=lambda s: s):
        """Metrics of rgb_pred vs rgb_gt, [H, W, C] in [0, 1]: {name_fn('psnr'): float, name_fn('ssim'): float}."""
        psnr = float(mse_to_psnr(((rgb_pred - rgb_gt) ** 2).mean()))
        ssim = float(metrics.ssim(rgb_pred, rgb_gt))
        return {name_fn("psnr"): psnr, name_fn("ssim"): ssim}
