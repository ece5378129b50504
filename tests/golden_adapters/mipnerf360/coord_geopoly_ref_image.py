"""Adapters for the golden cases of mipnerf360.internal.{coord, geopoly, ref_utils, image}."""

import torch

from mipnerf360.internal import coord
from tests.golden_adapters import call_args

# The coord warps a case may name (multinerf's configs bind @coord.contract).
_COORD_WARPS = {"contract": coord.contract, "inv_contract": coord.inv_contract}
# The jnp functions construct_ray_warps accepts (it finds the inverse by __name__), as torch's.
_TORCH_WARPS = {
    "reciprocal": torch.reciprocal,
    "log": torch.log,
    "exp": torch.exp,
    "sqrt": torch.sqrt,
    "square": torch.square,
}


def _warp_fn(name):
    """The warp a case's static `fn` names: None, 'piecewise', a coord warp ('contract',
    'inv_contract') or a jnp function ('reciprocal', 'log', 'exp', 'sqrt', 'square') as the port's
    torch equivalent. A gin-style or qualified name ('@jnp.log', 'coord.contract') is read by its
    last component."""
    if name is None or name == "piecewise":
        return name
    short = name.lstrip("@").rsplit(".", 1)[-1]
    if short in _COORD_WARPS:
        return _COORD_WARPS[short]
    if short in _TORCH_WARPS:
        return _TORCH_WARPS[short]
    raise KeyError(f"static fn {name!r} names no warp the port has")


def track_linearize(case, inputs, function):
    return function(_warp_fn(case["static"]["fn"]), inputs["mean"], inputs["cov"])


def construct_ray_warps(case, inputs, function):
    t_to_s, s_to_t = function(_warp_fn(case["static"]["fn"]), inputs["t_near"], inputs["t_far"])
    return t_to_s(inputs["t"]), s_to_t(inputs["s"])


def compute_sq_dist(case, inputs, function):
    """geopoly is numpy, as in the original (it builds a constant basis)."""
    return function(inputs["mat0"].numpy(), inputs["mat1"].numpy())


def encoding_fn(case, inputs, function):
    """generate_ide_fn(deg_view)(xyz, kappa_inv) and generate_dir_enc_fn(deg_view)(xyz)."""
    return function(**case["static"])(*call_args(case, inputs))


def metric_harness(case, inputs, function):
    return function()(inputs["rgb_pred"], inputs["rgb_gt"])


ADAPTERS = {
    "mipnerf360.internal.coord:track_linearize": track_linearize,
    "mipnerf360.internal.coord:construct_ray_warps": construct_ray_warps,
    "mipnerf360.internal.geopoly:compute_sq_dist": compute_sq_dist,
    "mipnerf360.internal.ref_utils:generate_ide_fn": encoding_fn,
    "mipnerf360.internal.ref_utils:generate_dir_enc_fn": encoding_fn,
    "mipnerf360.internal.image:MetricHarness": metric_harness,
}
