# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Numerical helpers: full-precision matmul, guarded sin/cos/exp, lr schedule, interpolation."""

import torch

from common.safe_math import matmul, safe_cos, safe_sin, safe_trig_helper  # noqa: F401


class _SafeExp(torch.autograd.Function):
    """exp(min(x, 88)) whose derivative is its own value, even where the clamp is active."""

    @staticmethod
    def forward(x):
        return torch.exp(torch.clamp(x, max=88.0))  # exp(89) overflows float32 to inf.

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        # y carries this Function's graph, so higher derivatives are safe_exp(x) again.
        return grad_y * y

    @staticmethod
    def jvp(ctx, x_dot):
        (y,) = ctx.saved_tensors
        return y * x_dot


def safe_exp(x):
    """exp(x) with finite values and gradients for large x: the gradient is safe_exp(x). [...]."""
    return _SafeExp.apply(x)


def log_lerp(t, v0, v1):
    """Log-linear interpolation exp(lerp(log v0, log v1, clip(t, 0, 1))): t [...] -> [...]."""
    if v0 <= 0 or v1 <= 0:
        raise ValueError(f"Interpolants {v0} and {v1} must be positive.")
    t = torch.as_tensor(t)
    lv0 = torch.log(torch.tensor(v0, dtype=torch.float32, device=t.device))
    lv1 = torch.log(torch.tensor(v1, dtype=torch.float32, device=t.device))
    return torch.exp(torch.clamp(t, 0, 1) * (lv1 - lv0) + lv0)


def learning_rate_decay(step, lr_init, lr_final, max_steps, lr_delay_steps=0, lr_delay_mult=1):
    """Learning rate at `step`: log-linear from lr_init (step 0) to lr_final (max_steps).

    With lr_delay_steps > 0 the rate is also scaled by a warm-up factor that eases from
    lr_delay_mult at step 0 to 1 at lr_delay_steps along a quarter sine wave.

    Args:
      step: int or int/float tensor [...], the optimisation step.
      lr_init, lr_final: floats, the rates at step 0 and at max_steps.
      max_steps: int, the length of the schedule.
      lr_delay_steps: int, length of the warm-up (0: none).
      lr_delay_mult: float, the warm-up factor at step 0.

    Returns:
      lr: float32 tensor [...].
    """
    if lr_delay_steps > 0:
        warmup = torch.clamp(torch.as_tensor(step / lr_delay_steps), 0, 1)
        delay_rate = lr_delay_mult + (1 - lr_delay_mult) * torch.sin(0.5 * torch.pi * warmup)
    else:
        delay_rate = 1.0
    return delay_rate * log_lerp(step / max_steps, lr_init, lr_final)


def interp(x, xp, fp):
    """np.interp(x, xp, fp) row by row with gathers: x [..., n], xp, fp [..., m] -> [..., n].

    xp must be sorted along the last axis; x need not be. Leading dimensions broadcast. Queries
    left of xp[0] give fp[0], right of xp[-1] give fp[-1].
    """
    batch = torch.broadcast_shapes(x.shape[:-1], xp.shape[:-1], fp.shape[:-1])
    x = x.expand(batch + x.shape[-1:]).contiguous()
    xp = xp.expand(batch + xp.shape[-1:]).contiguous()
    fp = fp.expand(batch + fp.shape[-1:])
    # i - 1 and i index the interval holding x; clipping makes out-of-range x use an end interval.
    i = torch.clamp(torch.searchsorted(xp, x, right=True), 1, xp.shape[-1] - 1)
    xp0, xp1 = torch.gather(xp, -1, i - 1), torch.gather(xp, -1, i)
    fp0, fp1 = torch.gather(fp, -1, i - 1), torch.gather(fp, -1, i)
    dx = xp1 - xp0
    # Zero-width interval (|dx| <= the spacing of eps, eps**2 for IEEE floats): return its left
    # value and keep the gradient free of 0/0 NaNs.
    dx0 = torch.abs(dx) <= torch.finfo(xp.dtype).eps ** 2
    f = torch.where(dx0, fp0, fp0 + (x - xp0) / torch.where(dx0, 1, dx) * (fp1 - fp0))
    f = torch.where(x < xp[..., :1], fp[..., :1], f)
    return torch.where(x > xp[..., -1:], fp[..., -1:], f)


def sorted_interp(x, xp, fp):
    """interp() by brute-force comparisons, no gathers: x [..., n], xp, fp [..., m] -> [..., n].

    xp and fp must both be non-decreasing along the last axis. Out-of-range x clamps to the end
    values.
    """
    # mask[..., j, k]: x[k] lies at or right of xp[j]. For each x the last True row starts its
    # interval and the first False row ends it.
    mask = x[..., None, :] >= xp[..., :, None]

    def find_interval(v):
        """(v at the interval start, v at the interval end) for every x: [..., n] each."""
        v0 = torch.amax(torch.where(mask, v[..., None], v[..., :1, None]), dim=-2)
        v1 = torch.amin(torch.where(~mask, v[..., None], v[..., -1:, None]), dim=-2)
        return v0, v1

    fp0, fp1 = find_interval(fp)
    xp0, xp1 = find_interval(xp)
    # 0/0 on a zero-width interval -> offset 0. An x outside xp gets a zero-width end interval,
    # so +-inf, which the clip turns into 1 or 0 (either gives that end's fp).
    offset = torch.clamp(torch.nan_to_num((x - xp0) / (xp1 - xp0), nan=0.0), 0, 1)
    return fp0 + offset * (fp1 - fp0)
