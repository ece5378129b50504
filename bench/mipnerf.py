"""Throughput of mipnerf: rays/s of a training step and of rendering, for the paper model and demo.gin.

    python bench/mipnerf.py [--gin mipnerf/configs/demo.gin ...] [--batch 1024] [--steps 5]
        [--render_rays 4096] [--render_steps N] [--compile] [--no_tf32] [--bind 'MLP.net_depth=4' ...] [--json]
        [--profile ROWS]
    python bench/mipnerf.py --memory     # predicted peak memory of the paper configs (Markdown)

Without --gin it measures the paper's model (multiblender.gin: 128 + 128 samples, MLP 8x256)
and demo.gin. A training step is forward + loss + backward + Adam (train.train_step) on `--batch`
random rays of a radius-4 orbit (no dataset is read); rendering is the deterministic eval forward
in chunks of --chunk rays. Prints the device, dtype and threads with every figure, and the fraction
of the machine's float32 GEMM rate (measured here at the MLP's dominant layer shape) that the
dense layers reach in a step and a render.
With --json the last line is {train_rays_per_s, render_rays_per_s, ...} of the last config (what
bench/vs_original.py reads). `gpu_check_case` is what bench/gpu_check.py runs for this package.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys

# This file shares its name with the package: keep bench/ off the import path so that
# `import mipnerf` finds the package, not this script; the repository root goes first instead, for
# an editable install made before the package existed.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [
    p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import torch  # noqa: E402

from bench import gpu_case  # noqa: E402
from common import device as device_utils  # noqa: E402
from common import memory  # noqa: E402
from mipnerf import train  # noqa: E402
from mipnerf.internal import models, utils  # noqa: E402

PAPER_AND_DEMO = ('configs/multiblender.gin', 'configs/demo.gin')
# The published configs: the multi-scale and single-scale Blender ones and LLFF (the ablations
# *_noextras, *_noipe, *_noloss have the same layer sizes and samples as their base file).
PAPER_CONFIGS = ('multiblender.gin', 'blender.gin', 'llff.gin')


def random_rays(num_rays, generator, device):
    """Rays from cameras on a radius-4 orbit looking near the origin: utils.Rays [num_rays, ...]."""
    u = lambda *shape: torch.rand(*shape, generator=generator)
    angle = 2 * torch.pi * u(num_rays, 1)
    origins = torch.cat([4 * torch.cos(angle), 4 * torch.sin(angle), 0.5 + u(num_rays, 1)], -1)
    directions = 0.5 * (u(num_rays, 3) - 0.5) - origins
    ones = torch.ones(num_rays, 1)
    rays = utils.Rays(
        origins=origins, directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True), radii=ones * 0.002,
        lossmult=ones, near=ones * 2., far=ones * 6.)
    return rays.map(lambda x: x.to(device))


def flops_per_ray(model):
    """2 x multiply-adds per ray of every Linear layer of the MLP, which runs on each of the
    num_samples samples of each of the num_levels levels (the colour branch on every sample too)."""
    layers = [(m.in_features, m.out_features) for m in model.MLP_0.modules()
              if isinstance(m, torch.nn.Linear)]
    return 2.0 * model.num_levels * model.num_samples * sum(a * b for a, b in layers)


def gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None, seed=0):
    """bench.gpu_case.Case of multiblender.gin (paper) or demo.gin on `device`: train.train_step
    on a fixed batch of orbit rays made on the CPU from `seed`, without stratified sampling."""
    gpu_case.check_precision(precision)
    device = torch.device(device)
    gin_file = PAPER_AND_DEMO[0 if paper else 1]
    gin.clear_config()
    config = train.parse_config([gin_file], [] if batch_rays is None else [f'Config.batch_size={batch_rays}'])
    config = dataclasses.replace(config, randomized=False, use_bf16_autocast=precision == 'bf16')
    gpu_case.set_tf32(device, precision)
    generator = torch.Generator().manual_seed(seed)
    rays = random_rays(config.batch_size, generator, device)
    batch = {'rays': rays, 'pixels': torch.rand(config.batch_size, 3, generator=generator).to(device)}
    # The weights are drawn on the CPU from the trainer's seed, then moved.
    state = train.create_train_state(config, batch, device)
    model = state.model
    if compiled:
        model.forward = device_utils.maybe_compile(model.forward, True, dynamic=False)
    lr = float(train.learning_rate_fn(config)(1))
    render_rays = gpu_case.render_rays(paper)
    eval_rays = random_rays(render_rays, generator, device).map(lambda x: x[None])

    def train_step():
        stats = train.train_step(model, config, None, state.optimizer, batch, lr)
        return {k: stats[k] for k in ('loss', 'psnr', 'grad_norm', 'grad_norm_clipped')}

    def render():
        return models.render_image(train.render_eval_fn(model, config), eval_rays, None, 8192)[0]

    forward = flops_per_ray(model)
    return gpu_case.Case(
        name=f'mipnerf {os.path.basename(gin_file)}', train_step=train_step, render=render,
        train_rays=config.batch_size, render_rays=render_rays,
        flops_per_ray_train=3 * forward, flops_per_ray_render=forward)


def memory_table(probe_rays=64, card_gib=24):
    """Markdown rows: predicted peak memory of every paper config at its batch (train's probe of
    saved_bytes on random rays on the CPU), and the grad_accum_steps that fits a card_gib card."""
    rows = ['| config | batch | KiB per ray | predicted peak, grad_accum_steps 1 | fits '
            f'{card_gib} GB with |', '|---|---|---|---|---|']
    for name in PAPER_CONFIGS:
        gin.clear_config()
        config = train.parse_config([f'configs/{name}'], [])
        generator = torch.Generator().manual_seed(0)
        cpu = torch.device('cpu')
        batch = {'rays': random_rays(probe_rays, generator, cpu), 'pixels': torch.rand(probe_rays, 3)}
        model = train.create_train_state(config, batch, cpu).model
        per_ray = train.probe_bytes_per_ray(model, config, batch, probe_rays)
        params = list(model.parameters())
        peak = lambda k: memory.predicted_peak_bytes(params, per_ray, config.batch_size // k)
        k = next(k for k in (1, 2, 4, 8, 16, 32, 64) if peak(k) <= card_gib * 1e9 * 0.9)
        rows.append(f'| `{name}` | {config.batch_size} | {per_ray / 2**10:.1f} | '
                    f'{peak(1) / memory.GIB:.1f} GiB | grad_accum_steps {k} ({peak(k) / memory.GIB:.1f} GiB) |')
    return '\n'.join(rows)


def bench(gin_file, args, device):
    """Prints the train-step and render rays/s of one config."""
    gin.clear_config()
    config = train.parse_config([gin_file], [f'Config.batch_size={args.batch}', *args.bind])
    generator = torch.Generator().manual_seed(0)
    rays = random_rays(args.batch, generator, device)
    state = train.create_train_state(config, {'rays': rays}, device)
    model = state.model
    if args.compile:
        model.forward = device_utils.maybe_compile(model.forward, True)
    batch = {'rays': rays, 'pixels': torch.rand(args.batch, 3, generator=generator).to(device)}
    rng = torch.Generator(device=device).manual_seed(0)
    step = functools.partial(train.train_step, model, config, rng, state.optimizer, batch, 1e-4)
    train_s = device_utils.timed(step, args.steps, device)

    # render_image takes an image of rays: [1, render_rays, ...].
    render_rays = random_rays(args.render_rays, generator, device).map(lambda x: x[None])
    render = functools.partial(
        models.render_image, train.render_eval_fn(model, config), render_rays, None, args.chunk)
    render_s = device_utils.timed(render, args.render_steps or max(1, args.steps // 2), device)

    params = sum(p.numel() for p in model.parameters())
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'config {gin_file} {" ".join(args.bind)}: {params / 1e6:.3f} M parameters; device {name}; '
          f'dtype float32{"; TF32" if device.type == "cuda" and not args.no_tf32 else ""}'
          f'{"; torch.compile" if args.compile else ""}; threads {torch.get_num_threads()}')
    print(f'train : {args.batch} rays/step, {train_s:.3f} s/step, {args.batch / train_s:,.0f} rays/s')
    print(f'render: {args.render_rays} rays, {render_s:.3f} s, {args.render_rays / render_s:,.0f} rays/s')
    # The MLP's dominant layer runs on batch x num_samples rows at each level.
    result = gpu_case.throughput_result(
        f'{gin_file} {" ".join(args.bind)}'.strip(), device, args.batch, train_s, args.render_rays, render_s,
        flops_per_ray(model), args.batch * model.num_samples, model.MLP_0)
    if args.profile:
        gpu_case.print_profiles(step, render, device, args.profile)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', action='append', help='config file (repeatable; default: paper and demo)')
    parser.add_argument('--batch', type=int, default=1024, help='rays per training step')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--render_rays', type=int, default=4096)
    parser.add_argument('--render_steps', type=int, default=None,
                        help='timed render calls (default: max(1, steps // 2))')
    parser.add_argument('--json', action='store_true', help='last line: the figures as JSON')
    parser.add_argument('--profile', type=int, default=0, metavar='ROWS',
                        help='also print the top ROWS ops by self time of one step and one render (torch.profiler)')
    parser.add_argument('--chunk', type=int, default=8192, help='rays per rendering forward pass')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model')
    parser.add_argument('--no_tf32', action='store_true')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    parser.add_argument('--memory', action='store_true',
                        help='print the predicted peak memory of every paper config and exit')
    args = parser.parse_args()
    if args.memory:
        print(memory_table())
        return

    device = device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(not args.no_tf32)
    for gin_file in args.gin or PAPER_AND_DEMO:
        result = bench(gin_file, args, device)
    if args.json:
        print(json.dumps(result))


if __name__ == '__main__':
    main()
