# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Image encoders: pixel-aligned ResNet feature maps (SpatialEncoder) and a global ResNet feature."""

import torch
import torch.nn.functional as F
from torch import nn

from common import resnet
from inerf.src import util
from inerf.src.model.custom_encoder import ConvEncoder


class SpatialEncoder(nn.Module):
    """Multi-scale ResNet features upsampled to the first stage and stacked; sampled at pixels by index.

    backbone: "custom" (ConvEncoder) or resnet18/34/50; num_layers 1-5 stages (4: 512 channels).
    """

    def __init__(self, backbone="resnet34", pretrained=True, num_layers=4, index_interp="bilinear",
                 index_padding="border", upsample_interp="bilinear", feature_scale=1.0,
                 use_first_pool=True, norm_type="batch"):
        super().__init__()
        if norm_type != "batch":
            assert not pretrained
        self.use_custom_resnet = backbone == "custom"
        self.feature_scale = feature_scale
        self.use_first_pool = use_first_pool
        norm_layer = util.get_norm_layer(norm_type)
        if self.use_custom_resnet:
            print("WARNING: Custom encoder is experimental only")
            self.model = ConvEncoder(3, norm_layer=norm_layer)
            self.latent_size = self.model.dims[-1]
        else:
            print("Using", backbone, "encoder")
            self.model = getattr(resnet, backbone)(pretrained=pretrained, norm_layer=norm_layer)
            # Emptied as in the release, so checkpoints hold no fc weights.
            self.model.fc = nn.Sequential()
            self.model.avgpool = nn.Sequential()
            self.latent_size = [0, 64, 128, 256, 512, 1024][num_layers]
        self.num_layers = num_layers
        self.index_interp = index_interp
        self.index_padding = index_padding
        self.upsample_interp = upsample_interp
        self.register_buffer("latent", torch.empty(1, 1, 1, 1), persistent=False)
        self.register_buffer("latent_scaling", torch.empty(2, dtype=torch.float32), persistent=False)

    def index(self, uv, cam_z=None, image_size=(), z_bounds=None):
        """uv (B, N, 2) pixel coords (x, y) in an image of image_size (W, H) -> features (B, L, N).

        With an empty image_size, uv is taken as already in [-1, 1]. cam_z, z_bounds: ignored.
        """
        if uv.shape[0] == 1 and self.latent.shape[0] > 1:
            uv = uv.expand(self.latent.shape[0], -1, -1)
        if len(image_size) > 0:
            if len(image_size) == 1:
                image_size = (image_size, image_size)
            uv = uv * (self.latent_scaling / image_size) - 1.0
        samples = F.grid_sample(self.latent, uv.unsqueeze(2), align_corners=True,
                                mode=self.index_interp, padding_mode=self.index_padding)
        return samples[:, :, :, 0]

    def forward(self, x):
        """x (B, 3, H, W) in [-1, 1] -> latent (B, latent_size, H', W') (also kept in self.latent)."""
        if self.feature_scale != 1.0:
            x = F.interpolate(x, scale_factor=self.feature_scale,
                              mode="bilinear" if self.feature_scale > 1.0 else "area",
                              align_corners=True if self.feature_scale > 1.0 else None,
                              recompute_scale_factor=True)
        x = x.to(device=self.latent.device)
        if self.use_custom_resnet:
            self.latent = self.model(x)
        else:
            x = self.model.relu(self.model.bn1(self.model.conv1(x)))
            latents = [x]
            stages = [self.model.layer1, self.model.layer2, self.model.layer3, self.model.layer4]
            for i, stage in enumerate(stages[: self.num_layers - 1]):
                if i == 0 and self.use_first_pool:
                    x = self.model.maxpool(x)
                x = stage(x)
                latents.append(x)
            self.latents = latents
            # as released: the comparison has a trailing space, so align_corners is always True
            align_corners = None if self.index_interp == "nearest " else True
            latent_sz = latents[0].shape[-2:]
            latents = [F.interpolate(lat, latent_sz, mode=self.upsample_interp, align_corners=align_corners)
                       for lat in latents]
            self.latent = torch.cat(latents, dim=1)
        size = torch.tensor([self.latent.shape[-1], self.latent.shape[-2]], dtype=torch.float32,
                            device=self.latent.device)
        self.latent_scaling = size / (size - 1) * 2.0
        return self.latent

    @classmethod
    def from_conf(cls, conf):
        """From a HOCON `encoder` block."""
        return cls(
            conf.get_string("backbone"),
            pretrained=conf.get_bool("pretrained", True),
            num_layers=conf.get_int("num_layers", 4),
            index_interp=conf.get_string("index_interp", "bilinear"),
            index_padding=conf.get_string("index_padding", "border"),
            upsample_interp=conf.get_string("upsample_interp", "bilinear"),
            feature_scale=conf.get_float("feature_scale", 1.0),
            use_first_pool=conf.get_bool("use_first_pool", True),
        )


class ImageEncoder(nn.Module):
    """Global image feature: ResNet average-pooled output (512), projected to latent_size if different."""

    def __init__(self, backbone="resnet34", pretrained=True, latent_size=128):
        super().__init__()
        self.model = getattr(resnet, backbone)(pretrained=pretrained)
        self.model.fc = nn.Sequential()
        self.register_buffer("latent", torch.empty(1, 1), persistent=False)
        self.latent_size = latent_size
        if latent_size != 512:
            self.fc = nn.Linear(512, latent_size)

    def index(self, uv, cam_z=None, image_size=(), z_bounds=()):
        """uv (B, N, 2), used for its shape only -> latent (B, L, N)."""
        return self.latent.unsqueeze(-1).expand(-1, -1, uv.shape[1])

    def forward(self, x):
        """x (B, 3, H, W) -> latent (B, latent_size)."""
        x = x.to(device=self.latent.device)
        x = self.model.maxpool(self.model.relu(self.model.bn1(self.model.conv1(x))))
        x = self.model.layer4(self.model.layer3(self.model.layer2(self.model.layer1(x))))
        x = torch.flatten(self.model.avgpool(x), 1)
        if self.latent_size != 512:
            x = self.fc(x)
        self.latent = x
        return self.latent

    @classmethod
    def from_conf(cls, conf):
        """From a HOCON `global_encoder` block."""
        return cls(conf.get_string("backbone"), pretrained=conf.get_bool("pretrained", True),
                   latent_size=conf.get_int("latent_size", 128))
