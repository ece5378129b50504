# Copyright Niantic 2019. Patent Pending. All rights reserved.
# This software is licensed under the terms of the Monodepth2 licence
# which allows for non-commercial use only, the full terms of which are made
# available in THIRD_PARTY_NOTICES.md. Modified (via vincentfung13/MINE) by the nerf-ports authors.
"""MINE's decoder: monodepth2's depth decoder run once per plane, conditioned on the encoded disparity.

Module names follow the original so released checkpoints load unchanged: the ModuleDict keys are the
characters of str(tuple) joined by '-', e.g. ("upconv", 4, 0) -> "(-'-u-p-c-o-n-v-'-,- -4-,- -0-)".
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mine.network.monodepth2.layers import Conv3x3, ConvBlock, upsample


def conv(in_planes, out_planes, kernel_size, instancenorm=False):
    """Conv (no bias, same padding) -> BatchNorm (InstanceNorm) -> LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=1, padding=(kernel_size - 1) // 2,
                  bias=False),
        nn.InstanceNorm2d(out_planes) if instancenorm else nn.BatchNorm2d(out_planes),
        nn.LeakyReLU(0.1, inplace=True),
    )


class DepthDecoder(nn.Module):
    """Encoder features + B x S disparities -> per scale s, BxSx4xH/2^sxW/2^s MPIs (sigmoid RGB, sigma)."""

    @staticmethod
    def tuple_to_str(key_tuple):
        """The original's ModuleDict key of a tuple: '-'.join(str(key_tuple))."""
        return "-".join(str(key_tuple))

    def __init__(self, num_ch_enc, embedder, embedder_out_dim, use_alpha=False, scales=range(4),
                 num_output_channels=4, use_skips=True, sigma_dropout_rate=0.0, **kwargs):
        super().__init__()
        self.num_output_channels = num_output_channels
        self.use_skips = use_skips
        self.upsample_mode = "nearest"
        self.scales = scales
        self.use_alpha = use_alpha
        self.sigma_dropout_rate = sigma_dropout_rate
        self.embedder = embedder
        self.E = embedder_out_dim

        # Extension of the encoder (larger receptive field): two stride-2 max-pools and back up.
        final_enc_out_channels = int(num_ch_enc[-1])
        self.downsample = nn.MaxPool2d(3, stride=2, padding=1)
        self.upsample = nn.UpsamplingNearest2d(scale_factor=2)
        self.conv_down1 = conv(final_enc_out_channels, 512, 1, False)
        self.conv_down2 = conv(512, 256, 3, False)
        self.conv_up1 = conv(256, 256, 3, False)
        self.conv_up2 = conv(256, final_enc_out_channels, 1, False)

        self.num_ch_enc = [int(x) + self.E for x in num_ch_enc]
        self.num_ch_dec = np.array([16, 32, 64, 128, 256])
        self.convs = nn.ModuleDict()
        for i in range(4, -1, -1):
            num_ch_in = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            self.convs[self.tuple_to_str(("upconv", i, 0))] = ConvBlock(num_ch_in, self.num_ch_dec[i])
            num_ch_in = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if self.use_skips and i > 0 else 0)
            self.convs[self.tuple_to_str(("upconv", i, 1))] = ConvBlock(num_ch_in, self.num_ch_dec[i])
        for s in self.scales:
            self.convs[self.tuple_to_str(("dispconv", s))] = Conv3x3(self.num_ch_dec[s], self.num_output_channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, input_features, disparity):
        """input_features: 5 maps B x C_i x H/2^(i+1) x W/2^(i+1); disparity BxS -> {("disp", s): BxSx4xHsxWs}."""
        B, S = disparity.size()
        embedding = self.embedder(disparity.reshape(B * S, 1))[:, :, None, None]  # (BS)xEx1x1

        def per_plane(feat):
            """B x C x h x w -> (BS) x (C + E) x h x w: the feature repeated per plane + the plane's code."""
            _, C, h, w = feat.size()
            feat = feat.unsqueeze(1).expand(B, S, C, h, w).reshape(B * S, C, h, w)
            return torch.cat((feat, embedding.expand(B * S, self.E, h, w)), dim=1)

        encoder_out = input_features[-1]
        x = self.conv_down1(self.downsample(encoder_out))
        x = self.conv_down2(self.downsample(x))
        x = self.conv_up1(self.upsample(x))
        x = per_plane(self.conv_up2(self.upsample(x)))
        skips = [per_plane(feat) for feat in input_features[:-1]]  # the 1/32 map enters through x

        outputs = {}
        for i in range(4, -1, -1):
            x = [upsample(self.convs[self.tuple_to_str(("upconv", i, 0))](x))]
            if self.use_skips and i > 0:
                x.append(skips[i - 1])
            x = self.convs[self.tuple_to_str(("upconv", i, 1))](torch.cat(x, 1))
            if i in self.scales:
                out = self.convs[self.tuple_to_str(("dispconv", i))](x)
                mpi = out.view(B, S, 4, out.size(2), out.size(3))
                mpi_rgb = self.sigmoid(mpi[:, :, 0:3])
                # |x| + 1e-4: density stays strictly positive, so every plane has a finite log-transmittance.
                mpi_sigma = self.sigmoid(mpi[:, :, 3:]) if self.use_alpha else torch.abs(mpi[:, :, 3:]) + 1e-4
                if self.sigma_dropout_rate > 0.0 and self.training:
                    mpi_sigma = F.dropout2d(mpi_sigma, p=self.sigma_dropout_rate)
                outputs[("disp", i)] = torch.cat((mpi_rgb, mpi_sigma), dim=2)
        return outputs
