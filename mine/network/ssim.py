# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE's SSIM: 11-tap Gaussian window (sigma 1.5), zero padding ("same" size), C1 = 1e-4, C2 = 9e-4."""

import math

import torch
import torch.nn.functional as F


def gaussian(window_size, sigma):
    """Normalised 1-D Gaussian centred on the middle tap: [window_size]."""
    g = torch.tensor([math.exp(-((x - window_size // 2) ** 2) / float(2 * sigma**2)) for x in range(window_size)])
    return g / g.sum()


def create_window(window_size, channel):
    """Depthwise 2-D Gaussian window: channel x 1 x window_size x window_size."""
    g = gaussian(window_size, 1.5).unsqueeze(1)
    return (g @ g.t()).float().expand(channel, 1, window_size, window_size).contiguous()


def _ssim(img1, img2, window, window_size, channel, size_average=True):
    """SSIM map of BxCxHxW images, averaged to a scalar (size_average) or per image (B)."""
    pad = window_size // 2
    mu1 = F.conv2d(img1, window, padding=pad, groups=channel)
    mu2 = F.conv2d(img2, window, padding=pad, groups=channel)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = F.conv2d(img1 * img1, window, padding=pad, groups=channel) - mu1_sq
    sigma2_sq = F.conv2d(img2 * img2, window, padding=pad, groups=channel) - mu2_sq
    sigma12 = F.conv2d(img1 * img2, window, padding=pad, groups=channel) - mu1_mu2
    C1, C2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu1_mu2 + C1) * (2 * sigma12 + C2)) / ((mu1_sq + mu2_sq + C1) * (sigma1_sq + sigma2_sq + C2))
    if size_average:
        return ssim_map.mean()
    return ssim_map.mean(1).mean(1).mean(1)


class SSIM(torch.nn.Module):
    """SSIM(img1, img2) of BxCxHxW images in [0, 1]: scalar (size_average) or B."""

    def __init__(self, window_size=11, size_average=True):
        super().__init__()
        self.window_size = window_size
        self.size_average = size_average
        self.window = None  # built on first use, rebuilt when the channels, device or dtype change

    def forward(self, img1, img2):
        channel = img1.size(1)
        w = self.window
        if w is None or w.size(0) != channel or w.device != img1.device or w.dtype != img1.dtype:
            self.window = create_window(self.window_size, channel).to(img1)
        return _ssim(img1, img2, self.window, self.window_size, channel, self.size_average)


def ssim(img1, img2, window_size=11, size_average=True):
    """Functional SSIM of BxCxHxW images: scalar (size_average) or B."""
    channel = img1.size(1)
    window = create_window(window_size, channel).to(img1)
    return _ssim(img1, img2, window, window_size, channel, size_average)
