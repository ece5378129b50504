"""Numerical guards shared by the mip-NeRF family (google/mipnerf and multinerf define them alike):
full-precision matmul and range-reduced sin/cos."""

import math

import torch


def matmul(a, b):
    """a @ b at full float32 (or higher) precision, also inside a bf16/fp16 autocast region."""
    # The originals ask XLA for HIGHEST precision; here that means no autocast down-cast. TF32 is
    # governed by torch's global flag (torch.backends.cuda.matmul), off by default.
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    with torch.autocast(a.device.type, enabled=False):
        return torch.matmul(a.to(dtype), b.to(dtype))


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
