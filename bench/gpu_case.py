"""What each bench/<pkg>.py hands bench/gpu_check.py: one package's training step and render at a config.

Each package's `gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None,
seed=0)` returns a Case. precision is 'fp32' (TF32 off), 'tf32' (TF32 on) or 'bf16' (the package's
bf16 autocast flag). With the same seed the weights and the batch are the same on every device
(made on the CPU, then moved) and sampling is deterministic, so the first step on a GPU can be
compared with the same step on the CPU.
"""

import dataclasses
from typing import Callable

import torch

PRECISIONS = ('fp32', 'tf32', 'bf16')
# Rays of the render the acceptance run times: 64k at the paper configs, fewer for a CPU dry run.
PAPER_RENDER_RAYS, DEMO_RENDER_RAYS = 65536, 4096


def render_rays(paper):
    """How many rays a NeRF package's gpu_check_case renders."""
    return PAPER_RENDER_RAYS if paper else DEMO_RENDER_RAYS


@dataclasses.dataclass
class Case:
    """One package at one config on one device.

    train_step: () -> {'loss': [], 'grad_norm': [], ...}: one full training step through the
      trainer's own step function (forward, losses, backward, optimizer), 0-dim device tensors,
      no host sync inside.
    render: () -> tensor: the package's render path on render_rays rays, without gradients.
    flops_per_ray_train / _render: 2 x the multiply-adds of every layer per ray at the config's
      sample counts (x3 for training: forward and backward), from the layer sizes.
    """

    name: str
    train_step: Callable[[], dict]
    render: Callable[[], torch.Tensor]
    train_rays: int
    render_rays: int
    flops_per_ray_train: float
    flops_per_ray_render: float


def check_precision(precision):
    """Raises ValueError unless precision is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')


def set_tf32(device, precision):
    """TF32 matmuls and convolutions on exactly when precision == 'tf32' (CUDA only)."""
    if torch.device(device).type == 'cuda':
        enabled = precision == 'tf32'
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def linear_flops(widths_in_out, samples=1):
    """2 x multiply-adds of dense layers [(fan_in, fan_out), ...] applied to `samples` points."""
    return 2.0 * samples * sum(a * b for a, b in widths_in_out)
