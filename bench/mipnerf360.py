"""Throughput of mipnerf360: rays/s of a training step and of rendering, for a named gin config.

    python bench/mipnerf360.py [--gin mipnerf360/configs/360.gin] [--batch 1024] [--steps 5]
        [--render_rays 4096] [--bf16] [--compile] [--no_tf32] [--bind 'NerfMLP.net_depth=4' ...]

A training step is forward + losses + backward + clipping + Adam on `--batch` random rays of a
synthetic orbit (no dataset is read); rendering is the deterministic eval forward in chunks of
Config.render_chunk_size. Prints the device, dtype and threads with every figure.
"""

import argparse
import functools
import os
import sys

# This file shares its name with the package: keep bench/ off the import path so that
# `import mipnerf360` finds the package, not this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != os.path.dirname(os.path.abspath(__file__))]

import gin  # noqa: E402
import torch  # noqa: E402
from absl import flags  # noqa: E402

from common import device as device_utils  # noqa: E402
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
    parser.add_argument('--no_tf32', action='store_true')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    args = parser.parse_args()

    device = device_utils.pick_device()
    bindings = [f'Config.batch_size={args.batch}', f'Config.use_bf16_autocast={args.bf16}', *args.bind]
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
          f'{"; torch.compile" if args.compile else ""}; threads {torch.get_num_threads()}')
    print(f'train : {args.batch} rays/step, {train_s:.3f} s/step, {args.batch / train_s:,.0f} rays/s')
    print(f'render: {args.render_rays} rays, {render_s:.3f} s, {args.render_rays / render_s:,.0f} rays/s')


if __name__ == '__main__':
    main()
