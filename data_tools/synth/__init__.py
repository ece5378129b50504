"""Procedural test scenes rendered by an exact, supersampled ray tracer, in the usual dataset layouts.

`python -m data_tools.synth --scene {object360,forward,unbounded360} --out DIR` writes:
  object360: NeRF Blender layout (transforms_{train,val,test}.json, RGBA train/r_0.png ...);
  forward: LLFF layout (images/, images_2/, images_4/, poses_bounds.npy, sparse/0);
  unbounded360: mip-NeRF 360 layout (images/, images_{2,4,8}/, sparse/0, poses_bounds.npy);
and for every scene depth/<stem>.npy, points/<stem>.npy and scene.json (see writers.py for their
conventions). The same seed gives the same pixels; another seed gives other textures.
"""

from data_tools.synth.geometry import scene_sdf, trace
from data_tools.synth.render import render_view
from data_tools.synth.scenes import DEFAULTS, SCENES, Scene, build_scene
from data_tools.synth.writers import write_scene

__all__ = ["DEFAULTS", "SCENES", "Scene", "build_scene", "render_view", "scene_sdf", "trace", "write_scene"]
