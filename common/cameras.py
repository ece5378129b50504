# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Camera models, ray generation and projection shared by every package (multinerf conventions).

Pixels: pixel (i, j) covers [i, i+1] x [j, j+1], so its centre is (i + .5, j + .5), as in COLMAP and
multinerf; an intrinsic matrix K maps camera coordinates to these continuous image coordinates.
Camera axes: OpenCV (x right, y down, z forward) by default; `opencv=False` means the OpenGL / NeRF
Blender convention (x right, y up, z backward), the two differing by diag(1, -1, -1).
Distortion: a dict with any of the keys k1, k2, k3, k4, p1, p2 (absent keys are 0), floats or
tensors broadcastable to the pixels: radial factor 1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8 (multinerf's
k4, not OpenCV's rational one) and OpenCV's tangential terms. For FISHEYE cameras the distortion acts
on the equidistant image (r = theta), which is COLMAP's OPENCV_FISHEYE with p1 = p2 = 0.
"""

import enum
import math

import torch

from common import safe_math


class ProjectionType(enum.Enum):
    """Lens models; ProjectionType('perspective') also accepts the names common.colmap returns."""

    PERSPECTIVE = "perspective"  # pinhole: x = X / Z
    FISHEYE = "fisheye"  # equidistant: image radius = angle theta to the optical axis


def _mat_vec(matrix, vector):
    """Batched matrix-vector product: matrix [..., m, n], vector [..., n] -> [..., m]."""
    # Promote as numpy would: torch's matmul refuses float32 with float64 (e.g. poses from COLMAP).
    # safe_math.matmul: exact float32 whatever the TF32 flags, as the originals cast rays at
    # HIGHEST precision.
    dtype = torch.promote_types(matrix.dtype, vector.dtype)
    return safe_math.matmul(matrix.to(dtype), vector.to(dtype)[..., None])[..., 0]


def _flip_yz(x):
    """x [..., 3] times diag(1, -1, -1), with no constant to copy to x's device: [..., 3]."""
    return torch.cat([x[..., :1], -x[..., 1:]], dim=-1)


def normalize(x):
    """Unit vectors along x: [..., 3] -> [..., 3]."""
    return x / torch.linalg.norm(x, dim=-1, keepdim=True)


def intrinsic_matrix(fx, fy, cx, cy):
    """K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]: floats or [...] tensors -> [..., 3, 3]."""
    fx, fy, cx, cy = torch.broadcast_tensors(
        *(v if torch.is_tensor(v) else torch.tensor(float(v)) for v in (fx, fy, cx, cy))
    )
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [(fx, zero, cx), (zero, fy, cy), (zero, zero, one)]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def get_pixtocam(focal, width, height):
    """Inverse intrinsics of a camera with its principal point at the image centre: [3, 3]."""
    return torch.linalg.inv(intrinsic_matrix(focal, focal, width * 0.5, height * 0.5))


def pixel_coordinates(width, height):
    """Integer pixel indices (pix_x, pix_y) of a width x height image: [height, width] each."""
    return torch.meshgrid(torch.arange(width), torch.arange(height), indexing="xy")


def radial_and_tangential_distort(x, y, k1=0.0, k2=0.0, k3=0.0, k4=0.0, p1=0.0, p2=0.0):
    """Lens distortion of normalised image coordinates: x, y: [...] -> xd, yd: [...]."""
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    xd = radial * x + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = radial * y + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
    return xd, yd


def _distortion_jacobian(x, y, k1, k2, k3, k4, p1, p2):
    """Jacobian entries (dxd/dx, dxd/dy = dyd/dx, dyd/dy) of the distortion at (x, y): [...] each."""
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    dradial_dr2 = k1 + r2 * (2 * k2 + r2 * (3 * k3 + r2 * 4 * k4))
    xd_x = radial + 2 * x * x * dradial_dr2 + 2 * p1 * y + 6 * p2 * x
    xd_y = 2 * x * y * dradial_dr2 + 2 * p1 * x + 2 * p2 * y
    yd_y = radial + 2 * y * y * dradial_dr2 + 2 * p2 * x + 6 * p1 * y
    return xd_x, xd_y, yd_y


def radial_and_tangential_undistort(
    xd, yd, k1=0.0, k2=0.0, k3=0.0, k4=0.0, p1=0.0, p2=0.0, eps=1e-9, max_iterations=10
):
    """Inverse of radial_and_tangential_distort by Newton's method: xd, yd: [...] -> x, y: [...]."""
    params = (k1, k2, k3, k4, p1, p2)
    # Start from the distorted point: lens distortion is a small displacement.
    x, y = xd, yd
    for _ in range(max_iterations):
        fx, fy = radial_and_tangential_distort(x, y, *params)
        fx, fy = fx - xd, fy - yd
        a, b, d = _distortion_jacobian(x, y, *params)
        det = a * d - b * b
        # A singular Jacobian (far outside the lens' field of view) gets no step instead of a NaN.
        invertible = det.abs() > eps
        det = torch.where(invertible, det, torch.ones_like(det))
        x = x - torch.where(invertible, (d * fx - b * fy) / det, 0.0)
        y = y - torch.where(invertible, (a * fy - b * fx) / det, 0.0)
    return x, y


def pixels_to_camera_dirs(
    u, v, pixtocam, distortion_params=None, camtype=ProjectionType.PERSPECTIVE
):
    """OpenCV camera-space directions through image points: u, v: [...] -> [..., 3].

    (u, v) are continuous image coordinates (pixel centres at +.5); pixtocam [..., 3, 3] is K^-1.
    Perspective directions have z = 1, fisheye directions unit norm.
    """
    dirs = _mat_vec(pixtocam, torch.stack([u, v, torch.ones_like(u)], dim=-1))
    if distortion_params is not None:
        x, y = radial_and_tangential_undistort(dirs[..., 0], dirs[..., 1], **distortion_params)
        dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    if ProjectionType(camtype) == ProjectionType.FISHEYE:
        # Clamp at pi: points outside the 360-degree circle look straight back instead of wrapping.
        theta = torch.linalg.norm(dirs[..., :2], dim=-1).clamp_max(math.pi)
        # sin(theta) / theta through sinc, which is 1 at theta = 0 where the quotient is 0 / 0.
        sin_theta_over_theta = torch.sinc(theta / math.pi)
        xy = dirs[..., :2] * sin_theta_over_theta[..., None]
        dirs = torch.cat([xy, torch.cos(theta)[..., None]], dim=-1)
    return dirs


def pixels_to_rays(
    pix_x,
    pix_y,
    pixtocam,
    camtoworld,
    distortion_params=None,
    camtype=ProjectionType.PERSPECTIVE,
    opencv=True,
    pixtocam_ndc=None,
):
    """Rays through pixel centres, as multinerf's pixels_to_rays.

    Args:
      pix_x, pix_y: [...] pixel indices (int or float); the ray goes through (pix_x + .5, pix_y + .5).
      pixtocam: [3, 3] or [..., 3, 3] inverse intrinsics.
      camtoworld: [..., 3, 4] or [..., 4, 4], in OpenCV axes or, with opencv=False, OpenGL axes.
      distortion_params: dict of k1, k2, k3, k4, p1, p2, or None for an undistorted lens.
      camtype: ProjectionType or its name.
      pixtocam_ndc: [3, 3] inverse intrinsics for convert_to_ndc, or None to stay in world space.

    Returns:
      origins, directions: [..., 3]; directions are camtoworld's rotation of the camera-space
        directions (unit z for perspective, unit norm for fisheye), in NDC when pixtocam_ndc is set.
      viewdirs: [..., 3] unit world-space directions.
      radii: [..., 1] mip-NeRF cone radius: the mean distance to the rays (origins in NDC) of the
        next pixel in x and in y, times 2 / sqrt(12) (a pixel-wide uniform's standard deviation x 2).
    """
    pix_x, pix_y = torch.broadcast_tensors(pix_x, pix_y)
    # The pixel itself, then its neighbours in x and in y.
    u = torch.stack([pix_x, pix_x + 1, pix_x]) + 0.5
    v = torch.stack([pix_y, pix_y, pix_y + 1]) + 0.5
    camera_dirs = pixels_to_camera_dirs(u, v, pixtocam, distortion_params, camtype)
    if not opencv:
        camera_dirs = _flip_yz(camera_dirs)
    directions, dx, dy = _mat_vec(camtoworld[..., :3, :3], camera_dirs)
    origins = torch.broadcast_to(camtoworld[..., :3, 3], directions.shape)
    viewdirs = normalize(directions)
    if pixtocam_ndc is None:
        dx_norm = torch.linalg.norm(dx - directions, dim=-1)
        dy_norm = torch.linalg.norm(dy - directions, dim=-1)
    else:
        origins_dx, _ = convert_to_ndc(origins, dx, pixtocam_ndc)
        origins_dy, _ = convert_to_ndc(origins, dy, pixtocam_ndc)
        origins, directions = convert_to_ndc(origins, directions, pixtocam_ndc)
        # NDC rays are nearly parallel: their origins, not their directions, spread apart.
        dx_norm = torch.linalg.norm(origins_dx - origins, dim=-1)
        dy_norm = torch.linalg.norm(origins_dy - origins, dim=-1)
    radii = (0.5 * (dx_norm + dy_norm))[..., None] * 2 / math.sqrt(12)
    return origins, directions, viewdirs, radii


def project(
    points,
    camtoworld,
    intrinsics,
    distortion_params=None,
    camtype=ProjectionType.PERSPECTIVE,
    opencv=True,
):
    """Image coordinates of world points, the inverse of pixels_to_rays.

    Args:
      points: [..., 3] world points.
      camtoworld: [..., 3, 4] or [..., 4, 4] (OpenGL axes with opencv=False).
      intrinsics: [3, 3] or [..., 3, 3] K.

    Returns:
      pixels: [..., 2] continuous (u, v), pixel centres at +.5, so that
        pixels_to_rays(u - .5, v - .5, ...) goes through the point.
      depth: [...] z of the point along the OpenCV optical axis (positive in front) for either axes.
    """
    rotation = camtoworld[..., :3, :3]
    p_cam = _mat_vec(rotation.transpose(-1, -2), points - camtoworld[..., :3, 3])
    if not opencv:
        p_cam = _flip_yz(p_cam)
    depth = p_cam[..., 2]
    if ProjectionType(camtype) == ProjectionType.FISHEYE:
        r = torch.linalg.norm(p_cam[..., :2], dim=-1)
        theta = torch.atan2(r, depth)
        # theta / r = 1 / (|p| sinc(theta / pi)): no 0 / 0 on the optical axis.
        scale = 1 / (torch.linalg.norm(p_cam, dim=-1) * torch.sinc(theta / math.pi))
    else:
        scale = 1 / depth
    x, y = p_cam[..., 0] * scale, p_cam[..., 1] * scale
    if distortion_params is not None:
        x, y = radial_and_tangential_distort(x, y, **distortion_params)
    pixels = _mat_vec(intrinsics, torch.stack([x, y, torch.ones_like(x)], dim=-1))[..., :2]
    return pixels, depth


def convert_to_ndc(origins, directions, pixtocam, near=1.0):
    """NeRF's forward-facing NDC rays: origins, directions [..., 3] -> NDC origins, directions [..., 3].

    Rays live in the frame of an OpenGL camera looking down -z (poses recentred on it). A point maps
    to (-fx/cx x/z, -fy/cy y/z, 1 + 2 near/z): the plane z = -near goes to NDC z = -1 and z = -inf to
    +1. Origins are first slid along their rays onto z = -near, so NDC origins have z = -1 and
    origin + direction is the ray's point at infinity. pixtocam: [3, 3] inverse intrinsics
    (get_pixtocam(focal, width, height) for NeRF's focal, W, H form).
    """
    t = -(near + origins[..., 2]) / directions[..., 2]
    origins = origins + t[..., None] * directions
    ox, oy, oz = origins.unbind(-1)
    dx, dy, dz = directions.unbind(-1)
    # 1 / pixtocam[0, 2] = -fx / cx, NeRF's -2 focal / W.
    xmult = 1 / pixtocam[..., 0, 2]
    ymult = 1 / pixtocam[..., 1, 2]
    ones = torch.ones_like(oz)
    origins_ndc = torch.stack([xmult * ox / oz, ymult * oy / oz, -ones], dim=-1)
    infinity_ndc = torch.stack([xmult * dx / dz, ymult * dy / dz, ones], dim=-1)
    return origins_ndc, infinity_ndc - origins_ndc


def opencv_to_opengl(camtoworld):
    """Flips the y and z camera axes of camera-to-world matrices: [..., 3, 4] or [..., 4, 4]."""
    flip = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=camtoworld.dtype, device=camtoworld.device)
    return camtoworld * flip


# The flip is its own inverse.
opengl_to_opencv = opencv_to_opengl


def viewmatrix(lookdir, up, position):
    """Camera-to-world [..., 3, 4] with z axis along lookdir, y axis towards up, centre position.

    lookdir, up, position: [..., 3]. The frame is right-handed (x = y cross z). multinerf passes the
    backward direction and the scene's up, giving OpenGL axes; look_at passes the viewing direction
    and the scene's down, giving OpenCV axes.
    """
    lookdir, up, position = torch.broadcast_tensors(lookdir, up, position)
    vec2 = normalize(lookdir)
    vec0 = normalize(torch.linalg.cross(up, vec2, dim=-1))
    vec1 = normalize(torch.linalg.cross(vec2, vec0, dim=-1))
    return torch.stack([vec0, vec1, vec2, position], dim=-1)


def look_at(eye, target, up, opencv=True):
    """Camera-to-world [..., 3, 4] of a camera at eye looking at target, image up along up.

    eye, target, up: [..., 3]. OpenCV axes (z towards target, y down) or, with opencv=False, OpenGL
    axes (-z towards target, y up).
    """
    camtoworld = viewmatrix(target - eye, -up, eye)
    return camtoworld if opencv else opencv_to_opengl(camtoworld)
