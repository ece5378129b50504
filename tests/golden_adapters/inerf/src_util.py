"""Adapters for inerf.src.util.util cases whose width/height are static values between array arguments."""


def _unproj_map(case, inputs, function):
    """unproj_map(width, height, f, c): c is None (image centre) when the case stores none."""
    return function(case["static"]["width"], case["static"]["height"], inputs["f"], c=inputs.get("c"))


def _gen_rays(case, inputs, function):
    """gen_rays(poses, width, height, focal, z_near, z_far, c): c is None when the case stores none."""
    s = case["static"]
    return function(inputs["poses"], s["width"], s["height"], inputs["focal"], s["z_near"], s["z_far"],
                    c=inputs.get("c"))


ADAPTERS = {
    "inerf.src.util.util:unproj_map": _unproj_map,
    "inerf.src.util.util:gen_rays": _gen_rays,
}
