"""Helpers (no tests): tiny SRN-layout objects, the stand-in's shaded sphere (data_tools.standin.srn_cars)
untinted, seen from a sphere of cameras."""

import pathlib

import imageio.v2 as imageio
import numpy as np

from data_tools.standin import srn_cars
from data_tools.standin.srn_cars import RADIUS, camera_eyes, look_at_opencv  # noqa: F401 (used by the tests)


def render_sphere(c2w, size, focal):
    """(size, size, 3) uint8: the stand-in's sphere coloured by its normal, white where rays miss."""
    return srn_cars.render_sphere(c2w, size, focal, tint=1.0)


def write_srn_object(obj_dir, n_views, size=128, focal=131.25, seed=0):
    """Writes <obj_dir>/{rgb/%06d.png, pose/%06d.txt, intrinsics.txt}; returns the c2w poses."""
    obj_dir = pathlib.Path(obj_dir)
    (obj_dir / "rgb").mkdir(parents=True, exist_ok=True)
    (obj_dir / "pose").mkdir(parents=True, exist_ok=True)
    (obj_dir / "intrinsics.txt").write_text(f"{focal} {size / 2} {size / 2} 0.\n0. 0. 0.\n1.\n{size} {size}\n")
    poses = []
    for k, eye in enumerate(camera_eyes(n_views, seed)):
        c2w = look_at_opencv(eye)
        imageio.imwrite(obj_dir / "rgb" / f"{k:06d}.png", render_sphere(c2w, size, focal))
        (obj_dir / "pose" / f"{k:06d}.txt").write_text(" ".join(f"{v:.8f}" for v in c2w.reshape(-1)) + "\n")
        poses.append(c2w)
    return np.stack(poses)


def write_srn_split(root, split, n_objs, n_views, size=128):
    """<root>/cars_<split>/obj<k>/..., n_objs objects; returns the datadir prefix <root>/cars."""
    for k in range(n_objs):
        write_srn_object(pathlib.Path(root) / f"cars_{split}" / f"obj{k}", n_views, size=size, seed=k)
    return str(pathlib.Path(root) / "cars")
