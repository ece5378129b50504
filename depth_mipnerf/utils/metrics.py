# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's image metric (utils/metrics.py): the SSIM its eval.py reports.

The fork scores SSIM with torchgeometry's SSIM module: an 11 x 11 Gaussian window of sigma 1.5 run as
a per-channel convolution with zero padding (so the statistics near the border include zeros), and
the mean of the SSIM map over every pixel. mip-NeRF's SSIM (common.metrics.ssim) filters only where
the window fits ('valid') and reads higher on the same pair; depth_mipnerf/eval.py reports this one
as `ssim` and mip-NeRF's as `ssim_mipnerf`.
"""

import torch
import torch.nn.functional as F


def gaussian_window(window_size, sigma, dtype=torch.float32, device=None):
    """[window_size, window_size] separable Gaussian window of std `sigma` (pixels), summing to 1."""
    x = torch.arange(window_size, dtype=dtype, device=device) - window_size // 2
    taps = torch.exp(-x**2 / (2 * sigma**2))
    taps = taps / taps.sum()
    return taps[:, None] * taps[None, :]


def ssim(img1, img2, window_size, reduction='none', max_val=1.0):
    """SSIM of two image batches [B, C, H, W] with the fork's zero-padded Gaussian window.

    Returns the SSIM map [B, C, H, W] (reduction 'none'), its mean ('mean') or its sum ('sum').
    """
    if img1.shape != img2.shape or img1.dim() != 4:
        raise ValueError(f'ssim takes two [B, C, H, W] batches of one shape, got {tuple(img1.shape)} '
                         f'and {tuple(img2.shape)}')
    channels = img1.shape[1]
    kernel = gaussian_window(window_size, 1.5, img1.dtype, img1.device).expand(channels, 1, -1, -1)
    blur = lambda z: F.conv2d(z, kernel, padding=(window_size - 1) // 2, groups=channels)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu1, mu2 = blur(img1), blur(img2)
    sigma1_sq = blur(img1 * img1) - mu1**2
    sigma2_sq = blur(img2 * img2) - mu2**2
    sigma12 = blur(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1_sq + sigma2_sq + c2))
    if reduction == 'mean':
        return ssim_map.mean()
    if reduction == 'sum':
        return ssim_map.sum()
    if reduction == 'none':
        return ssim_map
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
