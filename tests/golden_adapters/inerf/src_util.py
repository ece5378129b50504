"""Adapters for inerf.src.util.util cases whose width/height are static values between array arguments."""

import torch


def _array_or_static(case, inputs, name):
    """in_<name> of the case file, else static[name] (a number or a list made a float32 tensor), else None."""
    if name in inputs:
        return inputs[name]
    value = case["static"].get(name)
    if isinstance(value, (list, tuple)):
        return torch.tensor(value, dtype=torch.float32)
    return value


def _unproj_map(case, inputs, function):
    """unproj_map(width, height, f, c): c is None (image centre) when the case gives none."""
    s = case["static"]
    return function(s["width"], s["height"], _array_or_static(case, inputs, "f"),
                    c=_array_or_static(case, inputs, "c"))


def _gen_rays(case, inputs, function):
    """gen_rays(poses, width, height, focal, z_near, z_far, c): c is None when the case gives none."""
    s = case["static"]
    focal = _array_or_static(case, inputs, "focal")
    if not isinstance(focal, torch.Tensor):  # gen_rays squeezes it: a number becomes a 0-d tensor
        focal = torch.tensor(float(focal))
    return function(inputs["poses"], s["width"], s["height"], focal, s["z_near"], s["z_far"],
                    c=_array_or_static(case, inputs, "c"))


ADAPTERS = {
    "inerf.src.util.util:unproj_map": _unproj_map,
    "inerf.src.util.util:gen_rays": _gen_rays,
}
