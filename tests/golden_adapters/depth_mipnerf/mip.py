"""Adapters for depth_mipnerf.models.mip cases that are not plain positional calls."""


def _by_keyword(case, inputs, function):
    """Every argument by name: `depth` follows the static `white_bkgd` in the manifest's order."""
    return function(**inputs, **case["static"])


ADAPTERS = {
    "depth_mipnerf.models.mip:volumetric_rendering": _by_keyword,
}
