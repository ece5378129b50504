"""monodepth2's ResNet encoder on a plain-torch ResNet with torchvision's parameter names.

ImageNet weights come from a local file in torchvision's state-dict format (nothing downloads):
$MINE_RESNET_WEIGHTS, else torchvision's cache file ($TORCH_HOME/hub/checkpoints/resnet<N>-<hash>.pth).
"""

import logging
import os

import numpy as np
import torch
import torch.nn as nn

# File names torchvision 0.9 gives the ImageNet weights of `pretrained=True` in its hub cache.
TORCHVISION_WEIGHT_FILES = {
    18: "resnet18-f37072fd.pth",
    34: "resnet34-b627a593.pth",
    50: "resnet50-0676ba61.pth",
    101: "resnet101-63fe2227.pth",
    152: "resnet152-394f9c45.pth",
}
_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's two-conv residual block (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's bottleneck block, stride on the 3x3 conv (ResNet-50/101/152, v1.5)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet (same module names, so its state dicts load strictly)."""

    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def imagenet_weights_path(num_layers):
    """$MINE_RESNET_WEIGHTS, else torchvision's hub-cache file of resnet<num_layers> (may not exist)."""
    if os.environ.get("MINE_RESNET_WEIGHTS"):
        return os.path.expanduser(os.environ["MINE_RESNET_WEIGHTS"])
    torch_home = os.path.expanduser(os.environ.get("TORCH_HOME", "~/.cache/torch"))
    return os.path.join(torch_home, "hub", "checkpoints", TORCHVISION_WEIGHT_FILES[num_layers])


def resnet(num_layers, pretrained=False, weights_path=None):
    """ResNet-<num_layers>; with pretrained, ImageNet weights from weights_path (torchvision format)."""
    if num_layers not in _BLOCKS:
        raise ValueError(f"{num_layers} is not a valid number of resnet layers (one of {sorted(_BLOCKS)})")
    model = ResNet(BasicBlock if num_layers < 50 else Bottleneck, _BLOCKS[num_layers])
    if pretrained:
        path = weights_path or imagenet_weights_path(num_layers)
        if os.path.isfile(path):
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            logging.getLogger("mine").warning(
                "ImageNet weights for resnet%d not found at %s (set MINE_RESNET_WEIGHTS to a torchvision "
                "state dict); the encoder starts from a random initialisation.", num_layers, path)
    return model


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
