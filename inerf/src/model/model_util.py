# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Builds the MLP and encoder named by a HOCON config block."""

from inerf.src.model.encoder import ImageEncoder, SpatialEncoder
from inerf.src.model.mlp import ImplicitNet
from inerf.src.model.resnetfc import ResnetFC


def make_mlp(conf, d_in, d_latent=0, allow_empty=False, **kwargs):
    """conf.type mlp (ImplicitNet) | resnet (ResnetFC) | empty (None, if allow_empty)."""
    mlp_type = conf.get_string("type", "mlp")
    if mlp_type == "mlp":
        return ImplicitNet.from_conf(conf, d_in + d_latent, **kwargs)
    if mlp_type == "resnet":
        return ResnetFC.from_conf(conf, d_in, d_latent=d_latent, **kwargs)
    if mlp_type == "empty" and allow_empty:
        return None
    raise NotImplementedError("Unsupported MLP type")


def make_encoder(conf, **kwargs):
    """conf.type spatial (SpatialEncoder) | global (ImageEncoder)."""
    enc_type = conf.get_string("type", "spatial")
    if enc_type == "spatial":
        return SpatialEncoder.from_conf(conf, **kwargs)
    if enc_type == "global":
        return ImageEncoder.from_conf(conf, **kwargs)
    raise NotImplementedError("Unsupported encoder type")
