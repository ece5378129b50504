# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""Point transforms, nearest-pixel gathering and disparity sampling for MPI planes."""

import torch


def transform_G_xyz(G, xyz, is_return_homo=False):
    """Applies rigid transforms G to points: G Bx4x4, xyz Bx3xN -> Bx3xN (Bx4xN if is_return_homo).

    Unbatched inputs (4x4, 3xN) give a batch of one.
    """
    if G.dim() != xyz.dim():
        raise ValueError(f"G and xyz must both be batched or both not: {tuple(G.shape)}, {tuple(xyz.shape)}")
    if G.dim() == 2:
        G, xyz = G.unsqueeze(0), xyz.unsqueeze(0)
    xyz_homo = torch.cat((xyz, torch.ones_like(xyz[:, 0:1, :])), dim=1)
    G_xyz = torch.matmul(G, xyz_homo)
    return G_xyz if is_return_homo else G_xyz[:, 0:3, :]


def gather_pixel_by_pxpy(img, pxpy):
    """Nearest-pixel lookup (round, clamp to the image): img BxCxHxW, pxpy Bx2xN (x, y) -> BxCxN."""
    B, C, H, W = img.size()
    with torch.no_grad():
        # The original only rounds float32 input (any other dtype crashes there); every float rounds here.
        pxpy_int = torch.round(pxpy).long() if pxpy.is_floating_point() else pxpy.long()
        px = torch.clamp(pxpy_int[:, 0:1, :], min=0, max=W - 1)
        py = torch.clamp(pxpy_int[:, 1:2, :], min=0, max=H - 1)
        idx = px + W * py  # Bx1xN
    return torch.gather(img.reshape(B, C, H * W), dim=2, index=idx.expand(B, C, idx.size(2)))


def uniformly_sample_disparity_from_bins(batch_size, disparity_np, device):
    """One uniform draw in each bin of descending edges disparity_np [S+1] -> BxS (descending)."""
    if not disparity_np[0] > disparity_np[-1]:
        raise ValueError("disparity bin edges must be descending (near to far)")
    edges = torch.as_tensor(disparity_np, dtype=torch.float32, device=device)  # S+1
    S = edges.shape[0] - 1
    u = torch.rand((batch_size, S), dtype=torch.float32, device=device)
    return edges[:-1].unsqueeze(0) + (edges[1:] - edges[:-1]).unsqueeze(0) * u


def uniformly_sample_disparity_from_linspace_bins(batch_size, num_bins, start, end, device):
    """Stratified disparities: one uniform draw in each of num_bins equal bins from start to end -> BxS."""
    if not start > end:
        raise ValueError(f"disparity start ({start}) must exceed end ({end})")
    edges = torch.linspace(start, end, num_bins + 1, dtype=torch.float32, device=device)  # S+1
    u = torch.rand((batch_size, num_bins), dtype=torch.float32, device=device)
    return edges[:-1].unsqueeze(0) + (edges[1] - edges[0]) * u


def sample_pdf(values, weights, N_samples):
    """Inverse-CDF sampling of N_samples values: values, weights Bx1xNxS -> Bx1xNxN_samples.

    Bin edges are the midpoints of `values` with its first and last entries as the outer edges;
    within a bin the sample is linear in the CDF.
    """
    B, _, N, S = weights.size()
    if values.size() != (B, 1, N, S):
        raise ValueError(f"values {tuple(values.shape)} and weights {tuple(weights.shape)} must match")
    mids = 0.5 * (values[..., 1:] + values[..., :-1])
    bin_edges = torch.cat((values[..., 0:1], mids, values[..., -1:]), dim=3)  # Bx1xNx(S+1)

    # +1e-5: an all-zero weight row still gives a valid (flat) CDF.
    pdf = weights / (torch.sum(weights, dim=3, keepdim=True) + 1e-5)
    cdf = torch.cat((torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=3)), dim=3)  # Bx1xNx(S+1)

    u = torch.rand((B, 1, N, N_samples), dtype=weights.dtype, device=weights.device)
    idx = torch.searchsorted(cdf, u, right=True)
    idx_lower = torch.clamp(idx - 1, min=0)
    idx_upper = torch.clamp(idx, max=S)
    cdf_lower, cdf_upper = torch.gather(cdf, 3, idx_lower), torch.gather(cdf, 3, idx_upper)
    bin_lower, bin_upper = torch.gather(bin_edges, 3, idx_lower), torch.gather(bin_edges, 3, idx_upper)

    cdf_intervals = cdf_upper - cdf_lower
    # The clamps above can make a zero-width CDF interval: put the sample in the bin's middle.
    t = (u - cdf_lower) / torch.clamp(cdf_intervals, min=1e-5)
    t = torch.where(cdf_intervals <= 1e-4, torch.full_like(t, 0.5), t)
    return bin_lower + t * (bin_upper - bin_lower)
