"""Adapters for inerf.src.model cases: modules built from the case's static values and weights."""

import torch
from pyhocon import ConfigFactory


def _state_dict(inputs):
    """{name: tensor} from the case's in_sd_<name> arrays."""
    return {k[len("sd_"):]: v for k, v in inputs.items() if k.startswith("sd_")}


def _positional_encoding(case, inputs, function):
    """PositionalEncoding(**static)(x)."""
    return function(**case["static"])(inputs["x"])


def _resnetfc(case, inputs, function):
    """ResnetFC(d_in, ...) with the stored weights, forward(zx, combine_inner_dims)."""
    static = dict(case["static"])
    combine_inner_dims = tuple(static.pop("combine_inner_dims"))
    net = function(**static)
    net.load_state_dict(_state_dict(inputs))
    return net(inputs["zx"], combine_inner_dims=combine_inner_dims)


def _encoder_index(case, inputs, function):
    """SpatialEncoder (custom backbone) with the stored latent and scaling; index(uv, None, image_size)."""
    from inerf.src.model.encoder import SpatialEncoder

    encoder = SpatialEncoder(backbone="custom", pretrained=False, **case["static"])
    encoder.latent = inputs["latent"]
    encoder.latent_scaling = inputs["latent_scaling"]
    return function(encoder, inputs["uv"], None, inputs["image_size"])


def _encoded_net(case, inputs, function):
    """PixelNeRFNet from static.conf with the stored MLP weights, encode()d on the stored views."""
    net = function(ConfigFactory.from_dict(case["static"]["conf"]))
    net.load_state_dict(_state_dict(inputs), strict=False)
    net.eval()
    net.encode(inputs["images"], inputs["poses"], inputs["focal"], c=inputs.get("c"))
    return net


def _pixelnerf(case, inputs, function):
    """Coarse and fine outputs at xyz, the net's stored world->camera poses, focal and c, and the uv and
    image size forward passed to encoder.index (recorded when the net has an encoder): every one the
    case names in its outputs."""
    net = _encoded_net(case, inputs, function)
    seen = {}
    if net.use_encoder:
        index = net.encoder.index

        def recording_index(uv, cam_z=None, image_size=(), z_bounds=None):
            seen["uv"], seen["image_shape"] = uv.clone(), torch.as_tensor(image_size).clone()
            return index(uv, cam_z, image_size, z_bounds)

        net.encoder.index = recording_index
    viewdirs = inputs.get("viewdirs")
    outputs = {"coarse": net(inputs["xyz"], coarse=True, viewdirs=viewdirs)}
    if "fine" in case["outputs"]:
        outputs["fine"] = net(inputs["xyz"], coarse=False, viewdirs=viewdirs)
    outputs.update(seen, poses_w2c=net.poses, focal_internal=net.focal, c_internal=net.c)
    return outputs


ADAPTERS = {
    "inerf.src.model.code:PositionalEncoding": _positional_encoding,
    "inerf.src.model.resnetfc:ResnetFC": _resnetfc,
    "inerf.src.model.encoder:SpatialEncoder.index": _encoder_index,
    "inerf.src.model.models:PixelNeRFNet": _pixelnerf,
}
