"""Throughput of depth_mipnerf: rays/s of a training step and of rendering, for lego.gin and demo.gin.

    python bench/depth_mipnerf.py [--gin configs/lego.gin ...] [--batch 1024] [--steps 3]
        [--render_rays 4096] [--bind 'nerf.mlp.net_depth=4' ...]
    python bench/depth_mipnerf.py --memory_table     # predicted peak memory of the paper configs

`gpu_check_case` hands bench/gpu_check.py one training step and one render at a config.

A training step is forward + MSELoss (bounded-CDF depth terms included) + backward + gradient clip
+ Adam (train.train_step) on --batch random rays of a radius-4 orbit with depth 4 (no dataset is
read); rendering is the deterministic eval forward in val.chunk_size chunks. Prints the device,
dtype and threads with every figure.
"""

import argparse
import os
import sys
import types

# This file shares its name with the package: keep bench/ off the import path, the repository first.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import torch  # noqa: E402

from bench import gpu_case  # noqa: E402
from common import device as device_utils  # noqa: E402
from common import memory  # noqa: E402
from depth_mipnerf import train  # noqa: E402
from depth_mipnerf.configs import config as config_lib  # noqa: E402
from depth_mipnerf.datasets.datasets import Rays  # noqa: E402
from depth_mipnerf.models import nerf_system  # noqa: E402
from depth_mipnerf.utils.lr_schedule import MipLRDecay  # noqa: E402

PAPER_AND_DEMO = ('configs/lego.gin', 'configs/demo.gin')
PAPER_CONFIGS = ('configs/lego.gin', 'configs/lego_bkup.gin', 'configs/blender.gin', 'configs/scannet.gin',
                 'configs/matterport.gin')
# Sampling without random draws: a step on a GPU can be compared with the same step on the CPU.
DETERMINISTIC = ('train.randomized = False', 'nerf.density_noise = 0.', 'nerf.depth_sampling = False')


def random_rays(num_rays, generator, device):
    """Rays from cameras on a radius-4 orbit looking near the origin, depth 4 (z-depth ~ t)."""
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    angle = 2 * torch.pi * u(num_rays, 1)
    origins = torch.cat([4 * torch.cos(angle), 4 * torch.sin(angle), 0.5 + u(num_rays, 1)], -1)
    directions = 0.5 * (u(num_rays, 3) - 0.5) - origins
    ones = torch.ones(num_rays, 1)
    rays = Rays(origins=origins, directions=directions, viewdirs=directions / directions.norm(dim=-1, keepdim=True),
                radii=ones * 0.002, lossmult=ones, near=ones * 2., far=ones * 6., depth=ones * 4.,
                normal=torch.zeros(num_rays, 3), mask=ones == 0, depth_vars=ones * 0, cam_idx=ones * 0)
    return Rays(*[x.to(device) for x in rays])


class FixedBatches:
    """train.RayBatches' interface, always the same batch."""

    def __init__(self, rays, rgbs):
        self.batch = (rays, rgbs)

    def __next__(self):
        return self.batch


def linear_widths(module):
    """(fan_in, fan_out) of every nn.Linear of a module."""
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def flops_per_ray(model, training):
    """2 x multiply-adds of the MLP layers per ray at the model's sample counts (x3 for a training
    step: forward and backward): the proposal MLP (or the NeRF MLP) on num_samples points at every
    level but the last, the NeRF MLP on num_fine_samples at the last."""
    first_levels = model.prop_mlp if model.use_prop_mlp else model.mlp
    flops = (gpu_case.linear_flops(linear_widths(first_levels), model.num_samples * (model.num_levels - 1))
             + gpu_case.linear_flops(linear_widths(model.mlp), model.num_fine_samples))
    return 3 * flops if training else flops


def gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None, seed=0):
    """bench.gpu_case.Case of lego.gin (paper) or demo.gin on `device`: train.train_step on a fixed
    batch of random orbit rays, render_image on gpu_case.render_rays(paper) rays in chunks of
    val.chunk_size; deterministic sampling.

    precision: 'fp32', 'tf32' (TF32 matmuls), 'bf16' (Config.precision 16: bf16 MLP autocast on CUDA).
    Weights and rays are made on the CPU from `seed`, then moved.
    """
    gpu_case.check_precision(precision)
    device = torch.device(device)
    gpu_case.set_tf32(device, precision)
    gin.clear_config()
    bindings = [*DETERMINISTIC, f'Config.precision = {16 if precision == "bf16" else 32}']
    if batch_rays:
        bindings.append(f'train.batch_size = {batch_rays}')
    config, sections = config_lib.parse([PAPER_AND_DEMO[0 if paper else 1]], bindings)
    torch.manual_seed(seed)
    model = nerf_system.build_model(sections).to(device)
    nerf_system.use_mlp_autocast(model, config, device)
    nerf_system.use_compile(model, compiled)
    generator = torch.Generator().manual_seed(seed)
    n_train, n_render = sections['train'].batch_size, gpu_case.render_rays(paper)
    batches = FixedBatches(random_rays(n_train, generator, device),
                           torch.rand(n_train, 3, generator=generator).to(device))
    image = random_rays(n_render, generator, device)
    loss_fn = nerf_system.build_loss(config, sections)
    opt = sections['optimizer']
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr_init)
    scheduler = MipLRDecay(optimizer, opt.lr_init, opt.lr_final, opt.max_steps, opt.lr_delay_steps,
                           opt.lr_delay_mult)
    step = [0]

    def train_step():
        step[0] += 1
        losses = train.train_step(model, loss_fn, optimizer, scheduler, batches, step[0], config, sections)
        return {'loss': losses['total'], 'grad_norm': losses['grad_norm'], 'psnr': losses['psnr']}

    def render():
        return nerf_system.render_image(model, image, sections['val'].chunk_size)['rgb_fine']

    name = f'depth_mipnerf {"lego.gin" if paper else "demo.gin"} {precision}{" compiled" if compiled else ""}'
    return gpu_case.Case(name=name, train_step=train_step, render=render, train_rays=n_train,
                         render_rays=n_render, flops_per_ray_train=flops_per_ray(model, True),
                         flops_per_ray_render=flops_per_ray(model, False))


def memory_table(fit_gib=24., probe_rays=64):
    """Markdown rows: predicted peak memory of every paper config at its batch size (float32), with
    grad_accum_steps 1 and with the smallest one that fits fit_gib; bytes per ray from saved_bytes
    on probe_rays random rays on the CPU."""
    rows = []
    for gin_file in PAPER_CONFIGS:
        gin.clear_config()
        config, sections = config_lib.parse([gin_file], [])
        torch.manual_seed(0)
        model = nerf_system.build_model(sections).train()
        generator = torch.Generator().manual_seed(0)
        probe = types.SimpleNamespace(rays=random_rays(probe_rays, generator, 'cpu'),
                                      images=torch.rand(probe_rays, 3, generator=generator))
        per_ray = train.probe_bytes_per_ray(model, nerf_system.build_loss(config, sections), probe, sections,
                                            torch.device('cpu'), probe_rays)
        batch, params = sections['train'].batch_size, list(model.parameters())
        peak = lambda k: memory.predicted_peak_bytes(params, per_ray, batch // k) / memory.GIB  # noqa: E731
        fits = next((k for k in range(1, batch + 1) if batch % k == 0 and peak(k) <= fit_gib), None)
        rows.append(f'| `{os.path.basename(gin_file)}` | {batch} | {per_ray / 2**10:.1f} | {peak(1):.2f} | '
                    f'{fits} ({peak(fits):.2f} GiB) |')
    return rows


def bench(gin_file, args, device):
    """Prints the train-step and render rays/s of one config."""
    gin.clear_config()
    config, sections = config_lib.parse([gin_file], [f'train.batch_size={args.batch}', *args.bind])
    generator = torch.Generator().manual_seed(0)
    rays = random_rays(args.batch, generator, device)
    model = nerf_system.build_model(sections).to(device)
    nerf_system.use_mlp_autocast(model, config, device)
    loss_fn = nerf_system.build_loss(config, sections)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scheduler = MipLRDecay(optimizer, 1e-4, 1e-5, 10**6, 0, 1.)
    batches = FixedBatches(rays, torch.rand(args.batch, 3, generator=generator).to(device))
    train_s = device_utils.timed(
        lambda: train.train_step(model, loss_fn, optimizer, scheduler, batches, 1, config, sections),
        args.steps, device)
    model.eval()
    image = Rays(*[x[None] for x in random_rays(args.render_rays, generator, device)])
    render_s = device_utils.timed(
        lambda: nerf_system.render_image(model, image, sections['val'].chunk_size),
        max(1, args.steps // 2), device)
    params = sum(p.numel() for p in model.parameters())
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    amp = '; bf16 MLP autocast' if model.mlp_autocast else ''
    print(f'config {gin_file} {" ".join(args.bind)}: {params / 1e6:.3f} M parameters; device {name}; dtype float32{amp}; '
          f'threads {torch.get_num_threads()}')
    print(f'train : {args.batch} rays/step, {train_s:.3f} s/step, {args.batch / train_s:,.0f} rays/s')
    print(f'render: {args.render_rays} rays, {render_s:.3f} s, {args.render_rays / render_s:,.0f} rays/s')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', action='append', help='config file (repeatable; default: lego and demo)')
    parser.add_argument('--batch', type=int, default=1024, help='rays per training step')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--render_rays', type=int, default=4096)
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    parser.add_argument('--memory_table', action='store_true',
                        help='print the predicted peak memory of the paper configs and exit')
    args = parser.parse_args()
    if args.memory_table:
        print('| config | batch | KiB per ray | GiB, grad_accum_steps 1 | grad_accum_steps for 24 GB |')
        print('|---|---|---|---|---|')
        print('\n'.join(memory_table()))
        return
    device = device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(True)
    for gin_file in args.gin or PAPER_AND_DEMO:
        bench(gin_file, args, device)


if __name__ == '__main__':
    main()
