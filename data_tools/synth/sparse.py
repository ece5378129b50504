"""Sparse ground-truth 3D points: surface samples, their visibility and projections in every view.

Points are back-projected pixel-centre depths of randomly chosen pixels, so they lie exactly on the
surfaces. A point is visible in a view when it projects inside the image in front of the camera and
the ray from the camera centre to the point hits nothing before it (an exact occlusion test on the
analytic scene rather than a comparison with the quantised depth map).
"""

import numpy as np

from data_tools.synth.geometry import trace

VISIBILITY_RTOL = 1e-6  # first hit within this fraction of the distance to the point: the point itself


def backproject(scene, camtoworld, pixels, depth):
    """World points at z-depths `depth` [K] through pixel centres `pixels` [K, 2] (col, row): [K, 3]."""
    cam = np.stack(
        [(pixels[:, 0] + 0.5 - scene.width / 2) / scene.focal, (pixels[:, 1] + 0.5 - scene.height / 2) / scene.focal,
         np.ones(len(pixels))], -1,
    ) * depth[:, None]  # fmt: skip
    return cam @ camtoworld[:3, :3].T + camtoworld[:3, 3]


def project(scene, camtoworlds, points):
    """Pixel coordinates and z-depths of points [P, 3] in views [N, 4, 4]: ([N, P, 2], [N, P])."""
    w2c = np.linalg.inv(camtoworlds)
    cam = np.einsum("nij,pj->npi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
    xy = cam[..., :2] / cam[..., 2:] * scene.focal + np.array([scene.width / 2, scene.height / 2])
    return xy, cam[..., 2]


def sample_points(scene, depths, indices, per_view, rng):
    """Up to per_view surface points from each view's depth map: (xyz [P, 3], primitive index [P]).

    Only pixels that hit something closer than scene.max_point_depth are drawn.
    """
    xyz, index = [], []
    for camtoworld, depth, hit_index in zip(scene.camtoworlds, depths, indices):
        rows, cols = np.nonzero(depth < scene.max_point_depth)
        chosen = rng.choice(len(rows), size=min(per_view, len(rows)), replace=False)
        pixels = np.stack([cols[chosen], rows[chosen]], -1)
        xyz.append(backproject(scene, camtoworld, pixels, depth[rows[chosen], cols[chosen]]))
        index.append(hit_index[rows[chosen], cols[chosen]])
    return np.concatenate(xyz), np.concatenate(index)


def visibility(scene, points):
    """Where each point shows in each view: (visible [N, P] bool, xy [N, P, 2] pixel coordinates)."""
    xy, z = project(scene, scene.camtoworlds, points)
    inside = (z > 0) & (xy >= 0).all(-1) & (xy < [scene.width, scene.height]).all(-1)
    centres = np.broadcast_to(scene.camtoworlds[:, None, :3, 3], xy.shape[:2] + (3,))
    # Rays from each camera centre with the point at t = 1.
    t, _ = trace(scene.primitives, centres.reshape(-1, 3), (points - centres).reshape(-1, 3))
    unoccluded = np.abs(t.reshape(z.shape) - 1) < VISIBILITY_RTOL
    return inside & unoccluded, xy
