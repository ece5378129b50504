# Copyright 2021, 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Numerical guards shared by the mip-NeRF family (google/mipnerf and multinerf define them alike):
full-precision matmul and range-reduced sin/cos."""

import math

import torch


def matmul(a, b):
    """a @ b in exact float32 (or higher), whatever TF32, matmul-precision or autocast flags say.

    a: [..., m, k], b: [..., k, n] -> [..., m, n], broadcast like torch.matmul (and jnp.matmul): a
    1-D a [k] is a row and a 1-D b [k] a column, each dimension dropped from the result.
    For the originals' small products (k = 3 in the IPE projection and ray casting, k <= 17 in
    ref_utils), where they ask XLA for HIGHEST precision.
    """
    # A broadcast multiply-and-sum is elementwise work, which neither TF32
    # (torch.backends.cuda.matmul.allow_tf32, set_float32_matmul_precision) nor autocast touches,
    # so every product is a float32 product; for such small k it is as cheap as a GEMM launch.
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    a_row, b_column = a.dim() == 1, b.dim() == 1
    a = a.to(dtype)[None, :] if a_row else a.to(dtype)
    b = b.to(dtype)[:, None] if b_column else b.to(dtype)
    product = torch.sum(a[..., :, :, None] * b[..., None, :, :], dim=-2)
    if a_row:
        product = product.squeeze(-2)
    if b_column:
        product = product.squeeze(-1)
    return product


def safe_trig_helper(x, fn, t=100 * math.pi):
    """fn(x), with |x| >= t first reduced to x mod t (floor mod, in [0, t)): x [...] -> [...]."""
    # fmod is exact in floating point, unlike x - t * floor(x / t); negatives are shifted into
    # [0, t) as the originals' floor mod does. Its derivative in x is 1, like that of x itself.
    x_mod = torch.fmod(x, t)
    x_mod = torch.where(x_mod < 0, x_mod + t, x_mod)
    return fn(torch.where(torch.abs(x) < t, x, x_mod))


def safe_cos(x):
    """cos(x), with huge arguments range-reduced first (low-precision cos can NaN there): [...]."""
    return safe_trig_helper(x, torch.cos)


def safe_sin(x):
    """sin(x), with huge arguments range-reduced first (low-precision sin can NaN there): [...]."""
    return safe_trig_helper(x, torch.sin)
