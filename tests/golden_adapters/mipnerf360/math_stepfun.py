"""Adapters for mipnerf360.internal.math / stepfun cases that are not plain calls."""

import torch

from tests.golden_adapters import call_args


def _safe_exp(case, inputs, function):
    """safe_exp(x); a case whose output is `grad` holds d/dx sum(safe_exp(x)) instead, taken with
    torch.autograd through the port."""
    if case["outputs"] != ["grad"]:
        return function(inputs["x"])
    x = inputs["x"].clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(function(x).sum(), x)
    return grad


def _rng_first(case, inputs, function):
    """sample / sample_intervals take rng as their first positional argument."""
    static = dict(case["static"])
    rng = static.pop("rng")
    assert rng is None, "these cases are the deterministic path"
    return function(rng, *call_args(case, inputs), **static)


ADAPTERS = {
    "mipnerf360.internal.math:safe_exp": _safe_exp,
    "mipnerf360.internal.stepfun:sample": _rng_first,
    "mipnerf360.internal.stepfun:sample_intervals": _rng_first,
}
