"""Adapters for mipnerf.internal.datasets method cases: the rays of a stand-in dataset object."""

import dataclasses
import types


def _fields(rays):
    """{field name: value} of a utils.Rays."""
    return {f.name: getattr(rays, f.name) for f in dataclasses.fields(rays)}


def _blender_rays(case, inputs, function):
    """Dataset._generate_rays on an object with w, h, focal, near, far and camtoworlds."""
    stand_in = types.SimpleNamespace(**inputs, **case["static"])
    function(stand_in)
    return _fields(stand_in.rays)


def _multicam_rays(case, inputs, function):
    """Multicam._generate_rays on an object with meta and n_examples; outputs <field>_<image>."""
    meta = dict(inputs)
    stand_in = types.SimpleNamespace(meta=meta, n_examples=len(meta["width"]))
    function(stand_in)
    return {f"{name}_{i}": values[i] for name, values in _fields(stand_in.rays).items()
            for i in range(stand_in.n_examples)}


ADAPTERS = {
    "mipnerf.internal.datasets:Dataset._generate_rays": _blender_rays,
    "mipnerf.internal.datasets:Multicam._generate_rays": _multicam_rays,
}
