# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Camera poses, render paths and ray generation (multinerf's internal/camera_utils.py).

Pose and path utilities work on numpy float64 arrays, as multinerf's data loaders do. Ray generation
(intrinsics, undistortion, pixels_to_rays, NDC) is torch and delegates to `common.cameras`, which
implements the same math (pixel centres at +.5, the same Newton undistortion); poses here are
OpenGL camera-to-world matrices, as everywhere in multinerf.
"""

import numpy as np
import scipy.interpolate
import torch

from common import cameras
from mipnerf360.internal import math, stepfun, utils

ProjectionType = cameras.ProjectionType
convert_to_ndc = cameras.convert_to_ndc
intrinsic_matrix = cameras.intrinsic_matrix
get_pixtocam = cameras.get_pixtocam
pixel_coordinates = cameras.pixel_coordinates

# Constants of generate_spiral_path().
NEAR_STRETCH = 0.9  # Pulls the near bound closer for the forward-facing render path.
FAR_STRETCH = 5.0  # Pushes the far bound back for the forward-facing render path.
FOCUS_DISTANCE = 0.75  # Weight of the far bound (in disparity) in the spiral's focus depth.


def pad_poses(p):
    """Appends the homogeneous row [0, 0, 0, 1]: [..., 3, 4] -> [..., 4, 4]."""
    bottom = np.broadcast_to([0, 0, 0, 1.0], p[..., :1, :4].shape)
    return np.concatenate([p[..., :3, :4], bottom], axis=-2)


def unpad_poses(p):
    """Drops the homogeneous row: [..., 4, 4] -> [..., 3, 4]."""
    return p[..., :3, :4]


def recenter_poses(poses):
    """Poses [N, 3, 4] in the frame of their average pose; returns (poses, transform [4, 4])."""
    cam2world = average_pose(poses)
    transform = np.linalg.inv(pad_poses(cam2world))
    poses = transform @ pad_poses(poses)
    return unpad_poses(poses), transform


def average_pose(poses):
    """Pose [3, 4] at the mean position, looking along the mean z axis with the mean up: poses [N, 3, 4]."""
    position = poses[:, :3, 3].mean(0)
    z_axis = poses[:, :3, 2].mean(0)
    up = poses[:, :3, 1].mean(0)
    return viewmatrix(z_axis, up, position)


def viewmatrix(lookdir, up, position):
    """Camera-to-world [..., 3, 4] with z along lookdir, y towards up: lookdir, up, position [..., 3]."""
    lookdir, up, position = np.broadcast_arrays(lookdir, up, position)
    vec2 = normalize(lookdir)
    vec0 = normalize(np.cross(up, vec2))
    vec1 = normalize(np.cross(vec2, vec0))
    return np.stack([vec0, vec1, vec2, position], axis=-1)


def normalize(x):
    """Unit vectors along x: [..., 3]."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def focus_point_fn(poses):
    """Point [3] nearest (least squares) to every camera's optical axis: poses [N, 3, 4]."""
    directions, origins = poses[:, :3, 2:3], poses[:, :3, 3:4]
    m = np.eye(3) - directions * np.transpose(directions, [0, 2, 1])
    mt_m = np.transpose(m, [0, 2, 1]) @ m
    return np.linalg.inv(mt_m.mean(0)) @ (mt_m @ origins).mean(0)[:, 0]


def generate_spiral_path(poses, bounds, n_frames=120, n_rots=2, zrate=0.5):
    """Forward-facing spiral path [n_frames, 3, 4] around the average pose: poses [N, 3, 4], bounds [N, 2]."""
    # Focus depth: a weighted mean of stretched near and far bounds in disparity.
    near_bound = bounds.min() * NEAR_STRETCH
    far_bound = bounds.max() * FAR_STRETCH
    focal = 1 / ((1 - FOCUS_DISTANCE) / near_bound + FOCUS_DISTANCE / far_bound)

    # The spiral's radii are the 90th percentiles of the camera offsets.
    radii = np.percentile(np.abs(poses[:, :3, 3]), 90, 0)
    radii = np.concatenate([radii, [1.0]])

    cam2world = average_pose(poses)
    up = poses[:, :3, 1].mean(0)
    theta = np.linspace(0.0, 2.0 * np.pi * n_rots, n_frames, endpoint=False)
    offsets = np.stack(
        [np.cos(theta), -np.sin(theta), -np.sin(theta * zrate), np.ones_like(theta)], axis=-1
    )
    positions = (radii * offsets) @ cam2world.T
    # Every frame looks at the point at depth focal in front of the average camera.
    lookat = cam2world @ [0, 0, -focal, 1.0]
    return viewmatrix(positions - lookat, up, positions)


def _orthonormal_axes_like(covariance, axes):
    """Orthonormal eigenvectors [3, 3] (rows) of covariance [3, 3] by decreasing eigenvalue, signed as axes."""
    _, eigvec = np.linalg.eigh(covariance)
    rot = eigvec[:, ::-1].T  # eigh sorts eigenvalues in increasing order.
    # eigh's signs are as arbitrary as eig's: taking eig's makes both agree where eigenvalues differ.
    return np.where(np.sum(rot * axes, axis=-1, keepdims=True) < 0, -rot, rot)


def transform_poses_pca(poses, use_eigh=False):
    """Poses [N, 3, 4] with their positions' principal axes on x, y, z and in [-1, 1]^3.

    Returns (poses, transform [4, 4]), transform being applied to the camera-to-world matrices.
    With a repeated eigenvalue (e.g. a circular orbit) np.linalg.eig may return non-orthogonal
    eigenvectors, which skews the poses; use_eigh=True (not in multinerf) takes eigh's orthonormal ones.
    """
    t = poses[:, :3, 3]
    t_mean = t.mean(axis=0)
    t = t - t_mean

    eigval, eigvec = np.linalg.eig(t.T @ t)
    # Principal axes by decreasing eigenvalue.
    inds = np.argsort(eigval)[::-1]
    rot = eigvec[:, inds].T
    if use_eigh:
        rot = _orthonormal_axes_like(t.T @ t, rot)
    # A reflection is not a pose: flip the third axis to make the rotation proper.
    if np.linalg.det(rot) < 0:
        rot = np.diag(np.array([1, 1, -1])) @ rot

    transform = np.concatenate([rot, rot @ -t_mean[:, None]], -1)
    poses_recentered = unpad_poses(transform @ pad_poses(poses))
    transform = np.concatenate([transform, np.eye(4)[3:]], axis=0)

    # Make the cameras' mean up vector point towards +z.
    if poses_recentered.mean(axis=0)[2, 1] < 0:
        poses_recentered = np.diag(np.array([1, -1, -1])) @ poses_recentered
        transform = np.diag(np.array([1, -1, -1, 1])) @ transform

    scale_factor = 1.0 / np.max(np.abs(poses_recentered[:, :3, 3]))
    poses_recentered[:, :3, 3] *= scale_factor
    transform = np.diag(np.array([scale_factor] * 3 + [1])) @ transform
    return poses_recentered, transform


def generate_ellipse_path(poses, n_frames=120, const_speed=True, z_variation=0.0, z_phase=0.0):
    """Elliptical path [n_frames, 3, 4] in the xy plane around the focus point of PCA-aligned poses."""
    center = focus_point_fn(poses)
    # The path sits at height z = 0, the middle of the zero-mean capture.
    offset = np.array([center[0], center[1], 0])

    # Axes from the 90th percentiles of the camera offsets, symmetric about the focus point in xy.
    sc = np.percentile(np.abs(poses[:, :3, 3] - offset), 90, axis=0)
    low = -sc + offset
    high = sc + offset
    # The optional height variation spans the 10th to 90th percentiles of camera heights.
    z_low = np.percentile(poses[:, :3, 3], 10, axis=0)
    z_high = np.percentile(poses[:, :3, 3], 90, axis=0)

    def get_positions(theta):
        """Ellipse points [..., 3] at angles theta."""
        return np.stack(
            [
                low[0] + (high - low)[0] * (np.cos(theta) * 0.5 + 0.5),
                low[1] + (high - low)[1] * (np.sin(theta) * 0.5 + 0.5),
                z_variation
                * (z_low[2] + (z_high - z_low)[2] * (np.cos(theta + 2 * np.pi * z_phase) * 0.5 + 0.5)),
            ],
            -1,
        )

    theta = np.linspace(0, 2.0 * np.pi, n_frames + 1, endpoint=True)
    positions = get_positions(theta)

    if const_speed:
        # Resample the angles in proportion to arc length so the camera moves at a near-constant speed,
        # in float32 like multinerf's jnp stepfun.sample.
        lengths = np.linalg.norm(positions[1:] - positions[:-1], axis=-1)
        theta = stepfun.sample(
            None,
            torch.tensor(theta, dtype=torch.float32),
            torch.tensor(np.log(lengths), dtype=torch.float32),
            n_frames + 1,
        ).numpy()
        positions = get_positions(theta)

    # The last position repeats the first.
    positions = positions[:-1]

    # Up is the world axis closest to the cameras' mean up vector.
    avg_up = poses[:, :3, 1].mean(0)
    avg_up = avg_up / np.linalg.norm(avg_up)
    ind_up = np.argmax(np.abs(avg_up))
    up = np.eye(3)[ind_up] * np.sign(avg_up[ind_up])
    return viewmatrix(positions - center, up, positions)


def generate_interpolated_path(poses, n_interp, spline_degree=5, smoothness=0.03, rot_weight=0.1):
    """Smoothing B-spline path [n_interp * (N - 1), 3, 4] through keyframe poses [N, 3, 4].

    The spline runs through (position, look-at point, up point) triples; rot_weight is the distance of
    the last two from the position, weighting rotation against translation in the fit.
    """
    pos = poses[:, :3, -1]
    lookat = pos - rot_weight * poses[:, :3, 2]
    up = pos + rot_weight * poses[:, :3, 1]
    points = np.stack([pos, lookat, up], 1)

    n = n_interp * (points.shape[0] - 1)
    # splprep needs more points than the spline degree.
    k = min(spline_degree, points.shape[0] - 1)
    tck, _ = scipy.interpolate.splprep(points.reshape(points.shape[0], -1).T, k=k, s=smoothness)
    u = np.linspace(0, 1, n, endpoint=False)
    new_points = np.array(scipy.interpolate.splev(u, tck)).T.reshape(n, 3, 3)
    pos, lookat, up = new_points[:, 0], new_points[:, 1], new_points[:, 2]
    return viewmatrix(pos - lookat, up - pos, pos)


def interpolate_1d(x, n_interp, spline_degree, smoothness):
    """Smoothing spline resampling of a 1-d signal x [N] to n_interp * (N - 1) values."""
    t = np.linspace(0, 1, len(x), endpoint=True)
    tck = scipy.interpolate.splrep(t, x, s=smoothness, k=spline_degree)
    n = n_interp * (len(x) - 1)
    u = np.linspace(0, 1, n, endpoint=False)
    return scipy.interpolate.splev(u, tck)


def create_render_spline_path(config, image_names, poses, exposures):
    """Spline render path through the keyframes named by config.render_spline_keyframes.

    The keyframes are the file names in that directory or the lines of that text file.
    Returns (spline_indices, render_poses, render_exposures or None).
    """
    keyframes_path = config.render_spline_keyframes
    if utils.isdir(keyframes_path):
        keyframe_names = sorted(utils.listdir(keyframes_path))
    else:
        with utils.open_file(keyframes_path, "r") as fp:
            keyframe_names = fp.read().splitlines()
    spline_indices = np.array([i for i, n in enumerate(image_names) if n in keyframe_names])
    render_poses = generate_interpolated_path(
        poses[spline_indices],
        n_interp=config.render_spline_n_interp,
        spline_degree=config.render_spline_degree,
        smoothness=config.render_spline_smoothness,
        rot_weight=0.1,
    )
    if not config.render_spline_interpolate_exposure:
        return spline_indices, render_poses, None
    if exposures is None:
        raise ValueError(
            "config.render_spline_interpolate_exposure is True but "
            "create_render_spline_path() was passed exposures=None."
        )
    # Strong smoothing of the log exposure: keeps the rendered video from flickering.
    log_exposure = np.log(exposures[spline_indices])
    log_exposure_interp = interpolate_1d(
        log_exposure, config.render_spline_n_interp, spline_degree=5, smoothness=20
    )
    return spline_indices, render_poses, np.exp(log_exposure_interp)


def _compute_residual_and_jacobian(x, y, xd, yd, k1=0.0, k2=0.0, k3=0.0, k4=0.0, p1=0.0, p2=0.0):
    """Residual of distort(x, y) against (xd, yd) and its Jacobian: (fx, fy, fx_x, fx_y, fy_x, fy_y)."""
    params = (k1, k2, k3, k4, p1, p2)
    x_distorted, y_distorted = cameras.radial_and_tangential_distort(x, y, *params)
    fx_x, fx_y, fy_y = cameras._distortion_jacobian(x, y, *params)
    # The Jacobian is symmetric: fy_x == fx_y.
    return x_distorted - xd, y_distorted - yd, fx_x, fx_y, fx_y, fy_y


def _radial_and_tangential_undistort(
    xd, yd, k1=0, k2=0, k3=0, k4=0, p1=0, p2=0, eps=1e-9, max_iterations=10
):
    """Undistorted normalised coordinates (x, y) of (xd, yd) [...], by Newton's method."""
    return cameras.radial_and_tangential_undistort(
        xd, yd, k1, k2, k3, k4, p1, p2, eps=eps, max_iterations=max_iterations
    )


def pixels_to_rays(
    pix_x_int,
    pix_y_int,
    pixtocams,
    camtoworlds,
    distortion_params=None,
    pixtocam_ndc=None,
    camtype=ProjectionType.PERSPECTIVE,
):
    """Rays through the centres of pixels (pix_x_int, pix_y_int) [...] of OpenGL cameras.

    Args:
      pixtocams: inverse intrinsics broadcastable to [..., 3, 3].
      camtoworlds: OpenGL camera-to-world matrices broadcastable to [..., 3, 4].
      distortion_params: dict of k1, k2, k3, k4, p1, p2, or None.
      pixtocam_ndc: [3, 3] inverse intrinsics of the NDC camera, or None for world-space rays.
      camtype: ProjectionType (or its name).

    Returns:
      origins, directions, viewdirs: [..., 3]; radii: [..., 1] mip-NeRF cone radii;
      imageplane: [..., 2] the pixel centre's (x, y) on the OpenGL image plane at z = -1.
    """
    origins, directions, viewdirs, radii = cameras.pixels_to_rays(
        pix_x_int,
        pix_y_int,
        pixtocams,
        camtoworlds,
        distortion_params=distortion_params,
        camtype=camtype,
        opencv=False,
        pixtocam_ndc=pixtocam_ndc,
    )
    camera_dirs = cameras.pixels_to_camera_dirs(
        pix_x_int + 0.5, pix_y_int + 0.5, pixtocams, distortion_params, camtype
    )
    # OpenCV -> OpenGL: the image plane's y axis points up.
    imageplane = camera_dirs[..., :2] * camera_dirs.new_tensor([1.0, -1.0])
    return origins, directions, viewdirs, radii, imageplane


def cast_ray_batch(cameras, pixels, camtype=ProjectionType.PERSPECTIVE):
    """utils.Rays of a utils.Pixels batch [...] seen by cameras.

    cameras: (pixtocams, camtoworlds, distortion_params, pixtocam_ndc), with pixtocams [3, 3] or
    [N, 3, 3] and camtoworlds [3, 4] or [N, 3, 4]; stacked ones are indexed by pixels.cam_idx.
    """
    pixtocams, camtoworlds, distortion_params, pixtocam_ndc = cameras
    cam_idx = pixels.cam_idx[..., 0]

    def batch_index(arr):
        return arr if arr.ndim == 2 else arr[cam_idx]

    origins, directions, viewdirs, radii, imageplane = pixels_to_rays(
        pixels.pix_x_int,
        pixels.pix_y_int,
        batch_index(pixtocams),
        batch_index(camtoworlds),
        distortion_params=distortion_params,
        pixtocam_ndc=pixtocam_ndc,
        camtype=camtype,
    )
    return utils.Rays(
        origins=origins,
        directions=directions,
        viewdirs=viewdirs,
        radii=radii,
        imageplane=imageplane,
        lossmult=pixels.lossmult,
        near=pixels.near,
        far=pixels.far,
        cam_idx=pixels.cam_idx,
        exposure_idx=pixels.exposure_idx,
        exposure_values=pixels.exposure_values,
    )


def _constant_ray_fields(shape, near, far, like):
    """lossmult 1, near, far and cam_idx 0 for rays of shape [...], each [..., 1]."""

    def broadcast_scalar(x, dtype):
        return torch.full((*shape, 1), x, dtype=dtype, device=like.device)

    return {
        "lossmult": broadcast_scalar(1.0, like.dtype),
        "near": broadcast_scalar(near, like.dtype),
        "far": broadcast_scalar(far, like.dtype),
        "cam_idx": broadcast_scalar(0, torch.int64),
    }


def cast_pinhole_rays(camtoworld, height, width, focal, near, far):
    """utils.Rays [height, width] of an undistorted pinhole camera: camtoworld [3, 4] (OpenGL)."""
    pix_x_int, pix_y_int = (p.to(camtoworld.device) for p in pixel_coordinates(width, height))
    pixtocam = get_pixtocam(focal, width, height).to(camtoworld)
    ray_args = pixels_to_rays(pix_x_int, pix_y_int, pixtocam, camtoworld)
    return utils.Rays(*ray_args, **_constant_ray_fields(pix_x_int.shape, near, far, ray_args[2]))


def cast_spherical_rays(camtoworld, height, width, near, far):
    """utils.Rays [height, width] of an equirectangular 360-degree camera: camtoworld [3, 4]."""
    like = {"dtype": camtoworld.dtype, "device": camtoworld.device}
    theta_vals = torch.linspace(0, 2 * torch.pi, width + 1, **like)
    phi_vals = torch.linspace(0, torch.pi, height + 1, **like)
    theta, phi = torch.meshgrid(theta_vals, phi_vals, indexing="xy")

    # Spherical coordinates in the camera frame, y up.
    directions = torch.stack(
        [-torch.sin(phi) * torch.sin(theta), torch.cos(phi), torch.sin(phi) * torch.cos(theta)],
        dim=-1,
    )
    directions = math.matmul(camtoworld[:3, :3], directions[..., None])[..., 0]

    # The grid has one more row and column than the image: the last ones are the neighbours.
    dy = torch.diff(directions[:, :-1], dim=0)
    dx = torch.diff(directions[:-1, :], dim=1)
    directions = directions[:-1, :-1]
    origins = torch.broadcast_to(camtoworld[:3, -1], directions.shape)
    dx_norm = torch.linalg.norm(dx, dim=-1)
    dy_norm = torch.linalg.norm(dy, dim=-1)
    radii = (0.5 * (dx_norm + dy_norm))[..., None] * 2 / np.sqrt(12)
    imageplane = torch.zeros_like(directions[..., :2])
    return utils.Rays(
        origins,
        directions,
        directions,
        radii,
        imageplane,
        **_constant_ray_fields(radii.shape[:-1], near, far, directions),
    )
