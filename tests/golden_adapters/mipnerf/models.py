"""Adapters for mipnerf.internal.models cases: a model built from the case, given flax weights."""

import re

import gin
import torch

from mipnerf.internal import models, utils

# The flax parameters are stored leaf by leaf (in_params_MLP_0_Dense_<i>_<kernel|bias>) and the rays
# field by field (in_<field>).
_PARAM = re.compile(r"params_MLP_0_Dense_(\d+)_(kernel|bias)")
# Static values that are call arguments (or another object's settings), not MipNerfModel fields.
_CALL_ARGS = ("randomized", "white_bkgd")
_RAY_FIELDS = ("origins", "directions", "viewdirs", "radii", "lossmult", "near", "far")


def build_model(static):
    """MipNerfModel of the case's static constructor values (`MLP.*` bound through gin), carrying
    the stored flax parameters once load_params is called."""
    model_kwargs = {k: v for k, v in static.items() if "." not in k and k not in _CALL_ARGS}
    model_kwargs["density_activation"] = {"softplus": torch.nn.functional.softplus}[
        model_kwargs["density_activation"]]
    mlp_bindings = [
        f"mipnerf.internal.models.MLP.{k[len('MLP.'):]} = {v!r}"
        for k, v in static.items() if k.startswith("MLP.")]
    try:
        gin.parse_config(mlp_bindings)
        return models.MipNerfModel(**model_kwargs)
    finally:
        gin.clear_config()


def load_params(model, inputs):
    """Loads the flax Dense weights in_params_MLP_0_Dense_<i>_{kernel,bias} of the case."""
    flax_params = {}
    for name, value in inputs.items():
        if match := _PARAM.fullmatch(name):
            flax_params[f"MLP_0/Dense_{match[1]}/{match[2]}"] = value.numpy()
    models.load_flax_params(model, flax_params)
    return model


def rays_of(inputs):
    """The case's rays, stored field by field."""
    return utils.Rays(**{f: inputs[f] for f in _RAY_FIELDS})


def _forward_with_flax_params(case, inputs, function):
    """Builds MipNerfModel from the static values, loads the flax weights and renders the rays."""
    static = case["static"]
    assert function is models.MipNerfModel
    model = load_params(build_model(static), inputs)
    levels = model(None, rays_of(inputs), static["randomized"], static["white_bkgd"])
    return [x for level in levels for x in level]


ADAPTERS = {"mipnerf.internal.models:MipNerfModel": _forward_with_flax_params}
