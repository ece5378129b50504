"""Adapters for inerf.src.util.util cases whose width/height are keywords after array arguments."""


def _unproj_map(case, inputs, function):
    """unproj_map(width, height, f) with c omitted (image centre)."""
    return function(case["static"]["width"], case["static"]["height"], inputs["f"])


def _gen_rays(case, inputs, function):
    """gen_rays(poses, width, height, focal, z_near, z_far) with c omitted."""
    s = case["static"]
    return function(inputs["poses"], s["width"], s["height"], inputs["focal"], s["z_near"], s["z_far"])


ADAPTERS = {
    "inerf.src.util.util:unproj_map": _unproj_map,
    "inerf.src.util.util:gen_rays": _gen_rays,
}
