# Copyright Niantic 2019. Patent Pending. All rights reserved.
# This software is licensed under the terms of the Monodepth2 licence
# which allows for non-commercial use only, the full terms of which are made
# available in THIRD_PARTY_NOTICES.md. Modified (via vincentfung13/MINE) by the nerf-ports authors.
"""monodepth2's ResNet encoder on common.resnet (torchvision's ResNet and parameter names in plain torch).

ImageNet weights come from a local file in torchvision's state-dict format (nothing downloads):
$MINE_RESNET_WEIGHTS, else torchvision's cache file (torch.hub.get_dir()/checkpoints/resnet<N>-<hash>.pth).
"""

import os

import numpy as np
import torch
import torch.nn as nn

from common import resnet as tv_resnet

_RESNETS = {18: tv_resnet.resnet18, 34: tv_resnet.resnet34, 50: tv_resnet.resnet50,
            101: tv_resnet.resnet101, 152: tv_resnet.resnet152}


def resnet(num_layers, pretrained=False, weights_path=None):
    """ResNet-<num_layers>; pretrained: ImageNet weights of weights_path, $MINE_RESNET_WEIGHTS or the hub cache."""
    if num_layers not in _RESNETS:
        raise ValueError(f"{num_layers} is not a valid number of resnet layers (one of {sorted(_RESNETS)})")
    weights_path = weights_path or os.environ.get("MINE_RESNET_WEIGHTS") or None
    return _RESNETS[num_layers](pretrained, weights_path=weights_path)


class ResnetEncoder(nn.Module):
    """ImageNet-normalising ResNet encoder: Bx3xHxW in [0, 1] -> 5 features at 1/2 .. 1/32 resolution."""

    def __init__(self, num_layers, pretrained, num_input_images=1, weights_path=None):
        super().__init__()
        if num_input_images != 1:
            raise NotImplementedError("MINE uses single-image input (num_input_images=1)")
        self.num_ch_enc = np.array([64, 64, 128, 256, 512])
        self.encoder = resnet(num_layers, pretrained, weights_path)
        if num_layers > 34:
            self.num_ch_enc[1:] *= 4
        # Non-persistent buffers: they follow .to(device) and stay out of the state dict, as in the original.
        self.register_buffer("img_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, input_image):
        """-> conv1_out, block1_out, block2_out, block3_out, block4_out."""
        e = self.encoder
        x = (input_image - self.img_mean) / self.img_std
        conv1_out = e.relu(e.bn1(e.conv1(x)))
        block1_out = e.layer1(e.maxpool(conv1_out))
        block2_out = e.layer2(block1_out)
        block3_out = e.layer3(block2_out)
        block4_out = e.layer4(block3_out)
        return conv1_out, block1_out, block2_out, block3_out, block4_out
