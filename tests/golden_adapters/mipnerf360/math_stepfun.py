"""Adapters for mipnerf360.internal.math / stepfun cases that are not plain calls."""

import torch


def _safe_exp_grad(case, inputs, function):
    """out_grad = d/dx sum(safe_exp(x)), taken with torch.autograd through the port."""
    x = inputs["x"].clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(function(x).sum(), x)
    return grad


def _rng_first(case, inputs, function):
    """sample / sample_intervals take rng as their first positional argument."""
    static = dict(case["static"])
    rng = static.pop("rng")
    assert rng is None, "these cases are the deterministic path"
    return function(rng, *(inputs[name] for name in case["args"]), **static)


ADAPTERS = {
    "math_safe_exp_grad.npz": _safe_exp_grad,
    "mipnerf360.internal.stepfun:sample": _rng_first,
    "mipnerf360.internal.stepfun:sample_intervals": _rng_first,
}
