"""torchvision's ResNets (18, 34, 50) in plain torch, with its parameter names and initialisation.

ImageNet weights are read from torchvision's cache file names in torch.hub's checkpoint folder;
nothing is downloaded.
"""

import os
import warnings

import torch
from torch import nn

from common import checkpoints

# torchvision's file names for the ImageNet (V1) weights, newest first.
_WEIGHT_FILES = {
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet34": ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
}


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the (optionally downsampled) input."""

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
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), plus the (optionally downsampled) input."""

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


def load_imagenet_weights(model, arch):
    """Loads torchvision's ImageNet weights for arch from torch.hub's cache; warns if absent."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in _WEIGHT_FILES[arch]:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            model.load_state_dict(checkpoints.load_checkpoint(path))
            return True
    warnings.warn(
        f"{arch}: no ImageNet weights in {folder} (expected one of {_WEIGHT_FILES[arch]}); "
        "the encoder starts from a random init (fine when a pixelNeRF checkpoint is loaded next)")
    return False


_ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
          "resnet50": (Bottleneck, [3, 4, 6, 3])}


def _make(arch, pretrained, **kwargs):
    """ResNet `arch`, with torchvision's ImageNet weights when pretrained and cached."""
    block, layers = _ARCHS[arch]
    model = ResNet(block, layers, **kwargs)
    if pretrained:
        load_imagenet_weights(model, arch)
    return model


def resnet18(pretrained=False, **kwargs):
    """torchvision.models.resnet18."""
    return _make("resnet18", pretrained, **kwargs)


def resnet34(pretrained=False, **kwargs):
    """torchvision.models.resnet34."""
    return _make("resnet34", pretrained, **kwargs)


def resnet50(pretrained=False, **kwargs):
    """torchvision.models.resnet50."""
    return _make("resnet50", pretrained, **kwargs)
