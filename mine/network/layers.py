# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""MINE's losses and metrics: PSNR and the two edge-aware disparity smoothness terms."""

import torch
import torch.nn.functional as F


def psnr(img1, img2):
    """PSNR per image (peak 1.0), then the mean: BxCxHxW -> scalar."""
    mse = ((img1 - img2) ** 2).mean((1, 2, 3))
    return (20 * torch.log10(1.0 / torch.sqrt(mse))).mean()


def _sobel_abs(x, normalized):
    """|Sobel gradients| with replicate padding (kornia's spatial_gradient): BxCxHxW -> BxCx2xHxW."""
    # [1, 2, 1]^T [-1, 0, 1] made on x's device: a literal tensor would be a host copy (and a CUDA sync) per call.
    diff = torch.arange(-1.0, 2.0, dtype=x.dtype, device=x.device)
    kx = (2 - diff.abs())[:, None] * diff[None, :]
    kernel = torch.stack((kx, kx.t()))  # 2x3x3: d/dx, d/dy
    if normalized:
        kernel = kernel / kernel.abs().sum(dim=(1, 2), keepdim=True)
    B, C, H, W = x.shape
    padded = F.pad(x.reshape(B * C, 1, H, W), (1, 1, 1, 1), mode="replicate")
    return torch.abs(F.conv2d(padded, kernel.unsqueeze(1))).reshape(B, C, 2, H, W)


def edge_aware_loss(img, disp, gmin, grad_ratio):
    """MINE's v1 smoothness: mean(relu(|grad d|_inorm - gmin) * (1 - edge)): img Bx3xHxW, disp Bx1xHxW -> scalar.

    The edge mask is the channel-summed image Sobel magnitude over (its per-image max * grad_ratio),
    clipped at 1; disparity gradients are instance-normalised.
    """
    grad_img = _sobel_abs(img, normalized=True).sum(1, keepdim=True)  # Bx1x2xHxW
    grad_img_x, grad_img_y = grad_img[:, :, 0], grad_img[:, :, 1]
    edge_x = grad_img_x / (torch.amax(grad_img_x, dim=(1, 2, 3), keepdim=True) * grad_ratio)
    edge_y = grad_img_y / (torch.amax(grad_img_y, dim=(1, 2, 3), keepdim=True) * grad_ratio)
    # where, not clamp: a flat image (0 / 0) gets edge 1, i.e. no smoothness penalty, as in the original.
    edge_x = torch.where(edge_x < 1, edge_x, torch.ones_like(edge_x))
    edge_y = torch.where(edge_y < 1, edge_y, torch.ones_like(edge_y))

    grad_disp = _sobel_abs(disp, normalized=False)
    grad_disp_x = F.instance_norm(grad_disp[:, :, 0]) - gmin
    grad_disp_y = F.instance_norm(grad_disp[:, :, 1]) - gmin
    loss_x = torch.where(grad_disp_x > 0.0, grad_disp_x, torch.zeros_like(grad_disp_x)) * (1.0 - edge_x)
    loss_y = torch.where(grad_disp_y > 0.0, grad_disp_y, torch.zeros_like(grad_disp_y)) * (1.0 - edge_y)
    return (loss_x + loss_y).mean()


def edge_aware_loss_v2(img, disp):
    """monodepth2's edge-aware smoothness of disp / mean(disp): img Bx3xHxW, disp Bx1xHxW -> scalar."""
    # +1e-7: a zero-mean disparity map would otherwise divide by zero.
    disp = disp / (disp.mean(2, True).mean(3, True) + 1e-7)
    grad_disp_x = torch.abs(disp[:, :, :, :-1] - disp[:, :, :, 1:])
    grad_disp_y = torch.abs(disp[:, :, :-1, :] - disp[:, :, 1:, :])
    grad_img_x = torch.mean(torch.abs(img[:, :, :, :-1] - img[:, :, :, 1:]), 1, keepdim=True)
    grad_img_y = torch.mean(torch.abs(img[:, :, :-1, :] - img[:, :, 1:, :]), 1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()
