# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's experimental small convolutional encoder (works for some sizes only, e.g. 128x128, 80x96)."""

import torch
from torch import nn

from inerf.src import util


class ConvEncoder(nn.Module):
    """x (B, dim_in, H, W) -> features (B, 128, H', W'): 3 strided convs down, skip-connected deconvs up."""

    def __init__(self, dim_in=3, norm_layer=util.get_norm_layer("group"), padding_type="reflect",
                 use_leaky_relu=True, use_skip_conn=True):
        super().__init__()
        self.dim_in = dim_in
        self.norm_layer = norm_layer
        self.activation = nn.LeakyReLU() if use_leaky_relu else nn.ReLU()
        self.padding_type = padding_type
        self.use_skip_conn = use_skip_conn
        first_layer_chnls, mid_layer_chnls, last_layer_chnls = 64, 128, 128
        self.n_down_layers = 3

        self.conv_in = nn.Sequential(
            nn.Conv2d(dim_in, first_layer_chnls, kernel_size=7, stride=2, bias=False),
            norm_layer(first_layer_chnls), self.activation)
        chnls = first_layer_chnls
        for i in range(self.n_down_layers):
            setattr(self, "conv" + str(i), nn.Sequential(
                nn.Conv2d(chnls, 2 * chnls, kernel_size=3, stride=2, bias=False),
                norm_layer(2 * chnls), self.activation))
            setattr(self, "deconv" + str(i), nn.Sequential(
                nn.ConvTranspose2d(4 * chnls, chnls, kernel_size=3, stride=2, bias=False),
                norm_layer(chnls), self.activation))
            chnls *= 2
        self.conv_mid = nn.Sequential(
            nn.Conv2d(chnls, mid_layer_chnls, kernel_size=4, stride=4, bias=False),
            norm_layer(mid_layer_chnls), self.activation)
        self.deconv_last = nn.ConvTranspose2d(first_layer_chnls, last_layer_chnls, kernel_size=3,
                                              stride=2, bias=True)
        self.dims = [last_layer_chnls]

    def forward(self, x):
        """x (B, dim_in, H, W) -> (B, 128, H', W')."""
        x = self.conv_in(util.same_pad_conv2d(x, padding_type=self.padding_type, layer=self.conv_in))
        inters = []
        for i in range(self.n_down_layers):
            conv_i = getattr(self, "conv" + str(i))
            x = conv_i(util.same_pad_conv2d(x, padding_type=self.padding_type, layer=conv_i))
            inters.append(x)
        x = self.conv_mid(util.same_pad_conv2d(x, padding_type=self.padding_type, layer=self.conv_mid))
        x = x.reshape(x.shape[0], -1, 1, 1).expand(-1, -1, *inters[-1].shape[-2:])
        for i in reversed(range(self.n_down_layers)):
            if self.use_skip_conn:
                x = torch.cat((x, inters[i]), dim=1)
            deconv_i = getattr(self, "deconv" + str(i))
            x = util.same_unpad_deconv2d(deconv_i(x), layer=deconv_i)
        return util.same_unpad_deconv2d(self.deconv_last(x), layer=self.deconv_last)
