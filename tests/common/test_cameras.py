"""Camera math: projection and ray generation invert each other, distortion, NDC, conventions."""

import math

import cv2
import numpy as np
import pytest
import torch

from common import cameras

K = cameras.intrinsic_matrix(500.0, 520.0, 320.3, 240.7)
OPENCV_DISTORTION = {"k1": -0.1, "k2": 0.02, "k3": -1e-3, "p1": 1e-3, "p2": -5e-4}
FISHEYE_DISTORTION = {"k1": -0.02, "k2": 3e-3, "k3": -4e-4, "k4": 2e-5}


def random_camtoworld(n, generator):
    """[n, 3, 4] random rigid OpenCV camera-to-world matrices."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    # Negating a 3x3 matrix flips the sign of its determinant: make every one a rotation.
    rotation = torch.where(torch.linalg.det(q)[:, None, None] < 0, -q, q)
    translation = 2 * torch.randn(n, 3, 1, generator=generator, dtype=torch.float64)
    return torch.cat([rotation, translation], dim=-1).float()


def camera_points(n, camtype, generator):
    """[n, 3] OpenCV camera-space points inside the field of view (behind the image plane for fisheye)."""
    azimuth = 2 * math.pi * torch.rand(n, generator=generator)
    distance = 0.5 + 4.5 * torch.rand(n, generator=generator)
    if camtype == "fisheye":
        # Up to 97 degrees off axis: some points are behind the camera plane.
        theta = 1.7 * torch.rand(n, generator=generator)
        direction = torch.stack(
            [
                torch.sin(theta) * torch.cos(azimuth),
                torch.sin(theta) * torch.sin(azimuth),
                torch.cos(theta),
            ],
            -1,
        )
    else:
        radius = 0.8 * torch.rand(n, generator=generator)
        direction = cameras.normalize(
            torch.stack(
                [radius * torch.cos(azimuth), radius * torch.sin(azimuth), torch.ones(n)], -1
            )
        )
    return distance[:, None] * direction


def to_world(points_cam, camtoworld):
    return (camtoworld[..., :3, :3] @ points_cam[..., None])[..., 0] + camtoworld[..., :3, 3]


@pytest.mark.parametrize("opencv", [True, False])
@pytest.mark.parametrize(
    "camtype, distortion",
    [
        ("perspective", None),
        ("perspective", OPENCV_DISTORTION),
        ("fisheye", None),
        ("fisheye", FISHEYE_DISTORTION),
    ],
)
def test_ray_through_projection_hits_point(camtype, distortion, opencv):
    generator = torch.Generator().manual_seed(0)
    n = 500
    c2w_opencv = random_camtoworld(n, generator)
    points_cam = camera_points(n, camtype, generator)
    points = to_world(points_cam, c2w_opencv)
    c2w = c2w_opencv if opencv else cameras.opencv_to_opengl(c2w_opencv)

    pixels, depth = cameras.project(points, c2w, K, distortion, camtype, opencv=opencv)
    torch.testing.assert_close(depth, points_cam[:, 2], atol=1e-5, rtol=1e-5)
    origins, directions, viewdirs, radii = cameras.pixels_to_rays(
        pixels[:, 0] - 0.5,
        pixels[:, 1] - 0.5,
        torch.linalg.inv(K),
        c2w,
        distortion,
        camtype,
        opencv=opencv,
    )

    torch.testing.assert_close(origins, c2w[:, :3, 3])
    torch.testing.assert_close(viewdirs, cameras.normalize(directions))
    offset = points - origins
    along = (offset * viewdirs).sum(-1)
    assert (along > 0).all()
    distance_to_ray = torch.linalg.norm(offset - along[:, None] * viewdirs, dim=-1)
    assert distance_to_ray.max() < 1e-4
    assert radii.shape == (n, 1) and (radii > 0).all()


def test_directions_have_unit_z_for_perspective_and_unit_norm_for_fisheye():
    pix_x, pix_y = cameras.pixel_coordinates(7, 5)
    pixtocam = cameras.get_pixtocam(3.0, 7, 5)
    c2w = torch.eye(4)[:3]
    _, perspective, _, _ = cameras.pixels_to_rays(pix_x, pix_y, pixtocam, c2w, OPENCV_DISTORTION)
    torch.testing.assert_close(perspective[..., 2], torch.ones(5, 7))
    _, fisheye, _, _ = cameras.pixels_to_rays(pix_x, pix_y, pixtocam, c2w, camtype="fisheye")
    torch.testing.assert_close(torch.linalg.norm(fisheye, dim=-1), torch.ones(5, 7))


def test_project_matches_opencv():
    generator = torch.Generator().manual_seed(1)
    points = camera_points(200, "perspective", generator)
    d = OPENCV_DISTORTION
    pixels, _ = cameras.project(points, torch.eye(4)[:3], K, d)
    expected, _ = cv2.projectPoints(
        points.double().numpy(),
        np.zeros(3),
        np.zeros(3),
        K.double().numpy(),
        np.array([d["k1"], d["k2"], d["p1"], d["p2"], d["k3"]]),
    )
    np.testing.assert_allclose(pixels.numpy(), expected[:, 0], atol=1e-3)


def test_fisheye_project_matches_opencv_fisheye():
    generator = torch.Generator().manual_seed(2)
    points = camera_points(200, "fisheye", generator)
    points = points[points[:, 2] > 0.1]
    d = FISHEYE_DISTORTION
    pixels, _ = cameras.project(points, torch.eye(4)[:3], K, d, "fisheye")
    expected, _ = cv2.fisheye.projectPoints(
        points.double().numpy()[:, None],
        np.zeros(3),
        np.zeros(3),
        K.double().numpy(),
        np.array([d["k1"], d["k2"], d["k3"], d["k4"]]),
    )
    np.testing.assert_allclose(pixels.numpy(), expected[:, 0], atol=1e-3)


def test_distort_undistort_round_trip():
    # Normalised coordinates up to 0.8: a 77-degree field of view.
    x, y = torch.meshgrid(
        torch.linspace(-0.8, 0.8, 41), torch.linspace(-0.6, 0.6, 31), indexing="xy"
    )
    xd, yd = cameras.radial_and_tangential_distort(x, y, **OPENCV_DISTORTION)
    assert (xd - x).abs().max() > 1e-2  # the lens really distorts
    x_back, y_back = cameras.radial_and_tangential_undistort(xd, yd, **OPENCV_DISTORTION)
    assert (x_back - x).abs().max() < 1e-5 and (y_back - y).abs().max() < 1e-5
    xd_back, yd_back = cameras.radial_and_tangential_distort(
        *cameras.radial_and_tangential_undistort(x, y, **OPENCV_DISTORTION), **OPENCV_DISTORTION
    )
    assert (xd_back - x).abs().max() < 1e-5 and (yd_back - y).abs().max() < 1e-5


@pytest.mark.parametrize("opencv, forward", [(True, 1.0), (False, -1.0)])
def test_pixel_centre_rays(opencv, forward):
    width, height, focal = 8, 6, 10.0
    pixtocam = cameras.get_pixtocam(focal, width, height)
    c2w = torch.eye(4)[:3]
    # Pixel (W/2 - 1, H/2 - 1) has its centre half a pixel before the principal point (W/2, H/2).
    pix_x = torch.tensor([width / 2 - 0.5, 0.0])
    pix_y = torch.tensor([height / 2 - 0.5, 0.0])
    _, directions, _, _ = cameras.pixels_to_rays(pix_x, pix_y, pixtocam, c2w, opencv=opencv)
    torch.testing.assert_close(directions[0], torch.tensor([0.0, 0.0, forward]))
    # The top-left pixel's centre (0.5, 0.5): left of and above the principal point.
    up = -1.0 if opencv else 1.0
    corner = torch.tensor([(0.5 - width / 2) / focal, -up * (0.5 - height / 2) / focal, forward])
    torch.testing.assert_close(directions[1], corner)


def test_intrinsics():
    torch.testing.assert_close(
        K, torch.tensor([[500.0, 0.0, 320.3], [0.0, 520.0, 240.7], [0.0, 0.0, 1.0]])
    )
    torch.testing.assert_close(
        cameras.get_pixtocam(20.0, 64, 48) @ cameras.intrinsic_matrix(20.0, 20.0, 32, 24),
        torch.eye(3),
    )
    batched = cameras.intrinsic_matrix(torch.tensor([1.0, 2.0]), 3.0, 4.0, 5.0)
    assert batched.shape == (2, 3, 3) and batched[1, 0, 0] == 2.0 and batched[1, 1, 1] == 3.0
    pix_x, pix_y = cameras.pixel_coordinates(4, 3)
    assert (
        pix_x.shape == (3, 4)
        and pix_x[2].tolist() == [0, 1, 2, 3]
        and pix_y[:, 1].tolist() == [0, 1, 2]
    )


@pytest.mark.parametrize("rows", [3, 4])
def test_opencv_opengl_is_an_involution_keeping_the_centre(rows):
    c2w = random_camtoworld(10, torch.Generator().manual_seed(3))
    if rows == 4:
        c2w = torch.cat([c2w, torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(10, 1, 4)], dim=1)
    opengl = cameras.opencv_to_opengl(c2w)
    torch.testing.assert_close(cameras.opengl_to_opencv(opengl), c2w)
    torch.testing.assert_close(opengl[:, :3, 3], c2w[:, :3, 3])
    torch.testing.assert_close(opengl[:, :3, 0], c2w[:, :3, 0])
    torch.testing.assert_close(opengl[:, :3, 1:3], -c2w[:, :3, 1:3])
    torch.testing.assert_close(opengl[:, 3:], c2w[:, 3:])


@pytest.mark.parametrize("opencv", [True, False])
def test_look_at(opencv):
    generator = torch.Generator().manual_seed(4)
    eye = 3 * torch.randn(20, 3, generator=generator)
    target = torch.randn(20, 3, generator=generator)
    up = torch.tensor([0.0, 0.0, 1.0])
    c2w = cameras.look_at(eye, target, up, opencv=opencv)
    rotation = c2w[:, :3, :3]
    torch.testing.assert_close(rotation.transpose(-1, -2) @ rotation, torch.eye(3).expand(20, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(20))
    # The camera centre is the origin of camera coordinates.
    eye_cam = (rotation.transpose(-1, -2) @ (eye - c2w[:, :3, 3])[..., None])[..., 0]
    torch.testing.assert_close(eye_cam, torch.zeros(20, 3))
    # The target projects onto the principal point at its distance.
    pixels, depth = cameras.project(target, c2w, K, opencv=opencv)
    torch.testing.assert_close(pixels, K[:2, 2].expand(20, 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(depth, torch.linalg.norm(target - eye, dim=-1))
    # Up in the world is up in the image (smaller v); the image is not mirrored (x right).
    above, _ = cameras.project(target + 0.1 * up, c2w, K, opencv=opencv)
    assert (above[:, 1] < K[1, 2]).all()
    right = torch.linalg.cross(target - eye, up.expand(20, 3), dim=-1)
    to_the_right, _ = cameras.project(
        target + 0.1 * cameras.normalize(right), c2w, K, opencv=opencv
    )
    assert (to_the_right[:, 0] > K[0, 2]).all()


def test_viewmatrix_axes():
    lookdir = torch.tensor([1.0, 2.0, -0.5])
    up = torch.tensor([0.0, 1.0, 0.2])
    c2w = cameras.viewmatrix(lookdir, up, torch.tensor([4.0, 5.0, 6.0]))
    torch.testing.assert_close(c2w[:, 2], cameras.normalize(lookdir))
    torch.testing.assert_close(c2w[:, 3], torch.tensor([4.0, 5.0, 6.0]))
    torch.testing.assert_close(torch.linalg.cross(c2w[:, 1], c2w[:, 2], dim=-1), c2w[:, 0])
    assert torch.dot(c2w[:, 1], up) > 0 and torch.dot(c2w[:, 1], c2w[:, 2]).abs() < 1e-6


def ndc_point(points, pixtocam, near):
    """The NeRF NDC map of points [..., 3] in the OpenGL camera frame."""
    x, y, z = points.unbind(-1)
    return torch.stack([x / z / pixtocam[0, 2], y / z / pixtocam[1, 2], 1 + 2 * near / z], dim=-1)


def test_ndc_maps_rays_to_rays():
    generator = torch.Generator().manual_seed(5)
    near, n = 1.5, 100
    pixtocam = cameras.get_pixtocam(40.0, 64, 48)
    origins = 0.3 * torch.randn(n, 3, generator=generator)
    directions = torch.cat([0.4 * torch.randn(n, 2, generator=generator), -torch.ones(n, 1)], -1)
    origins_ndc, directions_ndc = cameras.convert_to_ndc(origins, directions, pixtocam, near)
    torch.testing.assert_close(origins_ndc[:, 2], -torch.ones(n))
    # The ray's crossing of the near plane z = -near is the NDC origin.
    t_near = (-near - origins[:, 2]) / directions[:, 2]
    on_near = origins + t_near[:, None] * directions
    torch.testing.assert_close(ndc_point(on_near, pixtocam, near), origins_ndc)
    # Further points on the ray lie on the NDC ray.
    t = t_near[:, None] + torch.tensor([0.5, 2.0, 10.0, 100.0])
    points_ndc = ndc_point(origins[:, None] + t[..., None] * directions[:, None], pixtocam, near)
    s = (points_ndc[..., 2] + 1) / directions_ndc[:, None, 2]
    torch.testing.assert_close(
        points_ndc, origins_ndc[:, None] + s[..., None] * directions_ndc[:, None]
    )
    # origin + direction is the point at infinity, NDC z = 1.
    torch.testing.assert_close((origins_ndc + directions_ndc)[:, 2], torch.ones(n))


def test_pixels_to_rays_in_ndc():
    width, height, focal, near = 16, 12, 20.0, 1.0
    pixtocam = cameras.get_pixtocam(focal, width, height)
    c2w = torch.tensor([[1.0, 0.0, 0.0, 0.1], [0.0, 1.0, 0.0, -0.2], [0.0, 0.0, 1.0, 0.3]])
    pix_x, pix_y = cameras.pixel_coordinates(width, height)
    args = (pixtocam, c2w)
    origins, directions, viewdirs, radii = cameras.pixels_to_rays(
        pix_x, pix_y, *args, opencv=False, pixtocam_ndc=pixtocam
    )
    world_o, world_d, world_v, _ = cameras.pixels_to_rays(pix_x, pix_y, *args, opencv=False)
    torch.testing.assert_close(viewdirs, world_v)
    expected_o, expected_d = cameras.convert_to_ndc(world_o, world_d, pixtocam, near)
    torch.testing.assert_close(origins, expected_o)
    torch.testing.assert_close(directions, expected_d)
    # Radii come from the spacing of neighbouring NDC origins: the near-plane points of neighbouring
    # rays, 1.3 units (near - origin z) in front of the camera, are 1.3 / focal apart, which NDC
    # scales by focal / (W / 2) in x and focal / (H / 2) in y.
    spacing = 0.5 * (1.3 * 2 / width + 1.3 * 2 / height)
    torch.testing.assert_close(radii, torch.full((height, width, 1), spacing * 2 / math.sqrt(12)))


@pytest.mark.parametrize("opencv", [True, False])
def test_pinhole_radii(opencv):
    generator = torch.Generator().manual_seed(6)
    fx, fy = 400.0, 500.0
    intrinsics = cameras.intrinsic_matrix(fx, fy, 300.0, 200.0)
    c2w = random_camtoworld(50, generator)
    pix_x = 600 * torch.rand(50, generator=generator)
    pix_y = 400 * torch.rand(50, generator=generator)
    _, _, _, radii = cameras.pixels_to_rays(
        pix_x, pix_y, torch.linalg.inv(intrinsics), c2w, opencv=opencv
    )
    # Neighbouring pixels' directions at unit z are 1 / fx and 1 / fy apart.
    footprint = 0.5 * (1 / fx + 1 / fy)
    assert (radii - footprint * 2 / math.sqrt(12)).abs().max() < 1e-5


def test_mixed_precision_inputs():
    pix_x, pix_y = cameras.pixel_coordinates(4, 3)
    pixtocam = cameras.get_pixtocam(5.0, 4, 3)
    c2w = torch.eye(4, dtype=torch.float64)
    origins, directions, _, radii = cameras.pixels_to_rays(pix_x, pix_y, pixtocam, c2w)
    assert directions.dtype == torch.float64 and radii.dtype == torch.float64
    pixels, _ = cameras.project(origins + directions, c2w, torch.linalg.inv(pixtocam))
    torch.testing.assert_close(pixels, torch.stack([pix_x, pix_y], -1).double() + 0.5)
