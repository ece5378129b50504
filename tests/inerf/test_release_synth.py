"""Helpers (no tests): a tiny SRN-layout object, a shaded sphere on white seen from a sphere of cameras."""

import pathlib

import imageio.v2 as imageio
import numpy as np

RADIUS = 0.35  # sphere radius (scene units)
CAM_DIST = 1.3  # camera distance, inside SRN cars' [0.8, 1.8] bounds


def look_at_opencv(eye):
    """(4, 4) camera-to-world with OpenCV axes (x right, y down, z forward) looking at the origin."""
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def render_sphere(c2w, size, focal):
    """(size, size, 3) uint8: the sphere coloured by its normal, white where rays miss."""
    j, i = np.meshgrid(np.arange(size) + 0.0, np.arange(size) + 0.0, indexing="ij")
    dirs_cam = np.stack([(i - size / 2) / focal, (j - size / 2) / focal, np.ones_like(i)], -1)
    dirs = dirs_cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = dirs @ o
    disc = b ** 2 - (o @ o - RADIUS ** 2)
    hit = disc > 0
    t = -b - np.sqrt(np.maximum(disc, 0))
    normal = (o + t[..., None] * dirs) / RADIUS
    color = np.where(hit[..., None], 0.15 + 0.7 * (normal * 0.5 + 0.5), 1.0)
    return (color * 255).round().astype(np.uint8)


def camera_eyes(n_views, seed):
    """(n_views, 3) camera centres at CAM_DIST, random azimuth, elevation in [-30, 60] degrees."""
    rng = np.random.default_rng(seed)
    az = rng.uniform(0, 2 * np.pi, n_views)
    el = np.deg2rad(rng.uniform(-30, 60, n_views))
    return CAM_DIST * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


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
