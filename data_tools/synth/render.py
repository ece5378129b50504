"""Supersampled ray tracing of a Scene: colour, alpha and z-depth of one view.

Colour is Lambert shading of the dead-leaves albedo under one directional light plus ambient light,
averaged over a regular s x s grid of samples inside each pixel. Depth is not averaged: it is the
z-depth (distance along the camera's viewing axis, not along the ray) of one extra ray through the
pixel centre, so back-projecting a depth pixel lands exactly on the surface. Rays that hit nothing
have depth inf.
"""

import numpy as np

from data_tools.synth.geometry import albedo, trace

AMBIENT = 0.45  # share of the light that reaches surfaces facing away from the light
CHUNK = 16384  # rays per numpy batch
SKY_HORIZON, SKY_ZENITH = np.array([0.86, 0.9, 0.95]), np.array([0.3, 0.5, 0.85])


def subpixel_offsets(supersample):
    """Sample positions inside a pixel, pixel centre first, then an s x s grid: [1 + s^2, 2]."""
    grid = (np.arange(supersample) + 0.5) / supersample
    x, y = np.meshgrid(grid, grid, indexing="xy")
    return np.concatenate([[[0.5, 0.5]], np.stack([x.ravel(), y.ravel()], -1)])


def camera_rays(scene, camtoworld, offsets):
    """Rays through (col + ox, row + oy) of every pixel: origins, dirs: [H, W, S, 3].

    Directions have unit z in the camera frame, so the ray parameter of a hit is its z-depth.
    """
    cols, rows = np.meshgrid(np.arange(scene.width), np.arange(scene.height), indexing="xy")
    x = cols[..., None] + offsets[:, 0]
    y = rows[..., None] + offsets[:, 1]
    centre = np.array([scene.width / 2, scene.height / 2])
    cam_dirs = np.stack([(x - centre[0]) / scene.focal, (y - centre[1]) / scene.focal, np.ones_like(x)], -1)
    dirs = cam_dirs @ camtoworld[:3, :3].T
    return np.broadcast_to(camtoworld[:3, 3], dirs.shape), dirs


def surface_colour(scene, points, index):
    """Shaded colour of surface points lying on primitives `index`: [N, 3], [N] -> [N, 3]."""
    colour = np.zeros_like(points)
    for i, prim in enumerate(scene.primitives):
        on_prim = index == i
        if on_prim.any():
            lambert = np.maximum(prim.normal(points[on_prim]) @ scene.light, 0.0)
            shading = AMBIENT + (1 - AMBIENT) * lambert
            colour[on_prim] = albedo(prim, points[on_prim], scene.seed) * shading[:, None]
    return colour


def sky_colour(dirs, up):
    """Gradient from horizon to zenith by elevation: dirs [N, 3] -> [N, 3]."""
    elevation = np.clip((dirs @ up) / np.linalg.norm(dirs, axis=-1), 0.0, 1.0)
    weight = np.sqrt(elevation)[:, None]
    return (1 - weight) * SKY_HORIZON + weight * SKY_ZENITH


def shade_rays(scene, origins, dirs):
    """Colour, hit parameter and primitive of rays: [N, 3] each -> ([N, 3], t [N], index [N]).

    Rays that miss get the sky colour, or 0 with a transparent background.
    """
    t, index = trace(scene.primitives, origins, dirs)
    hit = index >= 0
    colour = np.zeros_like(dirs)
    colour[hit] = surface_colour(scene, origins[hit] + t[hit, None] * dirs[hit], index[hit])
    if not scene.transparent:
        colour[~hit] = sky_colour(dirs[~hit], scene.up)
    return colour, t, index


def render_view(scene, camtoworld, supersample=2, chunk=CHUNK):
    """Renders one view. Returns a dict of [H, W, ...] float64 arrays:

      rgb [H, W, 3]: mean colour of the samples; with a transparent background, the mean over the
        samples that hit (straight, not premultiplied, alpha) and 0 where none did;
      alpha [H, W]: share of samples that hit a surface (all 1 with a sky);
      depth [H, W]: z-depth of the pixel-centre ray, inf where it hits nothing;
      index [H, W]: primitive hit by the pixel-centre ray, -1 for none.
    """
    origins, dirs = camera_rays(scene, camtoworld, subpixel_offsets(supersample))
    shape = dirs.shape[:-1]
    origins, dirs = np.ascontiguousarray(origins).reshape(-1, 3), dirs.reshape(-1, 3)
    # Chunks small enough to stay in the CPU cache make numpy several times faster here.
    colour, t, index = (
        np.concatenate(parts) for parts in zip(*(
            shade_rays(scene, origins[i : i + chunk], dirs[i : i + chunk]) for i in range(0, len(dirs), chunk)
        ))
    )  # fmt: skip
    # Sample 0 of each pixel is its centre ray: depth and index only; the others are the colour samples.
    colour, t, index = colour.reshape(shape + (3,))[..., 1:, :], t.reshape(shape), index.reshape(shape)
    hit = index[..., 1:] >= 0
    if scene.transparent:
        # Edge pixels keep the colour of the surface part only, as Blender's straight-alpha PNGs.
        rgb, alpha = colour.sum(-2) / np.maximum(hit.sum(-1), 1)[..., None], hit.mean(-1)
    else:
        rgb, alpha = colour.mean(-2), np.ones(shape[:2])
    return {"rgb": rgb, "alpha": alpha, "depth": t[..., 0], "index": index[..., 0]}


def to_uint8(image):
    """[0, 1] floats to rounded uint8: [...] -> [...]."""
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
