# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's networks; make_model builds the one named by a HOCON `model` block."""

from .models import PixelNeRFNet


def make_model(conf, *args, **kwargs):
    """PixelNeRFNet for conf.type pixelnerf (the only type)."""
    model_type = conf.get_string("type", "pixelnerf")
    if model_type == "pixelnerf":
        return PixelNeRFNet(conf, *args, **kwargs)
    raise NotImplementedError("Unsupported model type", model_type)
