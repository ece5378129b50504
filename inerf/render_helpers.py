# Derived from salykovaa/inerf (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
# and yenchenlin/nerf-pytorch (MIT licence, Copyright (c) 2020 bmild; see THIRD_PARTY_NOTICES.md).
"""Rays, hierarchical sampling and volume rendering of nerf-pytorch (salykovaa/inerf's render_helpers).

Cameras are OpenGL/Blender: x right, y up, the camera looks down -z; pixel (i, j) has its ray through
the pixel corner ((i - W/2) / focal, -(j - H/2) / focal, -1), as in nerf-pytorch. pixel_center=True
(Config.pixel_center) shifts it to the pixel centre (i + 0.5, j + 0.5), where Blender and
data_tools.synth render it; the half-pixel shift costs a lot on tiny images.
"""

import os

import imageio.v2 as imageio
import numpy as np
import torch
import torch.nn.functional as F
import tqdm


def to8b(x):
    """float image in [0, 1] (numpy) -> uint8."""
    return (255 * np.clip(x, 0, 1)).astype(np.uint8)


def _pixel_dirs(i, j, H, W, focal, pixel_center=False):
    """Camera-frame ray directions [..., 3] of pixel columns i and rows j (z = -1)."""
    if pixel_center:
        i, j = i + .5, j + .5
    return torch.stack([(i - W * .5) / focal, -(j - H * .5) / focal, -torch.ones_like(i)], -1)


def get_rays(H, W, focal, c2w, pixel_center=False):
    """Rays of every pixel: (rays_o, rays_d), each [H, W, 3], for c2w [3 or 4, 4]."""
    i, j = torch.meshgrid(torch.arange(W, dtype=c2w.dtype, device=c2w.device),
                          torch.arange(H, dtype=c2w.dtype, device=c2w.device), indexing='xy')
    return rays_from_dirs(_pixel_dirs(i, j, H, W, focal, pixel_center), c2w)


def get_rays_at(H, W, focal, c2w, coords, pixel_center=False):
    """Rays of the pixels coords [N, 2] = (x, y) integer: (rays_o, rays_d), each [N, 3]."""
    coords = coords.to(device=c2w.device, dtype=c2w.dtype)
    return rays_from_dirs(_pixel_dirs(coords[:, 0], coords[:, 1], H, W, focal, pixel_center), c2w)


def rays_from_dirs(dirs, c2w):
    """Camera-frame directions [..., 3] -> world (rays_o, rays_d), each [..., 3]."""
    rays_d = torch.sum(dirs[..., None, :] * c2w[:3, :3], -1)
    rays_o = c2w[:3, -1].expand(rays_d.shape)
    return rays_o, rays_d


def get_rays_np(H, W, focal, c2w):
    """numpy get_rays: (rays_o, rays_d), each [H, W, 3] float32."""
    c2w = np.asarray(c2w, dtype=np.float32)
    i, j = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32), indexing='xy')
    dirs = np.stack([(i - W * .5) / focal, -(j - H * .5) / focal, -np.ones_like(i)], -1)
    rays_d = np.sum(dirs[..., None, :] * c2w[:3, :3], -1)
    rays_o = np.broadcast_to(c2w[:3, -1], np.shape(rays_d))
    return rays_o, rays_d


def ndc_rays(H, W, focal, near, rays_o, rays_d):
    """Rays [..., 3] moved to the near plane and mapped to NDC (NeRF supplementary, eq. 25-26)."""
    t = -(near + rays_o[..., 2]) / rays_d[..., 2]
    rays_o = rays_o + t[..., None] * rays_d
    ox, oy, oz = rays_o[..., 0], rays_o[..., 1], rays_o[..., 2]
    dx, dy, dz = rays_d[..., 0], rays_d[..., 1], rays_d[..., 2]
    o0 = -1. / (W / (2. * focal)) * ox / oz
    o1 = -1. / (H / (2. * focal)) * oy / oz
    o2 = 1. + 2. * near / oz
    d0 = -1. / (W / (2. * focal)) * (dx / dz - ox / oz)
    d1 = -1. / (H / (2. * focal)) * (dy / dz - oy / oz)
    d2 = -2. * near / oz
    return torch.stack([o0, o1, o2], -1), torch.stack([d0, d1, d2], -1)


def sample_pdf(bins, weights, N_samples, det=False):
    """Inverse-CDF samples [..., N_samples] of the piecewise-constant pdf weights [..., K] on bins [..., K+1]."""
    # + 1e-5: an all-zero weight row would give a 0/0 pdf.
    weights = weights + 1e-5
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
    shape = list(cdf.shape[:-1]) + [N_samples]
    if det:
        u = torch.linspace(0., 1., steps=N_samples, device=cdf.device, dtype=cdf.dtype).expand(shape)
    else:
        u = torch.rand(shape, device=cdf.device, dtype=cdf.dtype)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp(inds - 1, min=0)
    above = torch.clamp(inds, max=cdf.shape[-1] - 1)
    inds_g = torch.stack([below, above], -1)
    matched = list(inds_g.shape[:-1]) + [cdf.shape[-1]]
    cdf_g = torch.gather(cdf.unsqueeze(-2).expand(matched), -1, inds_g)
    bins_g = torch.gather(bins.unsqueeze(-2).expand(matched), -1, inds_g)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    # A bin of (nearly) zero mass: divide by 1 instead, which puts the sample at its lower edge.
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    t = (u - cdf_g[..., 0]) / denom
    return bins_g[..., 0] + t * (bins_g[..., 1] - bins_g[..., 0])


def raw2outputs(raw, z_vals, rays_d, raw_noise_std=0, white_bkgd=False):
    """Volume rendering (NeRF eq. 3) of raw [R, S, 4] at z_vals [R, S] along rays_d [R, 3].

    Returns rgb_map [R, 3], disp_map [R], acc_map [R], weights [R, S], depth_map [R].
    """
    dists = z_vals[..., 1:] - z_vals[..., :-1]
    # The last sample's interval is "infinite" (1e10), as in the original.
    dists = torch.cat([dists, torch.full_like(dists[..., :1], 1e10)], -1)
    dists = dists * torch.norm(rays_d[..., None, :], dim=-1)
    rgb = torch.sigmoid(raw[..., :3])
    sigma = raw[..., 3]
    if raw_noise_std > 0.:
        sigma = sigma + torch.randn_like(sigma) * raw_noise_std
    alpha = 1. - torch.exp(-F.relu(sigma) * dists)
    # + 1e-10 inside the product as in the original (keeps the transmittance of opaque rays > 0).
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1. - alpha + 1e-10], -1), -1)
    weights = alpha * trans[..., :-1]
    rgb_map = torch.sum(weights[..., None] * rgb, -2)
    depth_map = torch.sum(weights * z_vals, -1)
    acc_map = torch.sum(weights, -1)
    # max with 1e-10: rays that hit nothing have depth 0 / acc 0.
    disp_map = 1. / torch.clamp(depth_map / acc_map, min=1e-10)
    if white_bkgd:
        rgb_map = rgb_map + (1. - acc_map[..., None])
    return rgb_map, disp_map, acc_map, weights, depth_map


def render_rays(ray_batch, network_fn, network_query_fn, N_samples, retraw=False, lindisp=False,
                perturb=0., N_importance=0, network_fine=None, white_bkgd=False, raw_noise_std=0.):
    """Coarse (and fine) rendering of ray_batch [R, 8 or 11] = (o, d, near, far[, viewdirs]).

    Returns a dict of rgb_map [R, 3], disp_map, acc_map [R] (fine when N_importance > 0), and
    rgb0/disp0/acc0/z_std for the coarse level, raw [R, S, 4] when retraw.
    """
    N_rays = ray_batch.shape[0]
    rays_o, rays_d = ray_batch[:, 0:3], ray_batch[:, 3:6]
    viewdirs = ray_batch[:, -3:] if ray_batch.shape[-1] > 8 else None
    bounds = torch.reshape(ray_batch[..., 6:8], [-1, 1, 2])
    near, far = bounds[..., 0], bounds[..., 1]
    t_vals = torch.linspace(0., 1., steps=N_samples, device=ray_batch.device)
    if not lindisp:
        z_vals = near * (1. - t_vals) + far * t_vals
    else:
        z_vals = 1. / (1. / near * (1. - t_vals) + 1. / far * t_vals)
    z_vals = z_vals.expand([N_rays, N_samples])
    if perturb > 0.:
        mids = .5 * (z_vals[..., 1:] + z_vals[..., :-1])
        upper = torch.cat([mids, z_vals[..., -1:]], -1)
        lower = torch.cat([z_vals[..., :1], mids], -1)
        z_vals = lower + (upper - lower) * torch.rand_like(z_vals)
    pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]
    raw = network_query_fn(pts, viewdirs, network_fn)
    rgb_map, disp_map, acc_map, weights, _ = raw2outputs(raw, z_vals, rays_d, raw_noise_std, white_bkgd)
    ret = {}
    if N_importance > 0:
        ret.update(rgb0=rgb_map, disp0=disp_map, acc0=acc_map)
        z_vals_mid = .5 * (z_vals[..., 1:] + z_vals[..., :-1])
        z_samples = sample_pdf(z_vals_mid, weights[..., 1:-1], N_importance, det=(perturb == 0.))
        z_samples = z_samples.detach()
        z_vals, _ = torch.sort(torch.cat([z_vals, z_samples], -1), -1)
        pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]
        run_fn = network_fn if network_fine is None else network_fine
        raw = network_query_fn(pts, viewdirs, run_fn)
        rgb_map, disp_map, acc_map, weights, _ = raw2outputs(raw, z_vals, rays_d, raw_noise_std,
                                                             white_bkgd)
        ret['z_std'] = torch.std(z_samples, dim=-1, unbiased=False)
    ret.update(rgb_map=rgb_map, disp_map=disp_map, acc_map=acc_map)
    if retraw:
        ret['raw'] = raw
    return ret


def batchify_rays(rays_flat, chunk=1024 * 32, **kwargs):
    """render_rays over chunks of `chunk` rays, outputs concatenated."""
    all_ret = {}
    for i in range(0, rays_flat.shape[0], chunk):
        for k, v in render_rays(rays_flat[i:i + chunk], **kwargs).items():
            all_ret.setdefault(k, []).append(v)
    return {k: torch.cat(v, 0) for k, v in all_ret.items()}


def render(H, W, focal, chunk=1024 * 32, rays=None, c2w=None, ndc=True, near=0., far=1.,
           use_viewdirs=False, c2w_staticcam=None, pixel_center=False, **kwargs):
    """Renders rays = (rays_o, rays_d) [2, ..., 3], or a whole image when c2w [3, 4] is given.

    Returns [rgb_map [..., 3], disp_map [...], acc_map [...], extras dict].
    """
    if c2w is not None:
        rays_o, rays_d = get_rays(H, W, focal, c2w, pixel_center)
    else:
        rays_o, rays_d = rays
    if use_viewdirs:
        viewdirs = rays_d
        if c2w_staticcam is not None:
            rays_o, rays_d = get_rays(H, W, focal, c2w_staticcam, pixel_center)
        viewdirs = viewdirs / torch.norm(viewdirs, dim=-1, keepdim=True)
        viewdirs = torch.reshape(viewdirs, [-1, 3]).float()
    sh = rays_d.shape
    if ndc:
        rays_o, rays_d = ndc_rays(H, W, focal, 1., rays_o, rays_d)
    rays_o = torch.reshape(rays_o, [-1, 3]).float()
    rays_d = torch.reshape(rays_d, [-1, 3]).float()
    near, far = near * torch.ones_like(rays_d[..., :1]), far * torch.ones_like(rays_d[..., :1])
    rays = torch.cat([rays_o, rays_d, near, far], -1)
    if use_viewdirs:
        rays = torch.cat([rays, viewdirs], -1)
    all_ret = batchify_rays(rays, chunk, **kwargs)
    for k in all_ret:
        all_ret[k] = torch.reshape(all_ret[k], list(sh[:-1]) + list(all_ret[k].shape[1:]))
    k_extract = ['rgb_map', 'disp_map', 'acc_map']
    return [all_ret[k] for k in k_extract] + [{k: v for k, v in all_ret.items() if k not in k_extract}]


def render_path(render_poses, hwf, chunk, render_kwargs, savedir=None, render_factor=0):
    """Renders each pose [N, 3+, 4]; returns (rgbs [N, H, W, 3], disps [N, H, W]) as numpy."""
    H, W, focal = hwf
    if render_factor != 0:
        H, W, focal = H // render_factor, W // render_factor, focal / render_factor
    rgbs, disps = [], []
    with torch.no_grad():
        for i, c2w in enumerate(tqdm.tqdm(render_poses, desc='render', leave=False)):
            rgb, disp, _, _ = render(H, W, focal, chunk=chunk, c2w=c2w[:3, :4], **render_kwargs)
            rgbs.append(rgb.cpu().numpy())
            disps.append(disp.cpu().numpy())
            if savedir is not None:
                imageio.imwrite(os.path.join(savedir, f'{i:03d}.png'), to8b(rgbs[-1]))
    return np.stack(rgbs, 0), np.stack(disps, 0)
