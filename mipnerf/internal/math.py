# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Numerical helpers of mip-NeRF: guarded sin/cos, PSNR/SSIM metrics, sRGB curves, lr schedule, PDF sampling."""

import math

import torch

from common import metrics
from common.safe_math import matmul, safe_cos, safe_sin, safe_trig_helper  # noqa: F401

_EPS32 = torch.finfo(torch.float32).eps


def mse_to_psnr(mse):
    """PSNR in dB of an MSE, for images with maximum value 1: mse [...] -> [...]."""
    return metrics.mse_to_psnr(mse)


def psnr_to_mse(psnr):
    """MSE of a PSNR in dB, for images with maximum value 1: psnr [...] -> [...]."""
    return torch.exp(-0.1 * math.log(10.0) * psnr)


def compute_avg_error(psnr, ssim, lpips):
    """The paper's "Avg." error: geometric mean of MSE, sqrt(1 - SSIM) and LPIPS. [...] -> [...]."""
    mse = psnr_to_mse(torch.as_tensor(psnr))
    dssim = torch.sqrt(1 - torch.as_tensor(ssim))
    errors = torch.stack(torch.broadcast_tensors(mse, dssim, torch.as_tensor(lpips)), dim=-1)
    return torch.exp(torch.mean(torch.log(errors), dim=-1))


def compute_ssim(
    img0, img1, max_val, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, return_map=False
):
    """SSIM with an 11-tap Gaussian window and 'valid' filtering (common.metrics.ssim).

    Args:
      img0, img1: [..., H, W, C] images.
      max_val: the largest value a pixel can take.
      return_map: return the per-pixel map [..., H - filter_size + 1, W - filter_size + 1, C]
        instead of each image's mean SSIM [...].
    """
    fn = metrics.ssim_map if return_map else metrics.ssim
    return fn(img0, img1, max_val, filter_size, filter_sigma, k1, k2)


def linear_to_srgb(linear):
    """The sRGB transfer curve of linear values in [0, 1]: [...] -> [...]."""
    srgb0 = 323 / 25 * linear
    # Clamp to eps before the fractional power: its gradient is infinite at 0 (that branch is
    # discarded there, but its NaN gradient would not be).
    srgb1 = (211 * torch.clamp_min(linear, _EPS32) ** (5 / 12) - 11) / 200
    return torch.where(linear <= 0.0031308, srgb0, srgb1)


def srgb_to_linear(srgb):
    """The inverse sRGB transfer curve of values in [0, 1]: [...] -> [...]."""
    linear0 = 25 / 323 * srgb
    # Clamp the base to eps: keeps the discarded branch finite, and its gradient, for srgb < -11/200.
    linear1 = torch.clamp_min((200 * srgb + 11) / 211, _EPS32) ** (12 / 5)
    return torch.where(srgb <= 0.04045, linear0, linear1)


def learning_rate_decay(step, lr_init, lr_final, max_steps, lr_delay_steps=0, lr_delay_mult=1):
    """Learning rate at `step`: log-linear from lr_init (step 0) to lr_final (max_steps and after).

    With lr_delay_steps > 0 the rate is also scaled by a warm-up factor that eases from
    lr_delay_mult at step 0 to 1 at lr_delay_steps along a quarter sine wave.

    Args:
      step: int, float or tensor [...], the optimisation step.

    Returns:
      lr: float32 tensor [...].
    """
    step = torch.as_tensor(step, dtype=torch.float32)
    if lr_delay_steps > 0:
        warmup = torch.clamp(step / lr_delay_steps, 0, 1)
        delay_rate = lr_delay_mult + (1 - lr_delay_mult) * torch.sin(0.5 * math.pi * warmup)
    else:
        delay_rate = 1.0
    t = torch.clamp(step / max_steps, 0, 1)
    log_lerp = torch.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)
    return delay_rate * log_lerp


def sorted_piecewise_constant_pdf(key, bins, weights, num_samples, randomized):
    """Samples of the piecewise-constant PDF `weights` on sorted `bins`, by inverting its CDF.

    Args:
      key: torch.Generator for the random draw, or None for torch's default generator.
      bins: [..., n + 1] sorted bin endpoints.
      weights: [..., n] non-negative bin weights.
      num_samples: int, samples per row.
      randomized: stratified random samples if True, else evenly spaced ones spanning [0, 1 - eps]
        of the CDF (deterministic, `key` unused).

    Returns:
      t_samples: [..., num_samples], sorted.
    """
    # Pad the weights of rows summing below eps up to a sum of eps: all-zero rows would
    # otherwise divide 0 by 0. Rows summing to eps or more are unchanged.
    eps = 1e-5
    weight_sum = torch.sum(weights, dim=-1, keepdim=True)
    padding = torch.clamp_min(eps - weight_sum, 0)
    weights = weights + padding / weights.shape[-1]
    weight_sum = weight_sum + padding

    # The CDF starts at exactly 0 and ends at exactly 1 (rounding could leave it short of 1).
    pdf = weights / weight_sum
    cdf = torch.clamp_max(torch.cumsum(pdf[..., :-1], dim=-1), 1)
    zeros = torch.zeros_like(cdf[..., :1])
    cdf = torch.cat([zeros, cdf, torch.ones_like(zeros)], dim=-1)

    batch_shape = cdf.shape[:-1]
    factory = {"dtype": cdf.dtype, "device": cdf.device}
    if randomized:
        # One uniform draw in each of num_samples equal strata of [0, 1); u never reaches 1.
        s = 1 / num_samples
        jitter = torch.rand(batch_shape + (num_samples,), generator=key, **factory) * (s - _EPS32)
        u = torch.clamp_max(torch.arange(num_samples, **factory) * s + jitter, 1 - _EPS32)
    else:
        # [0, 1 - eps] is the range of the random draw above.
        u = torch.linspace(0.0, 1.0 - _EPS32, num_samples, **factory)
        u = u.expand(batch_shape + (num_samples,))

    # mask[..., j, k]: sample k lies at or right of cdf[j]. The last True row starts its interval
    # and the first False row ends it (cdf is sorted, so no search is needed).
    mask = u[..., None, :] >= cdf[..., :, None]

    def find_interval(x):
        """(x at the start, x at the end) of every sample's interval: [..., num_samples] each."""
        x0 = torch.amax(torch.where(mask, x[..., None], x[..., :1, None]), dim=-2)
        x1 = torch.amin(torch.where(~mask, x[..., None], x[..., -1:, None]), dim=-2)
        return x0, x1

    bins_g0, bins_g1 = find_interval(bins)
    cdf_g0, cdf_g1 = find_interval(cdf)

    # Should an interval have zero CDF width, 0/0 -> 0 puts the sample at its start; the clip keeps
    # t in [0, 1] against rounding.
    t = torch.clamp(torch.nan_to_num((u - cdf_g0) / (cdf_g1 - cdf_g0), nan=0.0), 0, 1)
    return bins_g0 + t * (bins_g1 - bins_g0)
