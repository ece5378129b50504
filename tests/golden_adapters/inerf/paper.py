"""Adapters for the cases of Part B (salykovaa/inerf): modules built from the case, grads, embedders."""

import torch

from tests.golden_adapters import arg_inputs


def _camera_transf(case, inputs, function):
    """camera_transf with parameters set from the case; forward(x), then (when the case stores
    in_loss_weight) the parameter grads of sum(out * loss_weight)."""
    model = function()
    with torch.no_grad():
        for name in ("w", "v", "theta"):
            getattr(model, name).copy_(inputs[name])
    with torch.enable_grad():
        out = model(inputs["x"])
        if "loss_weight" in inputs:
            (out * inputs["loss_weight"]).sum().backward()
    outputs = {case["outputs"][0]: out}
    outputs.update({f"grad_{name}": getattr(model, name).grad for name in ("w", "v", "theta")})
    return outputs


def _embedder(case, inputs, function):
    """get_embedder(multires, i) -> (embed_fn(x), out_dim)."""
    embed_fn, out_dim = function(**case["static"])
    return [embed_fn(inputs["x"]), torch.tensor(out_dim, dtype=torch.int64)]


def _nerf_mlp(case, inputs, function):
    """NeRF(**static) with the case's state dict, forward(x)."""
    model = function(**case["static"])
    model.load_state_dict({k[len("sd_"):]: v for k, v in inputs.items() if k.startswith("sd_")})
    return model(inputs["x"])


def _find_poi(case, inputs, function):
    """find_POI on the uint8 image (rows come back sorted by x then y, as the case compares them)."""
    return torch.from_numpy(function(inputs["img_rgb"].numpy(), **case["static"]))


def _by_keyword(case, inputs, function):
    """Array and static arguments all by keyword (the static ones come first in the signature)."""
    return function(**case["static"], **arg_inputs(case, inputs))


ADAPTERS = {
    "inerf.render_helpers:get_rays": _by_keyword,
    "inerf.render_helpers:get_rays_np": _by_keyword,
    "inerf.render_helpers:ndc_rays": _by_keyword,
    "inerf.inerf_helpers:camera_transf": _camera_transf,
    "inerf.nerf_helpers:get_embedder": _embedder,
    "inerf.nerf_helpers:NeRF": _nerf_mlp,
    "inerf.utils:find_POI": _find_poi,
}
