"""Adapters for mipnerf.internal.datasets method cases: the rays of a stand-in dataset object."""

import dataclasses
import pathlib
import types

import numpy as np
import torch

# The method cases keep their inputs as in_<attribute>, which the harness passes only for `args`.
_GOLDEN = pathlib.Path(__file__).parents[2] / "golden" / "mipnerf"


def _fields(rays):
    """{field name: value} of a utils.Rays."""
    return {f.name: getattr(rays, f.name) for f in dataclasses.fields(rays)}


def _attributes(case):
    """{attribute: tensor} of the case's in_* arrays."""
    arrays = np.load(_GOLDEN / case["case"])
    return {k[3:]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith("in_")}


def _blender_rays(case, inputs, function):
    """Dataset._generate_rays on an object with w, h, focal, near, far and camtoworlds."""
    stand_in = types.SimpleNamespace(**_attributes(case), **case["static"])
    function(stand_in)
    return _fields(stand_in.rays)


def _multicam_rays(case, inputs, function):
    """Multicam._generate_rays on an object with meta and n_examples; outputs <field>_<image>."""
    meta = _attributes(case)
    stand_in = types.SimpleNamespace(meta=meta, n_examples=len(meta["width"]))
    function(stand_in)
    return {f"{name}_{i}": values[i] for name, values in _fields(stand_in.rays).items()
            for i in range(stand_in.n_examples)}


ADAPTERS = {
    "datasets_blender_generate_rays.npz": _blender_rays,
    "datasets_multicam_generate_rays.npz": _multicam_rays,
}
