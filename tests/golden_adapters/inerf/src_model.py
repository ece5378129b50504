"""Adapters for inerf.src.model cases: modules built from the case's static values and weights."""

import pathlib

import numpy as np
import torch
from pyhocon import ConfigFactory

_GOLDEN = pathlib.Path(__file__).parents[2] / "golden" / "inerf"


def _arrays(case):
    """All arrays of the case file (weights and encode() inputs are not among the call args)."""
    return np.load(_GOLDEN / case["case"])


def _state_dict(arrays):
    """{name: tensor} from the in_sd_<name> arrays."""
    return {k[len("in_sd_"):]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith("in_sd_")}


def _positional_encoding(case, inputs, function):
    """PositionalEncoding(**static)(x)."""
    return function(**case["static"])(inputs["x"])


def _resnetfc(case, inputs, function):
    """ResnetFC(d_in, ...) with the stored weights, forward(zx, combine_inner_dims)."""
    static = dict(case["static"])
    combine_inner_dims = tuple(static.pop("combine_inner_dims"))
    net = function(**static)
    net.load_state_dict(_state_dict(_arrays(case)))
    return net(inputs["zx"], combine_inner_dims=combine_inner_dims)


def _encoder_index(case, inputs, function):
    """SpatialEncoder (custom backbone) with the stored latent and scaling; index(uv, None, image_size)."""
    from inerf.src.model.encoder import SpatialEncoder

    arrays = _arrays(case)
    encoder = SpatialEncoder(backbone="custom", pretrained=False, **case["static"])
    encoder.latent = torch.from_numpy(arrays["in_latent"])
    encoder.latent_scaling = torch.from_numpy(arrays["in_latent_scaling"])
    return function(encoder, inputs["uv"], None, inputs["image_size"])


def _encoded_net(case, function):
    """(net, arrays): PixelNeRFNet from static.conf with the stored MLP weights, encode()d."""
    arrays = _arrays(case)
    net = function(ConfigFactory.from_dict(case["static"]["conf"]))
    net.load_state_dict(_state_dict(arrays), strict=False)
    net.eval()
    c = torch.from_numpy(arrays["in_c"]) if "in_c" in arrays.files else None
    net.encode(torch.from_numpy(arrays["in_images"]), torch.from_numpy(arrays["in_poses"]),
               torch.from_numpy(arrays["in_focal"]), c=c)
    return net


def _pixelnerf_forward(case, inputs, function):
    """Coarse and fine outputs at xyz, and the world->camera poses the net stored."""
    net = _encoded_net(case, function)
    coarse = net(inputs["xyz"], coarse=True, viewdirs=inputs["viewdirs"])
    fine = net(inputs["xyz"], coarse=False, viewdirs=inputs["viewdirs"])
    return coarse, fine, net.poses


def _pixelnerf_projection(case, inputs, function):
    """uv and image size passed to encoder.index during forward, and the stored focal and c."""
    net = _encoded_net(case, function)
    seen = {}
    index = net.encoder.index

    def recording_index(uv, cam_z=None, image_size=(), z_bounds=None):
        seen["uv"], seen["image_shape"] = uv.clone(), torch.as_tensor(image_size).clone()
        return index(uv, cam_z, image_size, z_bounds)

    net.encoder.index = recording_index
    net(inputs["xyz"], coarse=True, viewdirs=inputs["viewdirs"])
    return seen["uv"], seen["image_shape"], net.focal, net.c


ADAPTERS = {
    "positional_encoding_0.npz": _positional_encoding,
    "positional_encoding_1.npz": _positional_encoding,
    "resnetfc_0.npz": _resnetfc,
    "resnetfc_1.npz": _resnetfc,
    "encoder_index_0.npz": _encoder_index,
    "encoder_index_1.npz": _encoder_index,
    "pixelnerf_forward_noenc_0.npz": _pixelnerf_forward,
    "pixelnerf_forward_noenc_1.npz": _pixelnerf_forward,
    "pixelnerf_projection_uv_0.npz": _pixelnerf_projection,
}
