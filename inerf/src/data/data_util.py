# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Colour jitter for training images in [-1, 1] (one random jitter per object, as for DTU)."""

import numpy as np
import torch


def _grayscale(img):
    """(3, H, W) in [0, 1] -> (1, H, W) ITU-R 601 luma."""
    r, g, b = img.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(img1, img2, ratio):
    """ratio img1 + (1 - ratio) img2, clamped to [0, 1]."""
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0.0, 1.0)


def adjust_brightness(img, factor):
    """(3, H, W) scaled by factor, clamped."""
    return _blend(img, torch.zeros_like(img), factor)


def adjust_saturation(img, factor):
    """(3, H, W) blended with its grayscale."""
    return _blend(img, _grayscale(img), factor)


def adjust_contrast(img, factor):
    """(3, H, W) blended with its mean gray level."""
    return _blend(img, torch.mean(_grayscale(img), dim=(-3, -2, -1), keepdim=True), factor)


def _rgb_to_hsv(img):
    """(3, H, W) RGB in [0, 1] -> HSV with h in [0, 1)."""
    r, g, b = img.unbind(-3)
    maxc = img.max(dim=-3).values
    minc = img.min(dim=-3).values
    cr = maxc - minc
    eqc = cr == 0
    s = cr / torch.where(eqc, torch.ones_like(maxc), maxc)
    cr_divisor = torch.where(eqc, torch.ones_like(cr), cr)  # grey pixels: any hue, avoid 0/0
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(img):
    """(3, H, W) HSV -> RGB."""
    h, s, v = img.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    choices = torch.stack([torch.stack(c) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))])
    return torch.gather(choices, 1, i[None, None].expand(3, 1, *i.shape))[:, 0]


def adjust_hue(img, hue_factor):
    """(3, H, W) with its hue shifted by hue_factor (in turns, [-0.5, 0.5])."""
    hsv = _rgb_to_hsv(img)
    h = torch.fmod(hsv[0] + hue_factor + 1.0, 1.0)
    return _hsv_to_rgb(torch.stack((h, hsv[1], hsv[2])))


class ColorJitterDataset(torch.utils.data.Dataset):
    """Wraps a dataset; applies one random saturation, hue, contrast, brightness jitter per item."""

    def __init__(self, base_dset, hue_range=0.1, saturation_range=0.1, brightness_range=0.1,
                 contrast_range=0.1, extra_inherit_attrs=()):
        self.hue_range = [-hue_range, hue_range]
        self.saturation_range = [1 - saturation_range, 1 + saturation_range]
        self.brightness_range = [1 - brightness_range, 1 + brightness_range]
        self.contrast_range = [1 - contrast_range, 1 + contrast_range]
        self.base_dset = base_dset
        for attr in ["z_near", "z_far", "lindisp", "base_path", "image_to_tensor", *extra_inherit_attrs]:
            setattr(self, attr, getattr(self.base_dset, attr))

    def apply_color_jitter(self, images):
        """images (NV, 3, H, W) in [-1, 1], jittered in place with the same factors."""
        hue_factor = np.random.uniform(*self.hue_range)
        saturation_factor = np.random.uniform(*self.saturation_range)
        brightness_factor = np.random.uniform(*self.brightness_range)
        contrast_factor = np.random.uniform(*self.contrast_range)
        for i in range(len(images)):
            tmp = (images[i] + 1.0) * 0.5
            tmp = adjust_saturation(tmp, saturation_factor)
            tmp = adjust_hue(tmp, hue_factor)
            tmp = adjust_contrast(tmp, contrast_factor)
            tmp = adjust_brightness(tmp, brightness_factor)
            images[i] = tmp * 2.0 - 1.0
        return images

    def __len__(self):
        return len(self.base_dset)

    def __getitem__(self, idx):
        data = self.base_dset[idx]
        data["images"] = self.apply_color_jitter(data["images"])
        return data
