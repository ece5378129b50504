# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Visualizations of renderings: colormapped depths, mattes, ray weight plots."""

import cv2
import numpy as np
import torch

from mipnerf360.internal import math, stepfun

_EPS = torch.finfo(torch.float32).eps

# 256-entry colour tables, looked up like matplotlib's `cm.get_cmap(name)` (no interpolation).
_TURBO_LUT = torch.from_numpy(
    cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    / 255.).float()
_GRAY_LUT = torch.linspace(0, 1, 256)[:, None].expand(256, 3)


def _lookup(lut, x):
    """Colours of x in [0, 1] from a [N, 3] table: entry floor(x * N), clamped: [...] -> [..., 3].

    NaN is black, matplotlib's colour for bad values.
    """
    n = lut.shape[0]
    nan = torch.isnan(x)
    idx = torch.clamp(torch.floor(torch.where(nan, 0, x) * n), 0, n - 1).long()
    return torch.where(nan[..., None], 0, lut.to(x.device)[idx])


def turbo(x):
    """The turbo colormap: x [...] in [0, 1] -> [..., 3]."""
    return _lookup(_TURBO_LUT, x)


def gray(x):
    """The gray colormap: x [...] in [0, 1] -> [..., 3]."""
    return _lookup(_GRAY_LUT, x)


def weighted_percentile(x, w, ps, assume_sorted=False):
    """Percentiles ps (in [0, 100]) of all values of x, weighted by w: -> [len(ps)]."""
    x = x.reshape(-1)
    w = w.reshape(-1)
    if not assume_sorted:
        sortidx = torch.argsort(x, stable=True)
        # multinerf passes [H, W, 3] values with [H, W] weights here (the depth triplet); JAX clamps
        # the out-of-range gather indices, and so do we, to pick the same weights.
        x, w = x[sortidx], w[torch.clamp(sortidx, max=w.numel() - 1)]
    acc_w = torch.cumsum(w, dim=0)
    ps = torch.tensor(ps, dtype=x.dtype, device=x.device)
    return math.interp(ps * (acc_w[-1] / 100), acc_w, x)


def sinebow(h):
    """A cyclic colormap of uniform brightness: h [...] -> [..., 3]."""
    f = lambda x: torch.sin(torch.pi * x)**2
    return torch.stack([f(3 / 6 - h), f(5 / 6 - h), f(7 / 6 - h)], dim=-1)


def matte(vis, acc, dark=0.8, light=1.0, width=8):
    """Composites vis [H, W, C] with opacity acc [H, W] over a checkerboard of width-pixel squares."""
    rows = torch.arange(acc.shape[0], device=acc.device) % (2 * width) // width
    cols = torch.arange(acc.shape[1], device=acc.device) % (2 * width) // width
    bg = torch.where(rows[:, None] != cols[None, :], light, dark)
    return vis * acc[:, :, None] + (bg * (1 - acc))[:, :, None]


def visualize_cmap(value,
                   weight,
                   colormap,
                   lo=None,
                   hi=None,
                   percentile=99.,
                   curve_fn=lambda x: x,
                   modulus=None,
                   matte_background=True):
    """Colours a value map [H, W] (or RGB [H, W, 3] with colormap=None) weighted by weight [H, W].

    Args:
      value: [H, W] values, or [H, W, 3] when colormap is None.
      weight: [H, W] weights in [0, 1]; they set the automatic range and the matte.
      colormap: a function [...] in [0, 1] -> [..., 3] (turbo, gray), or None to use value as RGB.
      lo, hi: the range mapped to [0, 1]. None (or 0, as in multinerf) takes the weighted
        50 -+ percentile/2 percentiles of value.
      percentile: the central percentage of value (by weight) the automatic range spans.
      curve_fn: applied to value, lo and hi before scaling, e.g. log(x + eps) for depths.
      modulus: if set, show (curve_fn(value) mod modulus) / modulus; lo, hi are then unused.
      matte_background: composite over a checkerboard with weight as opacity.

    Returns:
      [H, W, 3] colours in [0, 1].
    """
    lo_auto, hi_auto = weighted_percentile(
        value, weight, [50 - percentile / 2, 50 + percentile / 2])
    # Widen the automatic range by eps so a constant map does not divide by zero.
    lo = torch.as_tensor(lo or (lo_auto - _EPS), dtype=value.dtype, device=value.device)
    hi = torch.as_tensor(hi or (hi_auto + _EPS), dtype=value.dtype, device=value.device)

    value, lo, hi = [curve_fn(x) for x in [value, lo, hi]]

    if modulus:
        value = torch.remainder(value, modulus) / modulus
    else:
        # NaN (e.g. the depth of a ray that hit nothing) maps to 0.
        value = torch.nan_to_num(
            torch.clamp((value - torch.minimum(lo, hi)) / torch.abs(hi - lo), 0, 1), nan=0.0)

    if colormap:
        colorized = colormap(value)[:, :, :3]
    else:
        if value.dim() != 3:
            raise ValueError(f'value must have 3 dims but has {value.dim()}')
        if value.shape[-1] != 3:
            raise ValueError(f'value must have 3 channels but has {value.shape[-1]}')
        colorized = value

    return matte(colorized, weight) if matte_background else colorized


def visualize_coord_mod(coords, acc):
    """Shows each point's position within its unit cell: coords [H, W, 3], acc [H, W] -> [H, W, 3]."""
    return matte(torch.remainder(coords + 1, 2) / 2, acc)


def visualize_rays(dist,
                   dist_range,
                   weights,
                   rgbs,
                   accumulate=False,
                   renormalize=False,
                   resolution=2048,
                   bg_color=0.8):
    """Draws each ray's weights (as opacity) and colours along distance, one row band per level.

    Args:
      dist: per level, [R, n_l+1] interval endpoints of the R rays.
      dist_range: (lo, hi), the distances spanned by the `resolution` columns.
      weights: per level, [R, n_l] weights.
      rgbs: per level, [R, n_l, C] colours.
      accumulate: show the running (composited) colour and weight along each ray instead.
      renormalize: scale the opacities so the largest is 1.
      resolution: number of columns (and roughly of rows).
      bg_color: background intensity.

    Returns:
      vis: [rows, resolution, C] the image; rows bands of each ray's levels, one blank row between
        rays (when resolution > R).
      vis_alpha: [rows, resolution] its opacity.
    """
    dist_vis = torch.linspace(*dist_range, resolution + 1, device=dist[0].device)
    vis_rgb, vis_alpha = [], []
    for d, w, r in zip(dist, weights, rgbs):
        if accumulate:
            # The colour and weight accumulated up to each interval; eps keeps 0/0 finite.
            w_csum = torch.cumsum(w, dim=-1)
            rw_csum = torch.cumsum(r * w[..., None], dim=-2)
            r, w = (rw_csum + _EPS) / (w_csum[..., None] + 2 * _EPS), w_csum
        vis_rgb.append(
            stepfun.resample(dist_vis, d[:, None], r.transpose(-1, -2), use_avg=True)
            .transpose(-1, -2))
        vis_alpha.append(stepfun.resample(dist_vis, d, w, use_avg=True))
    vis_rgb = torch.stack(vis_rgb, dim=1)  # [R, L, resolution, C]
    vis_alpha = torch.stack(vis_alpha, dim=1)  # [R, L, resolution]

    if renormalize:
        # max with eps: an all-zero image stays zero instead of NaN.
        vis_alpha = vis_alpha / torch.clamp(vis_alpha.max(), min=_EPS)

    if resolution > vis_rgb.shape[0]:
        num_rays, num_levels = vis_rgb.shape[:2]
        rep = resolution // (num_rays * num_levels + 1)

        def bands(x):
            """Repeats each level's row rep times and appends a blank row after each ray."""
            x = x[:, :, None].expand(num_rays, num_levels, rep, *x.shape[2:])
            x = x.reshape(num_rays, num_levels * rep, *x.shape[3:])
            x = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
            return x.reshape(-1, *x.shape[2:])

        vis_rgb, vis_alpha = bands(vis_rgb), bands(vis_alpha)

    vis = vis_rgb * vis_alpha[..., None] + (bg_color * (1 - vis_alpha))[..., None]

    # Drop the trailing blank row.
    return vis[:-1], vis_alpha[:-1]


def visualize_suite(rendering, rays):
    """All visualizations of one rendered image, as a dict of [H, W, 3] (or [H, W]) images.

    Args:
      rendering: models.render_image's output: rgb [H, W, 3], acc [H, W], distance_mean,
        distance_median, distance_percentile_5 and distance_percentile_95 [H, W], and the per-level
        lists ray_sdist, ray_weights, ray_rgbs; optionally rgb_cc, normals*, roughness.
      rays: utils.Rays of the image, origins and directions [H, W, 3].
    """
    depth_curve_fn = lambda x: -torch.log(x + _EPS)

    rgb = rendering['rgb']
    acc = rendering['acc']

    distance_mean = rendering['distance_mean']
    distance_median = rendering['distance_median']
    distance_p5 = rendering['distance_percentile_5']
    distance_p95 = rendering['distance_percentile_95']
    acc = torch.where(torch.isnan(distance_mean), torch.zeros_like(acc), acc)

    # Where the rays end, in world coordinates.
    coords = rays.origins + rays.directions * distance_mean[:, :, None]

    vis_depth_mean, vis_depth_median = [
        visualize_cmap(x, acc, turbo, curve_fn=depth_curve_fn)
        for x in [distance_mean, distance_median]
    ]

    # The 5th, 50th and 95th depth percentiles as RGB: grey where all three agree (a sharp
    # surface), purple for a thin even spread, red or blue when the spread is one-sided.
    vis_depth_triplet = visualize_cmap(
        torch.stack([2 * distance_median - distance_p5, distance_median, distance_p95], dim=-1),
        acc,
        None,
        curve_fn=lambda x: torch.log(x + _EPS))

    dist = rendering['ray_sdist']
    dist_range = (0, 1)
    weights = rendering['ray_weights']
    rgbs = [torch.clamp(r, 0, 1) for r in rendering['ray_rgbs']]

    vis_ray_colors, _ = visualize_rays(dist, dist_range, weights, rgbs)

    sqrt_weights = [torch.sqrt(w) for w in weights]
    sqrt_ray_weights, ray_alpha = visualize_rays(
        dist,
        dist_range,
        [torch.ones_like(lw) for lw in sqrt_weights],
        [lw[..., None] for lw in sqrt_weights],
        bg_color=0,
    )
    sqrt_ray_weights = sqrt_ray_weights[..., 0]

    # Red where no interval covers a pixel.
    null_color = torch.tensor([1., 0., 0.], device=rgb.device)
    vis_ray_weights = torch.where(
        ray_alpha[:, :, None] == 0,
        null_color[None, None],
        visualize_cmap(
            sqrt_ray_weights,
            torch.ones_like(sqrt_ray_weights),
            gray,
            lo=0,
            hi=1,
            matte_background=False,
        ),
    )

    vis = {
        'color': rgb,
        'acc': acc,
        'color_matte': matte(rgb, acc),
        'depth_mean': vis_depth_mean,
        'depth_median': vis_depth_median,
        'depth_triplet': vis_depth_triplet,
        'coords_mod': visualize_coord_mod(coords, acc),
        'ray_colors': vis_ray_colors,
        'ray_weights': vis_ray_weights,
    }

    if 'rgb_cc' in rendering:
        vis['color_corrected'] = rendering['rgb_cc']

    for key, val in rendering.items():
        if key.startswith('normals'):
            vis[key] = matte(val / 2. + 0.5, acc)

    if 'roughness' in rendering:
        vis['roughness'] = matte(torch.tanh(rendering['roughness']), acc)

    return vis
