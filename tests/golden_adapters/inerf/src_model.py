"""Adapters for inerf.src.model cases: modules built from the case's static values and weights."""

import inspect

import torch
from pyhocon import ConfigFactory


def _state_dict(inputs):
    """{name: tensor} from the case's in_sd_<name> arrays."""
    return {k[len("sd_"):]: v for k, v in inputs.items() if k.startswith("sd_")}


def _positional_encoding(case, inputs, function):
    """PositionalEncoding(**static)(x)."""
    return function(**case["static"])(inputs["x"])


def _constructor_kwargs(cls, static):
    """The static values that are parameters of cls.__init__ (the rest are call arguments)."""
    names = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in static.items() if k in names}


def _resnetfc(case, inputs, function):
    """ResnetFC(d_in, ...) from static with the stored weights, forward(zx, combine_inner_dims).

    combine_inner_dims comes from static, else from an in_combine_inner_dims array, else (1,)."""
    static = case["static"]
    if "combine_inner_dims" in static:
        combine_inner_dims = tuple(static["combine_inner_dims"])
    elif "combine_inner_dims" in inputs:
        combine_inner_dims = tuple(int(d) for d in inputs["combine_inner_dims"].reshape(-1))
    else:
        combine_inner_dims = (1,)
    net = function(**_constructor_kwargs(function, static))
    net.load_state_dict(_state_dict(inputs))
    return net(inputs["zx"], combine_inner_dims=combine_inner_dims)


def _encoder_index(case, inputs, function):
    """SpatialEncoder (custom backbone unless static names one; its weights are unused) with the stored
    latent and scaling and static's index_interp / index_padding; index(uv, None, image_size)."""
    from inerf.src.model.encoder import SpatialEncoder

    kwargs = {"backbone": "custom", "pretrained": False, **_constructor_kwargs(SpatialEncoder, case["static"])}
    encoder = SpatialEncoder(**kwargs)
    encoder.latent = inputs["latent"]
    if "latent_scaling" in inputs:
        encoder.latent_scaling = inputs["latent_scaling"]
    else:  # as forward sets it from the latent's (w, h)
        size = torch.tensor(inputs["latent"].shape[-1:-3:-1], dtype=torch.float32)
        encoder.latent_scaling = size / (size - 1) * 2.0
    image_size = inputs.get("image_size", case["static"].get("image_size", ()))
    if isinstance(image_size, (list, tuple)) and len(image_size) > 0:
        image_size = torch.tensor(image_size, dtype=torch.float32)
    return function(encoder, inputs["uv"], None, image_size)


def _encoded_net(case, inputs, function):
    """PixelNeRFNet from static.conf with the stored MLP weights, encode()d on the stored views."""
    net = function(ConfigFactory.from_dict(case["static"]["conf"]))
    net.load_state_dict(_state_dict(inputs), strict=False)
    net.eval()
    focal, c = inputs.get("focal", case["static"].get("focal")), inputs.get("c", case["static"].get("c"))
    focal = focal if isinstance(focal, torch.Tensor) else torch.tensor(focal, dtype=torch.float32)
    c = c if c is None or isinstance(c, torch.Tensor) else torch.tensor(c, dtype=torch.float32)
    net.encode(inputs["images"], inputs["poses"], focal, c=c)
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
