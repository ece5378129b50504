# Derived from torchvision's models/resnet.py (BSD-3-Clause licence, Copyright (c) Soumith Chintala 2016; see THIRD_PARTY_NOTICES.md).
# Modified: rewritten in plain torch by the nerf-ports authors.
"""torchvision's ResNets (18 to 152) in plain torch, with its parameter names and initialisation.

State dicts of torchvision's models load strictly. pretrained=True reads torchvision's ImageNet
weights from a local file, an explicit weights_path or else torchvision's own cache file under
torch.hub.get_dir()/checkpoints; nothing is downloaded, a missing file is a warning.
"""

import os
import warnings

import torch
from torch import nn

from common import checkpoints

# torchvision's cache file names of the weights `pretrained=True` loads (IMAGENET1K_V1), newest first:
# the current name, then the one older torchvision releases used.
WEIGHT_FILES = {
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet34": ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
    "resnet101": ("resnet101-63fe2227.pth", "resnet101-5d3b4d8f.pth"),
    "resnet152": ("resnet152-394f9c45.pth", "resnet152-b121ed2d.pth"),
}


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the (optionally downsampled) input (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x):
        """x (B, inplanes, H, W) -> (B, planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, v1.5), 1x1 expand (x4), plus the (optionally downsampled) input."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        """x (B, inplanes, H, W) -> (B, 4 planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet: conv1, bn1, relu, maxpool, layer1..4, avgpool, fc."""

    def __init__(self, block, layers, num_classes=1000, norm_layer=None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, norm_layer)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, norm_layer)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, norm_layer)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, norm_layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride, norm_layer):
        """nn.Sequential of `blocks` blocks, the first one strided (with a 1x1 downsample if needed)."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_layer=norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        """x (B, 3, H, W) -> (B, num_classes)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def imagenet_weight_paths(arch, weights_path=None):
    """Where the ImageNet weights of arch are looked for, in order: [weights_path] if given, else the hub cache."""
    if weights_path is not None:
        return [os.path.expanduser(os.fspath(weights_path))]
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    return [os.path.join(folder, name) for name in WEIGHT_FILES[arch]]


def load_imagenet_weights(model, arch, weights_path=None):
    """Loads torchvision's ImageNet weights of arch into model (strict); warns and returns False if absent."""
    paths = imagenet_weight_paths(arch, weights_path)
    for path in paths:
        if os.path.isfile(path):
            model.load_state_dict(checkpoints.load_checkpoint(path))
            return True
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    warnings.warn(
        f"{arch}: no ImageNet weights found (looked for {', '.join(paths)}); the network keeps its random "
        f"initialisation. Nothing is downloaded: put torchvision's {WEIGHT_FILES[arch][0]} into {folder}, "
        "or pass the file's path as weights_path.")
    return False


_ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def _resnet(arch, pretrained, weights_path, **kwargs):
    """ResNet `arch`; with pretrained, torchvision's ImageNet weights when a local file has them."""
    block, layers = _ARCHS[arch]
    model = ResNet(block, layers, **kwargs)
    if pretrained:
        load_imagenet_weights(model, arch, weights_path)
    return model


def resnet18(pretrained=False, weights_path=None, **kwargs):
    """torchvision.models.resnet18."""
    return _resnet("resnet18", pretrained, weights_path, **kwargs)


def resnet34(pretrained=False, weights_path=None, **kwargs):
    """torchvision.models.resnet34."""
    return _resnet("resnet34", pretrained, weights_path, **kwargs)


def resnet50(pretrained=False, weights_path=None, **kwargs):
    """torchvision.models.resnet50."""
    return _resnet("resnet50", pretrained, weights_path, **kwargs)


def resnet101(pretrained=False, weights_path=None, **kwargs):
    """torchvision.models.resnet101."""
    return _resnet("resnet101", pretrained, weights_path, **kwargs)


def resnet152(pretrained=False, weights_path=None, **kwargs):
    """torchvision.models.resnet152."""
    return _resnet("resnet152", pretrained, weights_path, **kwargs)
