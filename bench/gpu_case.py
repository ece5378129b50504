"""What each bench/<pkg>.py hands bench/gpu_check.py: one package's training step and render at a config.

Each package's `gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None,
seed=0)` returns a Case. precision is 'fp32' (TF32 off), 'tf32' (TF32 on) or 'bf16' (the package's
bf16 autocast flag). With the same seed the weights and the batch are the same on every device
(made on the CPU, then moved) and sampling is deterministic, so the first step on a GPU can be
compared with the same step on the CPU.

`gemm_report` is what bench/mipnerf360.py and bench/mipnerf.py print beside their rays/s: the
machine's float32 GEMM rate at the MLP's dominant layer shape, and the fraction of it that a
training step and a render reach (FLOPs per ray from the layer sizes).
"""

import collections
import dataclasses
import time
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


def dominant_layer(mlp):
    """(fan_in, fan_out) of the dense-layer shape that holds the most multiply-adds of `mlp`."""
    macs = collections.Counter()
    for m in mlp.modules():
        if isinstance(m, torch.nn.Linear):
            macs[(m.in_features, m.out_features)] += m.in_features * m.out_features
    return macs.most_common(1)[0][0]


def gemm_rate(rows, fan_in, fan_out, device, repeats=3):
    """The machine's float32 GEMM rate at an MLP layer's shape: FLOP/s of [rows, fan_in] @ [fan_in,
    fan_out] on `device` at the current threads (and TF32 setting), best of `repeats` after a warm-up."""
    a = torch.rand(rows, fan_in, device=device)
    b = torch.rand(fan_in, fan_out, device=device)
    seconds = min(timed_once(lambda: a @ b, device) for _ in range(repeats + 1))
    return 2.0 * rows * fan_in * fan_out / seconds


def timed_once(fn, device):
    """Seconds of one call of fn(), waiting for CUDA work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def gemm_report(flops_per_ray_train, flops_per_ray_render, train_rays_per_s, render_rays_per_s, rows, layer,
                device):
    """{gemm_rate_gflops, gemm_shape, train_gemm_fraction, render_gemm_fraction}: the FLOP/s of the
    dense layers in a training step and a render over the GEMM rate at the dominant layer's shape."""
    rate = gemm_rate(rows, *layer, device)
    return {'gemm_rate_gflops': rate / 1e9, 'gemm_shape': f'[{rows} x {layer[0]}] @ [{layer[0]} x {layer[1]}]',
            'train_gemm_fraction': flops_per_ray_train * train_rays_per_s / rate,
            'render_gemm_fraction': flops_per_ray_render * render_rays_per_s / rate}


def throughput_result(config, device, train_rays, train_s, render_rays, render_s, forward_flops, gemm_rows, mlp):
    """What bench/mipnerf360.py and bench/mipnerf.py report (and write with --json): the rays/s of a
    training step and a render and their shares of the fp32 GEMM rate at `mlp`'s dominant layer on
    `gemm_rows` rows (that line printed here)."""
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    result = {'config': config, 'device': name, 'threads': torch.get_num_threads(), 'train_rays': train_rays,
              'train_s_per_step': train_s, 'train_rays_per_s': train_rays / train_s, 'render_rays': render_rays,
              'render_s': render_s, 'render_rays_per_s': render_rays / render_s,
              'flops_per_ray_train': 3 * forward_flops}
    result.update(gemm_report(3 * forward_flops, forward_flops, result['train_rays_per_s'],
                              result['render_rays_per_s'], gemm_rows, dominant_layer(mlp), device))
    print(gemm_line(result))
    return result


def print_profiles(step, render, device, rows):
    """Prints the top `rows` ops by self time of one step() and one render() (the benches' --profile)."""
    print('train step, top ops by self time:\n' + profile_table(step, device, rows))
    print('render, top ops by self time:\n' + profile_table(render, device, rows))


def gemm_line(report):
    return (f"GEMM rate, float32 {report['gemm_shape']}: {report['gemm_rate_gflops']:.1f} GFLOP/s; "
            f"train step at {100 * report['train_gemm_fraction']:.0f}% of it, "
            f"render at {100 * report['render_gemm_fraction']:.0f}%")


def profile_table(fn, device, rows=12):
    """torch.profiler's table of the top `rows` ops by self time (CUDA time on a GPU) of one fn() call."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        timed_once(fn, device)
    sort_by = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)
