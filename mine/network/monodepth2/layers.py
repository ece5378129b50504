# Copyright Niantic 2019. Patent Pending. All rights reserved.
# This software is licensed under the terms of the Monodepth2 licence
# which allows for non-commercial use only, the full terms of which are made
# available in THIRD_PARTY_NOTICES.md. Modified (via vincentfung13/MINE) by the nerf-ports authors.
"""monodepth2 building blocks used by MINE's decoder (MINE adds BatchNorm to ConvBlock)."""

import torch.nn as nn
import torch.nn.functional as F


class Conv3x3(nn.Module):
    """Reflection-padded 3x3 convolution: BxC_inxHxW -> BxC_outxHxW."""

    def __init__(self, in_channels, out_channels, use_refl=True):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1) if use_refl else nn.ZeroPad2d(1)
        self.conv = nn.Conv2d(int(in_channels), int(out_channels), 3)

    def forward(self, x):
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 -> BatchNorm -> ELU: BxC_inxHxW -> BxC_outxHxW."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)
        self.bn = nn.BatchNorm2d(int(out_channels))

    def forward(self, x):
        return self.nonlin(self.bn(self.conv(x)))


def upsample(x):
    """Nearest-neighbour x2 upsampling: BxCxHxW -> BxCx2Hx2W."""
    return F.interpolate(x, scale_factor=2, mode="nearest")
