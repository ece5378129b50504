"""Adapters for the golden cases of mipnerf360.internal.{coord, geopoly, ref_utils, image}."""

import torch

from mipnerf360.internal import coord
from tests.golden_adapters import call_args


def _warp_fn(name):
    """The warp a case's static `fn` names: None, 'piecewise', 'contract' or a torch function name."""
    if name is None or name == "piecewise":
        return name
    if name == "contract":
        return coord.contract
    return getattr(torch, name)


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
