# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Piecewise-constant 1D functions ("step functions") along the last axis of a tensor.

Naming, shared by every function here: `t` [..., n+1] are the sorted bin endpoints; `y` [..., n]
are free per-bin values; `w` [..., n] are bin weights (a histogram) summing to at most 1;
`p` [..., n] are non-negative bin densities integrating to at most 1 (w = p * bin width). Leading
dimensions broadcast unless a docstring says otherwise.
"""

import torch

from mipnerf360.internal import math

_EPS = torch.finfo(torch.float32).eps


def _take(y, idx):
    """y[..., idx] along the last axis, with y's and idx's leading dimensions broadcast."""
    batch = torch.broadcast_shapes(y.shape[:-1], idx.shape[:-1])
    return torch.gather(y.expand(batch + y.shape[-1:]), -1, idx.expand(batch + idx.shape[-1:]))


def searchsorted(a, v):
    """Indices of the endpoints of a around each v: a [..., n] sorted, v [..., m] -> 2 x [..., m].

    Returns:
      (idx_lo, idx_hi), int64, with a[idx_lo] <= v < a[idx_hi]; a v outside [a[0], a[-1]) gets
      idx_lo == idx_hi == 0 (below) or n - 1 (at or above a[-1]). idx_hi is np.searchsorted's
      side='right' index wherever v lies inside.
    """
    batch = torch.broadcast_shapes(a.shape[:-1], v.shape[:-1])
    a = a.expand(batch + a.shape[-1:]).contiguous()
    v = v.expand(batch + v.shape[-1:]).contiguous()
    num_le = torch.searchsorted(a, v, right=True)  # How many entries of a are <= v.
    idx_lo = torch.clamp(num_le - 1, min=0)
    idx_hi = torch.clamp(num_le, max=a.shape[-1] - 1)
    return idx_lo, idx_hi


def query(tq, t, y, outside_value=0):
    """Step function (t, y) evaluated at tq: tq [..., m], t [..., n+1], y [..., n] -> [..., m]."""
    idx_lo, idx_hi = searchsorted(t, tq)
    # idx_lo reaches n (one past y) only for tq >= t[-1], where outside_value replaces the result;
    # clip it so the gather stays in range.
    y_lo = _take(y, torch.clamp(idx_lo, max=y.shape[-1] - 1))
    return torch.where(idx_lo == idx_hi, outside_value, y_lo)


def inner_outer(t0, t1, y1):
    """Inner and outer measures of (t1, y1) on the bins of t0: t0 [..., m+1] -> 2 x [..., m].

    The outer measure sums y1 over every t1 bin touching a t0 bin, the inner one over those inside.
    """
    cy1 = torch.cat([torch.zeros_like(y1[..., :1]), torch.cumsum(y1, dim=-1)], dim=-1)
    idx_lo, idx_hi = searchsorted(t1, t0)
    cy1_lo = _take(cy1, idx_lo)
    cy1_hi = _take(cy1, idx_hi)
    y0_outer = cy1_hi[..., 1:] - cy1_lo[..., :-1]
    # A t0 bin that holds no whole t1 bin has an empty inner measure.
    y0_inner = torch.where(
        idx_hi[..., :-1] <= idx_lo[..., 1:], cy1_lo[..., 1:] - cy1_hi[..., :-1], 0
    )
    return y0_inner, y0_outer


def lossfun_outer(t, w, t_env, w_env, eps=_EPS):
    """Proposal loss max(0, w - w_outer)^2 / w: (t_env, w_env) must bound (t, w) above. [..., n]."""
    _, w_outer = inner_outer(t, t_env, w_env)
    # Only w above the outer envelope is penalised (pulling the envelope up works better than
    # pushing w down to the inner one). Dividing the square by w gives a gradient that stays
    # constant as w_outer -> 0; eps keeps empty bins (w = 0) at a loss of 0 instead of 0/0.
    return torch.clamp(w - w_outer, min=0) ** 2 / (w + eps)


def weight_to_pdf(t, w, eps=_EPS**2):
    """Bin weights to densities p = w / width: t [..., n+1], w [..., n] -> [..., n]."""
    # eps bounds the width away from 0 so that empty (zero-width) bins do not divide by zero.
    return w / torch.clamp(t[..., 1:] - t[..., :-1], min=eps)


def pdf_to_weight(t, p):
    """Bin densities to weights w = p * width: t [..., n+1], p [..., n] -> [..., n]."""
    return p * (t[..., 1:] - t[..., :-1])


def max_dilate(t, w, dilation, domain=(-torch.inf, torch.inf)):
    """Max-pool the non-negative step function (t, w) by +-dilation: -> t [..., 3n+1], w [..., 3n].

    Each output bin gets the largest w of the input bins that reach it once widened by dilation
    on both sides. The endpoints are the input ones plus each bin's widened ends, sorted (ties
    kept) and clipped to domain = (min, max).
    """
    t0 = t[..., :-1] - dilation
    t1 = t[..., 1:] + dilation
    t_dilate = torch.sort(torch.cat([t, t0, t1], dim=-1), dim=-1).values
    t_dilate = torch.clamp(t_dilate, *domain)
    covers = (t0[..., None, :] <= t_dilate[..., None]) & (t1[..., None, :] > t_dilate[..., None])
    w_dilate = torch.amax(torch.where(covers, w[..., None, :], 0), dim=-1)[..., :-1]
    return t_dilate, w_dilate


def max_dilate_weights(
    t, w, dilation, domain=(-torch.inf, torch.inf), renormalize=False, eps=_EPS**2
):
    """max_dilate() applied to the density of the weights (t, w): -> t [..., 3n+1], w [..., 3n].

    With renormalize the dilated weights are rescaled to sum to 1.
    """
    p = weight_to_pdf(t, w)
    t_dilate, p_dilate = max_dilate(t, p, dilation, domain=domain)
    w_dilate = pdf_to_weight(t_dilate, p_dilate)
    if renormalize:
        # eps: all-zero weights stay zero instead of becoming 0/0.
        w_dilate = w_dilate / torch.clamp(torch.sum(w_dilate, dim=-1, keepdim=True), min=eps)
    return t_dilate, w_dilate


def integrate_weights(w):
    """CDF at the bin endpoints of weights that sum to 1: w [..., n] -> cw [..., n+1].

    cw[..., 0] is exactly 0 and cw[..., -1] exactly 1; w that does not sum to 1 is silently
    treated as if it did.
    """
    # Clip at 1: float round-off in the cumulative sum must not push the CDF above its end value.
    cw = torch.clamp(torch.cumsum(w[..., :-1], dim=-1), max=1)
    shape = cw.shape[:-1] + (1,)
    zeros = torch.zeros(shape, dtype=cw.dtype, device=cw.device)
    ones = torch.ones(shape, dtype=cw.dtype, device=cw.device)
    return torch.cat([zeros, cw, ones], dim=-1)


def invert_cdf(u, t, w_logits, use_gpu_resampling=False):
    """Inverse CDF of the histogram (t, softmax(w_logits)) at u in [0, 1): u [..., k] -> [..., k].

    use_gpu_resampling picks math.interp (gathers) over math.sorted_interp (comparisons).
    """
    w = torch.softmax(w_logits, dim=-1)
    cw = integrate_weights(w)
    interp_fn = math.interp if use_gpu_resampling else math.sorted_interp
    return interp_fn(u, cw, t)


def sample(
    rng,
    t,
    w_logits,
    num_samples,
    single_jitter=False,
    deterministic_center=False,
    use_gpu_resampling=False,
):
    """Draws num_samples sorted points from the step-function PDF (t, softmax(w_logits)).

    Args:
      rng: torch.Generator on t's device for stratified random samples, or None for the
        deterministic evenly spaced quantiles.
      t: [..., n+1], sorted bin endpoints.
      w_logits: [..., n], logits of the bin weights.
      num_samples: int, the number of samples.
      single_jitter: bool, jitter all samples of a row by the same offset (else independently).
      deterministic_center: bool, with rng None take the centres of num_samples equal-mass strata
        instead of quantiles spanning [0, 1 - eps].
      use_gpu_resampling: bool, invert the CDF with gathers (fast on GPU) instead of comparisons.

    Returns:
      t_samples: [..., num_samples].
    """
    factory = {"dtype": t.dtype, "device": t.device}
    if rng is None:
        # The quantiles stop at 1 - eps, as a uniform draw in [0, 1) does.
        if deterministic_center:
            pad = 1 / (2 * num_samples)
            u = torch.linspace(pad, 1.0 - pad - _EPS, num_samples, **factory)
        else:
            u = torch.linspace(0, 1.0 - _EPS, num_samples, **factory)
        u = u.expand(t.shape[:-1] + (num_samples,))
    else:
        # One stratum per sample; the jitter range keeps u below 1 and the samples sorted.
        u_max = _EPS + (1 - _EPS) / num_samples
        max_jitter = (1 - u_max) / (num_samples - 1) - _EPS
        d = 1 if single_jitter else num_samples
        jitter = torch.rand(t.shape[:-1] + (d,), generator=rng, **factory) * max_jitter
        u = torch.linspace(0, 1 - u_max, num_samples, **factory) + jitter
    return invert_cdf(u, t, w_logits, use_gpu_resampling=use_gpu_resampling)


def sample_intervals(
    rng,
    t,
    w_logits,
    num_samples,
    single_jitter=False,
    domain=(-torch.inf, torch.inf),
    use_gpu_resampling=False,
):
    """Draws num_samples intervals from the step-function PDF: -> endpoints [..., num_samples+1].

    Samples centres as sample() with deterministic_center=True, then places the endpoints at the
    midpoints between neighbouring centres; the outer two are the first/last midpoint reflected
    about the first/last centre, clipped to domain = (min, max). Other arguments as sample().
    """
    if num_samples <= 1:
        raise ValueError(f"num_samples must be > 1, is {num_samples}.")
    centers = sample(
        rng,
        t,
        w_logits,
        num_samples,
        single_jitter,
        deterministic_center=True,
        use_gpu_resampling=use_gpu_resampling,
    )
    mid = (centers[..., 1:] + centers[..., :-1]) / 2
    minval, maxval = domain
    first = torch.clamp(2 * centers[..., :1] - mid[..., :1], min=minval)
    last = torch.clamp(2 * centers[..., -1:] - mid[..., -1:], max=maxval)
    return torch.cat([first, mid, last], dim=-1)


def lossfun_distortion(t, w):
    """Distortion loss of mip-NeRF 360, the double integral of w(s) w(s') |s - s'|: -> [...]."""
    # Between different bins: pairwise distances of the bin midpoints.
    ut = (t[..., 1:] + t[..., :-1]) / 2
    dut = torch.abs(ut[..., :, None] - ut[..., None, :])
    loss_inter = torch.sum(w * torch.sum(w[..., None, :] * dut, dim=-1), dim=-1)
    # Within each bin: w^2 times a third of its width.
    loss_intra = torch.sum(w**2 * (t[..., 1:] - t[..., :-1]), dim=-1) / 3
    return loss_inter + loss_intra


def interval_distortion(t0_lo, t0_hi, t1_lo, t1_hi):
    """Mean |x - y| for x uniform in [t0_lo, t0_hi] and y uniform in [t1_lo, t1_hi]: [...]."""
    # Disjoint intervals: the distance between their midpoints.
    d_disjoint = torch.abs((t1_lo + t1_hi) / 2 - (t0_lo + t0_hi) / 2)
    # Overlapping intervals: the closed form of the double integral.
    d_overlap = (
        2 * (torch.minimum(t0_hi, t1_hi) ** 3 - torch.maximum(t0_lo, t1_lo) ** 3)
        + 3
        * (
            t1_hi * t0_hi * torch.abs(t1_hi - t0_hi)
            + t1_lo * t0_lo * torch.abs(t1_lo - t0_lo)
            + t1_hi * t0_lo * (t0_lo - t1_hi)
            + t1_lo * t0_hi * (t1_lo - t0_hi)
        )
    ) / (6 * (t0_hi - t0_lo) * (t1_hi - t1_lo))
    are_disjoint = (t0_lo > t1_hi) | (t1_lo > t0_hi)
    return torch.where(are_disjoint, d_disjoint, d_overlap)


def weighted_percentile(t, w, ps):
    """Percentiles ps (in [0, 100]) of the histogram (t, w), w summing to 1: -> [..., len(ps)]."""
    cw = integrate_weights(w)
    quantiles = torch.tensor(ps, dtype=cw.dtype, device=cw.device) / 100
    return math.interp(quantiles, cw, t)


def resample(t, tp, vp, use_avg=False, eps=_EPS):
    """Resamples the step function (tp, vp) onto the bins of t: -> [..., n].

    Args:
      t: [..., n+1], the endpoints to resample into.
      tp: [..., m+1], the endpoints of the step function being resampled.
      vp: [..., m], its bin values.
      use_avg: bool, return the width-weighted average of vp over each bin of t instead of the
        sum. Bins of t outside tp get 0 either way.
      eps: float, lower bound on the averaging denominator (a bin of t with no overlap).

    Returns:
      v: [..., n].
    """
    if use_avg:
        wp = torch.diff(tp, dim=-1)
        v_numer = resample(t, tp, vp * wp, use_avg=False)
        v_denom = resample(t, tp, wp, use_avg=False)
        return v_numer / torch.clamp(v_denom, min=eps)
    # Sum over each bin of t: the difference of the running sum of vp, linearly interpolated.
    acc = torch.cumsum(vp, dim=-1)
    acc0 = torch.cat([torch.zeros_like(acc[..., :1]), acc], dim=-1)
    return torch.diff(math.interp(t, tp, acc0), dim=-1)
