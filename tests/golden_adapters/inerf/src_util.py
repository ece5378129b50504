"""Adapters for inerf.src.util.util cases whose width/height are keywords after array arguments."""


def _unproj_map(case, inputs, function):
    """unproj_map(width, height, f) with c omitted (image centre)."""
    return function(case["static"]["width"], case["static"]["height"], inputs["f"])


def _gen_rays(case, inputs, function):
    """gen_rays(poses, width, height, focal, z_near, z_far) with c omitted."""
    s = case["static"]
    return function(inputs["poses"], s["width"], s["height"], inputs["focal"], s["z_near"], s["z_far"])


ADAPTERS = {
    "unproj_map_0.npz": _unproj_map,
    "unproj_map_1.npz": _unproj_map,
    "gen_rays_0.npz": _gen_rays,
    "gen_rays_1.npz": _gen_rays,
}
