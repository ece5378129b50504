"""pixelNeRF's SRN layout (srn_cars.zip / srn_chairs.zip): <out>/<category>_<split>/<object>/{rgb/%06d.png,
pose/%06d.txt (4x4 camera-to-world, OpenCV axes), intrinsics.txt ("f cx cy 0" first line, "H W" last)}.

Each object is a shaded sphere on white seen from cameras at distance 1.3 (inside SRN cars' z range
0.8-1.8), a different random set of viewpoints per object. The real sets hold 251 test views per
object at 128x128 (pixelNeRF's source views are 64 and 104); `views` and `res` shrink them for tests.
"""

import pathlib

import imageio.v2 as imageio
import numpy as np

CATEGORIES = ['cars', 'chairs']  # the table's scenes: <category>_test/ (srn_cars.zip, srn_chairs.zip)
SPLITS = ('test',)  # pixelNeRF's SRN evaluation reads <category>_test only
OBJECTS = 2  # objects per split in the stand-in
VIEWS = 251  # views per test object in the real sets (so views 64 and 104 exist)
SIZE = 128
FOCAL_128 = 131.25  # SRN cars' focal length at 128 pixels
RADIUS = 0.35  # sphere radius (scene units)
CAM_DIST = 1.3


def scenes(layout):
    """The categories: each is a folder <category>_test of the layout."""
    return list(CATEGORIES)


def look_at_opencv(eye):
    """(4, 4) camera-to-world with OpenCV axes (x right, y down, z forward) looking at the origin."""
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def render_sphere(c2w, size, focal, tint):
    """(size, size, 3) uint8: the sphere coloured by its normal (times tint), white where rays miss."""
    j, i = np.meshgrid(np.arange(size) + 0.0, np.arange(size) + 0.0, indexing='ij')
    dirs = np.stack([(i - size / 2) / focal, (j - size / 2) / focal, np.ones_like(i)], -1) @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = dirs @ o
    disc = b ** 2 - (o @ o - RADIUS ** 2)
    hit = disc > 0
    t = -b - np.sqrt(np.maximum(disc, 0))
    normal = (o + t[..., None] * dirs) / RADIUS
    color = np.where(hit[..., None], (0.15 + 0.7 * (normal * 0.5 + 0.5)) * tint, 1.0)
    return (np.clip(color, 0, 1) * 255).round().astype(np.uint8)


def camera_eyes(n_views, seed):
    """(n_views, 3) camera centres at CAM_DIST, random azimuth, elevation in [-30, 60] degrees."""
    rng = np.random.default_rng(seed)
    az = rng.uniform(0, 2 * np.pi, n_views)
    el = np.deg2rad(rng.uniform(-30, 60, n_views))
    return CAM_DIST * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


def write_object(obj_dir, n_views, size=SIZE, seed=0):
    """Writes <obj_dir>/{rgb/%06d.png, pose/%06d.txt, intrinsics.txt}; returns the (n, 4, 4) poses."""
    obj_dir = pathlib.Path(obj_dir)
    (obj_dir / 'rgb').mkdir(parents=True, exist_ok=True)
    (obj_dir / 'pose').mkdir(parents=True, exist_ok=True)
    focal = FOCAL_128 * size / SIZE
    (obj_dir / 'intrinsics.txt').write_text(f'{focal} {size / 2} {size / 2} 0.\n0. 0. 0.\n1.\n{size} {size}\n')
    tint = 0.6 + 0.4 * np.random.default_rng(1000 + seed).random(3)
    poses = []
    for k, eye in enumerate(camera_eyes(n_views, seed)):
        c2w = look_at_opencv(eye)
        imageio.imwrite(obj_dir / 'rgb' / f'{k:06d}.png', render_sphere(c2w, size, focal, tint))
        (obj_dir / 'pose' / f'{k:06d}.txt').write_text(' '.join(f'{v:.8f}' for v in c2w.reshape(-1)) + '\n')
        poses.append(c2w)
    return np.stack(poses)


def write(layout, out, names, res=None, views=None):
    """Writes out/<category>_test/obj<k>/ for each named category; -> the <category>_test folders."""
    unknown = sorted(set(names) - set(CATEGORIES))
    if unknown:
        raise ValueError(f'{layout} has no category {unknown}; its categories: {CATEGORIES}')
    width, height = res or (SIZE, SIZE)
    if width != height:
        raise ValueError(f'SRN images are square; got {width}x{height}')
    written = []
    for c, name in enumerate(names):
        for split in SPLITS:
            folder = pathlib.Path(out) / f'{name}_{split}'
            for k in range(OBJECTS):
                write_object(folder / f'obj{k}', views or VIEWS, size=width, seed=100 * c + k)
            written.append(folder)
    return written
