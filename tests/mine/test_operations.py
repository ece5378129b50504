"""MPI geometry and rendering on cases with known answers (identity pose, a shifted single plane)."""

import math

import torch

from mine.operations import mpi_rendering
from mine.operations.homography_sampler import HomographySample
from mine.operations.rendering_utils import gather_pixel_by_pxpy, sample_pdf


def _camera(B, H, W, f=20.0):
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]]).expand(B, 3, 3)
    return K, torch.inverse(K)


def test_identity_pose_reproduces_the_source_composite():
    torch.manual_seed(0)
    B, S, H, W = 2, 5, 8, 12
    K, K_inv = _camera(B, H, W)
    sampler = HomographySample(H, W)
    disparity = torch.linspace(1.0, 0.1, S).expand(B, S)
    rgb, sigma = torch.rand(B, S, 3, H, W), torch.rand(B, S, 1, H, W) * 3
    xyz = mpi_rendering.get_src_xyz_from_plane_disparity(sampler.meshgrid, disparity, K_inv)
    src_rgb, src_depth, _, _ = mpi_rendering.render(rgb, sigma, xyz)
    G = torch.eye(4).expand(B, 4, 4)
    tgt_xyz = mpi_rendering.get_tgt_xyz_from_plane_disparity(xyz, G)
    tgt_rgb, tgt_depth, mask = mpi_rendering.render_tgt_rgb_depth(sampler, rgb, sigma, disparity, tgt_xyz, G, K_inv, K)
    torch.testing.assert_close(tgt_rgb, src_rgb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tgt_depth, src_depth, atol=1e-4, rtol=1e-5)
    assert torch.all(mask == S)


def test_plane_moves_by_its_parallax():
    """A camera moved by t_x sees a plane at depth d shifted by f t_x / d pixels (exactly 2 px here)."""
    B, H, W, f, d = 1, 8, 16, 20.0, 5.0
    K, K_inv = _camera(B, H, W, f)
    src = torch.arange(W, dtype=torch.float32).expand(B, 1, H, W).contiguous()
    G_tgt_src = torch.eye(4).unsqueeze(0)
    G_tgt_src[0, 0, 3] = -0.5  # target camera 0.5 to the right: x_tgt = x_src - 0.5
    tgt, valid = HomographySample(H, W).sample(src, torch.tensor([d]), G_tgt_src, K_inv, K)
    shift = f * 0.5 / d
    torch.testing.assert_close(tgt[0, 0, :, : W - 2], (torch.arange(W - 2.0) + shift).expand(H, W - 2))
    assert valid[0, :, : W - 2].all() and not valid[0, :, W - 1].any()


def test_volume_rendering_opaque_front_plane_wins():
    B, S, H, W = 1, 3, 2, 2
    rgb = torch.stack([torch.full((3, H, W), v) for v in (0.2, 0.5, 0.9)]).unsqueeze(0)
    sigma = torch.tensor([50.0, 0.0, 0.0]).view(1, S, 1, 1, 1).expand(B, S, 1, H, W)
    xyz = torch.zeros(B, S, 3, H, W)
    xyz[:, :, 2] = torch.tensor([1.0, 2.0, 3.0]).view(1, S, 1, 1)
    out_rgb, depth, transmittance, weights = mpi_rendering.plane_volume_rendering(rgb, sigma, xyz, False)
    assert math.isclose(out_rgb.mean().item(), 0.2, abs_tol=1e-4)
    assert math.isclose(depth.mean().item(), 1.0, abs_tol=1e-3)
    assert torch.all(transmittance[:, 0] == 1)


def test_gather_rounds_and_clamps():
    img = torch.arange(12.0).view(1, 1, 3, 4)
    pxpy = torch.tensor([[[0.4, 3.6, -5.0], [0.6, 2.4, 9.0]]], dtype=torch.float64)
    assert gather_pixel_by_pxpy(img, pxpy).tolist() == [[[4.0, 11.0, 8.0]]]


def test_sample_pdf_follows_the_weights():
    torch.manual_seed(0)
    values = torch.linspace(1.0, 0.0, 11).view(1, 1, 1, 11)
    weights = torch.zeros(1, 1, 1, 11)
    weights[..., 7] = 1.0
    samples = sample_pdf(values, weights, 200)
    # All mass in bin 7 (between the midpoints around values[7] = 0.3).
    assert samples.min() >= 0.25 - 1e-6 and samples.max() <= 0.35 + 1e-6
