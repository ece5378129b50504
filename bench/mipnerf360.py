"""Throughput of mipnerf360: rays/s of a training step and of rendering, for a named gin config.

    python bench/mipnerf360.py [--gin mipnerf360/configs/360.gin] [--batch 1024] [--steps 5]
        [--render_rays 4096] [--bf16] [--compile] [--compile_elementwise] [--no_tf32]
        [--bind 'NerfMLP.net_depth=4' ...] [--json] [--profile ROWS]

A training step is forward + losses + backward + clipping + Adam on `--batch` random rays of a
synthetic orbit (no dataset is read); rendering is the deterministic eval forward in chunks of
Config.render_chunk_size. Prints the device, dtype and threads with every figure, and the fraction
of the machine's float32 GEMM rate (measured here at the NeRF MLP's dominant layer shape) that the
dense layers reach in a step and a render. With --json the last line holds the figures as JSON.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys

# This file shares its name with the package: keep bench/ off the import path so that
# `import mipnerf360` finds the package, not this script; the repository root goes first instead.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import torch  # noqa: E402
from absl import flags  # noqa: E402

from bench import gpu_case  # noqa: E402
from common import device as device_utils  # noqa: E402
from common import memory  # noqa: E402
from mipnerf360.internal import configs, models, train_utils, utils  # noqa: E402

configs.define_common_flags()


def random_rays(num_rays, generator, device):
    """Rays from cameras on a radius-4 orbit looking near the origin: utils.Rays [num_rays, ...]."""
    u = lambda *shape: torch.rand(*shape, generator=generator)
    angle = 2 * torch.pi * u(num_rays, 1)
    origins = torch.cat([4 * torch.cos(angle), 4 * torch.sin(angle), 0.5 + u(num_rays, 1)], -1)
    target = 0.5 * (u(num_rays, 3) - 0.5)
    directions = target - origins
    ones = torch.ones(num_rays, 1)
    rays = utils.Rays(
        origins=origins, directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True),
        radii=ones * 0.002, imageplane=u(num_rays, 2), lossmult=ones, near=ones * 0.2,
        far=ones * 1e6, cam_idx=torch.zeros(num_rays, 1, dtype=torch.int64))
    return rays.map(lambda x: x.to(device))


def mlp_flops_per_sample(mlp):
    """2 x the multiply-adds of every dense layer of an MLP for one sample (from its layer sizes)."""
    return 2.0 * sum(m.in_features * m.out_features for m in mlp.modules()
                     if isinstance(m, torch.nn.Linear))


def flops_per_ray(model):
    """Forward FLOPs per ray: each level's MLP at that level's samples (from the layer sizes)."""
    levels = [(model.PropMLP_0 if model.num_levels > 1 and not model.single_mlp else model.NerfMLP_0,
               model.num_prop_samples)] * (model.num_levels - 1) + [(model.NerfMLP_0, model.num_nerf_samples)]
    return sum(mlp_flops_per_sample(mlp) * n for mlp, n in levels)


def gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None, seed=0):
    """bench.gpu_case.Case of 360.gin (paper) or demo.gin on `device` (see bench/gpu_case.py)."""
    gpu_case.check_precision(precision)
    gin_file = f'mipnerf360/configs/{"360" if paper else "demo"}.gin'
    config = load(gin_file, [] if batch_rays is None else [f'Config.batch_size={batch_rays}'])
    config = dataclasses.replace(config, randomized=False, use_bf16_autocast=precision == 'bf16')
    gpu_case.set_tf32(device, precision)
    generator = torch.Generator().manual_seed(seed)
    model, state, render_eval_fn, train_step, _ = train_utils.setup_model(config, generator, device=device)
    if compiled:
        model.forward = device_utils.maybe_compile(model.forward, True, dynamic=False)
    rays = random_rays(config.batch_size, generator, device)
    batch = utils.Batch(rays=rays, rgb=torch.rand(config.batch_size, 3, generator=generator).to(device))
    render_rays = gpu_case.render_rays(paper)
    eval_rays = random_rays(render_rays, generator, device).map(lambda x: x[None])

    def step():
        _, stats, _ = train_step(None, state, batch, None, 0.5, compute_stats=True)
        return {'loss': stats['loss'], 'psnr': stats['psnr'],
                'grad_norm': torch.sqrt(sum(v**2 for k, v in stats['grad_norms'].items() if '/' not in k))}

    def render():
        return models.render_image(functools.partial(render_eval_fn, 1.0), eval_rays, None, config,
                                   verbose=False)['rgb']

    forward = flops_per_ray(model)
    return gpu_case.Case(
        name=f'mipnerf360 {os.path.basename(gin_file)}', train_step=step, render=render,
        train_rays=config.batch_size, render_rays=render_rays,
        flops_per_ray_train=3 * forward, flops_per_ray_render=forward)


PAPER_CONFIGS = ('360.gin', '360_glo4.gin', 'blender_256.gin', 'blender_512.gin', 'llff_256.gin',
                 'llff_512.gin')


def memory_table(probe_rays=64, card_gib=24):
    """Markdown rows: predicted peak memory of every paper config at its batch (saved_bytes on a
    probe of random rays on the CPU), and the grad_accum_steps that fits a card_gib card."""
    rows = ['| config | batch | KiB per ray | predicted peak, grad_accum_steps 1 | fits '
            f'{card_gib} GB with |', '|---|---|---|---|---|']
    for name in PAPER_CONFIGS:
        config = load(f'mipnerf360/configs/{name}', [])
        generator = torch.Generator().manual_seed(0)
        model, *_ = train_utils.setup_model(config, generator)
        rays = random_rays(probe_rays, generator, torch.device('cpu'))
        probe = utils.Batch(rays=rays, rgb=torch.rand(probe_rays, 3, generator=generator))
        _, nbytes = memory.saved_bytes(functools.partial(
            train_utils.compute_losses, model, model, None, probe, None, None, 0.5, 1.0, config))
        params = list(model.parameters())
        peak = lambda k: memory.predicted_peak_bytes(params, nbytes / probe_rays, config.batch_size // k)
        k = next(k for k in (1, 2, 4, 8, 16, 32, 64) if peak(k) <= card_gib * 1e9 * 0.9)
        rows.append(f'| `{name}` | {config.batch_size} | {nbytes / probe_rays / 2**10:.1f} | '
                    f'{peak(1) / memory.GIB:.1f} GiB | grad_accum_steps {k} ({peak(k) / memory.GIB:.1f} GiB) |')
    return '\n'.join(rows)


def load(gin_file, bindings):
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['bench', f'--gin_configs={gin_file}', "--gin_bindings=Config.checkpoint_dir='/tmp'"]
                + [f'--gin_bindings={b}' for b in bindings])
    return configs.load_config(save_config=False)




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', default='mipnerf360/configs/demo.gin')
    parser.add_argument('--batch', type=int, default=1024, help='rays per training step')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--render_rays', type=int, default=4096)
    parser.add_argument('--bf16', action='store_true', help='Config.use_bf16_autocast')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model')
    parser.add_argument('--compile_elementwise', action='store_true',
                        help='Config.compile_elementwise: torch.compile the IPE encoding and the resampling')
    parser.add_argument('--no_tf32', action='store_true')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    parser.add_argument('--json', action='store_true', help='last line: the figures as JSON')
    parser.add_argument('--profile', type=int, default=0, metavar='ROWS',
                        help='also print the top ROWS ops by self time of one step and one render (torch.profiler)')
    parser.add_argument('--memory', action='store_true',
                        help='print the predicted peak memory of every paper config and exit')
    args = parser.parse_args()
    if args.memory:
        print(memory_table())
        return

    device = device_utils.pick_device()
    bindings = [f'Config.batch_size={args.batch}', f'Config.use_bf16_autocast={args.bf16}',
                f'Config.compile_elementwise={args.compile_elementwise}', *args.bind]
    config = load(args.gin, bindings)
    if device.type == 'cuda':
        device_utils.setup_tf32(not args.no_tf32)
    generator = torch.Generator().manual_seed(0)
    model, state, render_eval_fn, train_step, _ = train_utils.setup_model(
        config, generator, device=device)
    if args.compile:
        model.forward = device_utils.maybe_compile(model.forward, True, dynamic=False)
    rays = random_rays(args.batch, generator, device)
    batch = utils.Batch(rays=rays, rgb=torch.rand(args.batch, 3, generator=generator).to(device))
    rng = torch.Generator(device=device).manual_seed(0)
    step = functools.partial(train_step, rng, state, batch, None, 0.5)
    train_s = device_utils.timed(step, args.steps, device)

    # render_image takes an image of rays: [1, render_rays, ...].
    render_rays = random_rays(args.render_rays, generator, device).map(lambda x: x[None])
    render = functools.partial(
        models.render_image, functools.partial(render_eval_fn, 1.0), render_rays, None, config,
        verbose=False)
    render_s = device_utils.timed(render, max(1, args.steps // 2), device)

    params = sum(p.numel() for p in model.parameters())
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'config {args.gin} {" ".join(args.bind)}: {params / 1e6:.3f} M parameters; device {name}; dtype float32'
          f'{" + bf16 autocast (MLPs)" if args.bf16 else ""}'
          f'{"; TF32" if device.type == "cuda" and not args.no_tf32 else ""}'
          f'{"; torch.compile" if args.compile else ""}'
          f'{"; compiled elementwise chains" if args.compile_elementwise else ""}; threads {torch.get_num_threads()}')
    forward = flops_per_ray(model)
    print(f'FLOPs per ray (dense layers, from the layer sizes): {forward / 1e6:.1f} M forward, '
          f'{3 * forward / 1e6:.1f} M per training ray')
    print(f'train : {args.batch} rays/step, {train_s:.3f} s/step, {args.batch / train_s:,.0f} rays/s, '
          f'{3 * forward * args.batch / train_s / 1e9:.1f} GFLOP/s')
    print(f'render: {args.render_rays} rays, {render_s:.3f} s, {args.render_rays / render_s:,.0f} rays/s')
    # The NeRF level's MLP holds most FLOPs; its dominant layer runs on batch x num_nerf_samples rows.
    result = gpu_case.throughput_result(
        f'{args.gin} {" ".join(args.bind)}'.strip(), device, args.batch, train_s, args.render_rays, render_s,
        forward, args.batch * model.num_nerf_samples, model.NerfMLP_0)
    if args.profile:
        gpu_case.print_profiles(step, render, device, args.profile)
    if device.type == 'cuda':
        result['peak_memory_gib'] = torch.cuda.max_memory_allocated(device) / 2**30
        print(f'peak memory: {result["peak_memory_gib"]:.2f} GiB')
    if args.json:
        print(json.dumps(result))


if __name__ == '__main__':
    main()
