# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MPI geometry and compositing: plane points, NeRF-style volume rendering across planes, target views."""

import torch

from mine.operations.homography_sampler import HomographySample
from mine.operations.rendering_utils import gather_pixel_by_pxpy, sample_pdf, transform_G_xyz


def render(rgb_BS3HW, sigma_BS1HW, xyz_BS3HW, use_alpha=False, is_bg_depth_inf=False):
    """Composites S planes into an image: -> rgb Bx3xHxW, depth Bx1xHxW, blend_weights, weights BxSx1xHxW.

    Volume rendering of densities (paper eq. 3-5), or MPI over-compositing of alphas if use_alpha.
    blend_weights is the per-plane accumulated transmittance (zeros with use_alpha).
    """
    if not use_alpha:
        return plane_volume_rendering(rgb_BS3HW, sigma_BS1HW, xyz_BS3HW, is_bg_depth_inf)
    imgs_syn, weights = alpha_composition(sigma_BS1HW, rgb_BS3HW)
    depth_syn, _ = alpha_composition(sigma_BS1HW, xyz_BS3HW[:, :, 2:])
    # No source-RGB blending with alpha compositing.
    return imgs_syn, depth_syn, torch.zeros_like(rgb_BS3HW), weights


def alpha_composition(alpha_BK1HW, value_BKCHW):
    """Over-compositing, plane k=0 nearest: alpha BxKx1xHxW, value BxKxCxHxW -> (BxCxHxW, weights BxKx1xHxW)."""
    alpha_comp_cumprod = torch.cumprod(1 - alpha_BK1HW, dim=1)
    preserve_ratio = torch.cat((torch.ones_like(alpha_BK1HW[:, 0:1]), alpha_comp_cumprod[:, :-1]), dim=1)
    weights = alpha_BK1HW * preserve_ratio
    return torch.sum(value_BKCHW * weights, dim=1), weights


def plane_volume_rendering(rgb_BS3HW, sigma_BS1HW, xyz_BS3HW, is_bg_depth_inf):
    """Volume rendering across planes: -> rgb Bx3xHxW, depth Bx1xHxW, transparency_acc, weights BxSx1xHxW.

    delta_s = |xyz_{s+1} - xyz_s| along each pixel's ray (1e3 behind the last plane),
    alpha = 1 - exp(-sigma delta), T = exclusive cumprod of (exp(-sigma delta) + 1e-6), w = T alpha.
    """
    dist = torch.norm(xyz_BS3HW[:, 1:] - xyz_BS3HW[:, :-1], dim=2, keepdim=True)  # Bx(S-1)x1xHxW
    dist = torch.cat((dist, torch.full_like(dist[:, 0:1], 1e3)), dim=1)  # BxSx1xHxW
    transparency = torch.exp(-sigma_BS1HW * dist)
    alpha = 1 - transparency
    # +1e-6 keeps the transmittance of far planes above zero.
    transparency_acc = torch.cumprod(transparency + 1e-6, dim=1)
    transparency_acc = torch.cat((torch.ones_like(transparency_acc[:, 0:1]), transparency_acc[:, :-1]), dim=1)
    weights = transparency_acc * alpha
    rgb_out, depth_out = weighted_sum_mpi(rgb_BS3HW, xyz_BS3HW, weights, is_bg_depth_inf)
    return rgb_out, depth_out, transparency_acc, weights


def weighted_sum_mpi(rgb_BS3HW, xyz_BS3HW, weights, is_bg_depth_inf):
    """Sum of w rgb and of w z over planes: -> rgb Bx3xHxW, depth Bx1xHxW.

    Depth is normalised by sum w (+1e-5), or, with is_bg_depth_inf, the missing weight goes to depth 1000.
    """
    weights_sum = torch.sum(weights, dim=1)
    rgb_out = torch.sum(weights * rgb_BS3HW, dim=1)
    depth_sum = torch.sum(weights * xyz_BS3HW[:, :, 2:], dim=1)
    if is_bg_depth_inf:
        return rgb_out, depth_sum + (1 - weights_sum) * 1000
    return rgb_out, depth_sum / (weights_sum + 1e-5)


def get_xyz_from_depth(meshgrid_homo, depth, K_inv):
    """Back-projects a depth map: meshgrid 3xHxW, depth Bx1xHxW, K_inv Bx3x3 -> Bx3xHxW."""
    _, H, W = meshgrid_homo.size()
    B = depth.size(0)
    if depth.shape[2:] != (H, W):
        raise ValueError(f"depth {tuple(depth.shape)} does not match the {H}x{W} meshgrid")
    rays = torch.matmul(K_inv, meshgrid_homo.reshape(1, 3, H * W))  # Bx3xHW
    return rays.reshape(B, 3, H, W) * depth


def disparity_consistency_src_to_tgt(meshgrid_homo, K_src_inv, disparity_src, G_tgt_src, K_tgt, disparity_tgt):
    """Mean |1/z_tgt - disparity_tgt(nearest pixel)| of source pixels that project into the target: scalar."""
    B, _, H, W = disparity_src.size()
    xyz_src = get_xyz_from_depth(meshgrid_homo, torch.reciprocal(disparity_src), K_src_inv).reshape(B, 3, H * W)
    xyz_tgt = transform_G_xyz(G_tgt_src, xyz_src, is_return_homo=False)
    K_xyz_tgt = torch.matmul(K_tgt, xyz_tgt)
    pxpy_tgt = K_xyz_tgt[:, 0:2] / K_xyz_tgt[:, 2:]  # Bx2xN
    inside = (pxpy_tgt[:, 0:1] >= 0) & (pxpy_tgt[:, 0:1] <= W - 1) & (pxpy_tgt[:, 1:2] >= 0) & (pxpy_tgt[:, 1:2] <= H - 1)
    disparity_warped = torch.reciprocal(xyz_tgt[:, 2:])  # Bx1xN
    disparity_sampled = gather_pixel_by_pxpy(disparity_tgt, pxpy_tgt)  # Bx1xN
    return torch.mean(torch.abs(disparity_warped - disparity_sampled)[inside])


def get_src_xyz_from_plane_disparity(meshgrid_src_homo, mpi_disparity_src, K_src_inv):
    """Points of each plane in the source frame, K^-1 [u, v, 1] / disp: -> BxSx3xHxW."""
    B, S = mpi_disparity_src.size()
    _, H, W = meshgrid_src_homo.size()
    rays = torch.matmul(K_src_inv, meshgrid_src_homo.reshape(1, 3, H * W))  # Bx3xHW
    xyz = rays.unsqueeze(1) * torch.reciprocal(mpi_disparity_src).reshape(B, S, 1, 1)  # BxSx3xHW
    return xyz.reshape(B, S, 3, H, W)


def get_tgt_xyz_from_plane_disparity(xyz_src_BS3HW, G_tgt_src):
    """Plane points moved to the target frame: xyz BxSx3xHxW, G_tgt_src Bx4x4 -> BxSx3xHxW."""
    B, S, _, H, W = xyz_src_BS3HW.size()
    G = G_tgt_src.unsqueeze(1).expand(B, S, 4, 4).reshape(B * S, 4, 4)
    xyz_tgt = transform_G_xyz(G, xyz_src_BS3HW.reshape(B * S, 3, H * W))
    return xyz_tgt.reshape(B, S, 3, H, W)


def render_tgt_rgb_depth(H_sampler: HomographySample, mpi_rgb_src, mpi_sigma_src, mpi_disparity_src,
                         xyz_tgt_BS3HW, G_tgt_src, K_src_inv, K_tgt, use_alpha=False, is_bg_depth_inf=False):
    """Renders the target view of a source MPI: -> rgb Bx3xHxW, depth Bx1xHxW, mask Bx1xHxW.

    rgb, sigma and the target-frame plane points (BxSx{3,1,3}xHxW) are homography-warped together;
    sigma is zeroed where the warped point is behind the target camera; the mask counts the planes
    whose warp lands inside the source image.
    """
    B, S, _, H, W = mpi_rgb_src.size()
    mpi_depth_src = torch.reciprocal(mpi_disparity_src)  # BxS
    mpi_xyz_src = torch.cat((mpi_rgb_src, mpi_sigma_src, xyz_tgt_BS3HW), dim=2)  # BxSx7xHxW

    def per_plane(x):
        return x.unsqueeze(1).expand(B, S, *x.shape[1:]).reshape(B * S, *x.shape[1:])

    tgt_mpi_xyz, tgt_mask = H_sampler.sample(
        mpi_xyz_src.reshape(B * S, 7, H, W), mpi_depth_src.reshape(B * S),
        per_plane(G_tgt_src), per_plane(K_src_inv), per_plane(K_tgt),
    )
    tgt_mpi_xyz = tgt_mpi_xyz.reshape(B, S, 7, H, W)
    tgt_rgb, tgt_sigma, tgt_xyz = tgt_mpi_xyz[:, :, 0:3], tgt_mpi_xyz[:, :, 3:4], tgt_mpi_xyz[:, :, 4:]
    tgt_sigma = torch.where(tgt_xyz[:, :, -1:] >= 0, tgt_sigma, torch.zeros_like(tgt_sigma))
    tgt_rgb_syn, tgt_depth_syn, _, _ = render(tgt_rgb, tgt_sigma, tgt_xyz, use_alpha=use_alpha,
                                              is_bg_depth_inf=is_bg_depth_inf)
    tgt_mask = torch.sum(tgt_mask.reshape(B, S, H, W).to(torch.float32), dim=1, keepdim=True)
    return tgt_rgb_syn, tgt_depth_syn, tgt_mask


def predict_mpi_coarse_to_fine(mpi_predictor, src_imgs, xyz_src_BS3HW_coarse, disparity_coarse_src, S_fine,
                               is_bg_depth_inf):
    """MPIs at the coarse disparities, plus S_fine importance-sampled ones: -> ([4 x BxSx4xHsxWs], BxS)."""
    if S_fine <= 0:
        return mpi_predictor(src_imgs, disparity_coarse_src), disparity_coarse_src
    with torch.no_grad():
        mpi_coarse = mpi_predictor(src_imgs, disparity_coarse_src)[0]
        _, _, _, weights = plane_volume_rendering(mpi_coarse[:, :, 0:3], mpi_coarse[:, :, 3:],
                                                  xyz_src_BS3HW_coarse, is_bg_depth_inf)
        weights = weights.mean((2, 3, 4)).unsqueeze(1).unsqueeze(2)  # Bx1x1xS
        disparity_fine = sample_pdf(disparity_coarse_src.unsqueeze(1).unsqueeze(2), weights, S_fine)
        disparity_all = torch.cat((disparity_coarse_src, disparity_fine.squeeze(2).squeeze(1)), dim=1)
        disparity_all, _ = torch.sort(disparity_all, dim=1, descending=True)
    return mpi_predictor(src_imgs, disparity_all), disparity_all
