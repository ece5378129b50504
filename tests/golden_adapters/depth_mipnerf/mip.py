"""Adapters for depth_mipnerf.models.mip cases that are not plain positional calls."""

from tests.golden_adapters import arg_inputs


def _by_keyword(case, inputs, function):
    """Every argument by name: `depth` follows the static `white_bkgd` in the manifest's order."""
    return function(**arg_inputs(case, inputs), **case["static"])


ADAPTERS = {
    "depth_mipnerf.models.mip:volumetric_rendering": _by_keyword,
}
