# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""Plane-induced homography warping of source-view planes into a target view."""

import torch
import torch.nn.functional as F

from mine.utils import inverse


class HomographySample:
    """Warps fronto-parallel source planes into an H_tgt x W_tgt target image."""

    def __init__(self, H_tgt, W_tgt, device=None):
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.Height_tgt = H_tgt
        self.Width_tgt = W_tgt
        self.meshgrid = self.grid_generation(H_tgt, W_tgt, self.device).permute(2, 0, 1).contiguous()  # 3xHxW
        self.n = self.plane_normal_generation(self.device)

    @staticmethod
    def grid_generation(H, W, device):
        """Homogeneous pixel grid (x, y, 1) with x = 0..W-1, y = 0..H-1: HxWx3."""
        y, x = torch.meshgrid(
            torch.arange(H, dtype=torch.float32, device=device),
            torch.arange(W, dtype=torch.float32, device=device),
            indexing="ij",
        )
        return torch.stack((x, y, torch.ones_like(x)), dim=2)

    @staticmethod
    def plane_normal_generation(device):
        """Normal of the fronto-parallel planes, (0, 0, 1): [3]."""
        return torch.tensor([0, 0, 1], dtype=torch.float32, device=device)

    def sample(self, src_BCHW, d_src_B, G_tgt_src, K_src_inv, K_tgt):
        """Samples src planes at depth d_src_B into the target view.

        Args:
            src_BCHW: BxCxHxW values on the source planes.
            d_src_B: B plane depths (the plane is z = d in the source frame).
            G_tgt_src: Bx4x4 source-to-target transform; K_src_inv, K_tgt: Bx3x3.

        Returns:
            tgt_BCHW BxCxH_tgtxW_tgt and valid_mask BxH_tgtxW_tgt (bool: lands inside the source).
        """
        B, _, H_src, W_src = src_BCHW.size()
        device = src_BCHW.device
        R_tgt_src = G_tgt_src[:, 0:3, 0:3].to(device)
        t_tgt_src = G_tgt_src[:, 0:3, 3].to(device)
        n = self.n.to(device).unsqueeze(0).expand(B, 3)

        # H_tgt_src = K_tgt (R - t n^T / -d) K_src^-1 for the plane n^T X - d = 0.
        d = d_src_B.reshape(B, 1, 1)
        R_tnd = R_tgt_src - torch.matmul(t_tgt_src.unsqueeze(2), n.unsqueeze(1)) / -d
        H_tgt_src = torch.matmul(K_tgt.to(device), torch.matmul(R_tnd, K_src_inv.to(device)))
        # No gradient through the inverse (as the original): gradients reach the plane values only.
        with torch.no_grad():
            H_src_tgt = inverse(H_tgt_src)

        grid_tgt = self.meshgrid.to(device).reshape(1, 3, -1).expand(B, 3, self.Height_tgt * self.Width_tgt)
        grid_src_homo = torch.matmul(H_src_tgt, grid_tgt).reshape(B, 3, self.Height_tgt, self.Width_tgt)
        grid_src = (grid_src_homo[:, 0:2] / grid_src_homo[:, 2:]).permute(0, 2, 3, 1)  # BxHxWx2

        x, y = grid_src[..., 0], grid_src[..., 1]
        valid_mask = (x > -1) & (x < W_src) & (y > -1) & (y < H_src)

        # Pixel x covers [x - 0.5, x + 0.5]: normalise for align_corners=False.
        grid_norm = torch.stack(((x + 0.5) / (W_src * 0.5) - 1, (y + 0.5) / (H_src * 0.5) - 1), dim=-1)
        # NaN coordinates (a diverged run) make grid_sample's border-padding backward crash the process
        # (segfault) before the loss check can name the step; finite coordinates are unchanged.
        grid_norm = torch.nan_to_num(grid_norm, nan=0.0)
        tgt_BCHW = F.grid_sample(src_BCHW, grid=grid_norm, padding_mode="border", align_corners=False)
        return tgt_BCHW, valid_mask
