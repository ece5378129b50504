"""Throughput of mipnerf: rays/s of a training step and of rendering, for the paper model and demo.gin.

    python bench/mipnerf.py [--gin mipnerf/configs/demo.gin ...] [--batch 1024] [--steps 5]
        [--render_rays 4096] [--compile] [--no_tf32] [--bind 'MLP.net_depth=4' ...]

Without --gin it measures the paper's model (multiblender.gin: 128 + 128 samples, MLP 8x256)
and demo.gin. A training step is forward + loss + backward + Adam (train.train_step) on `--batch`
random rays of a radius-4 orbit (no dataset is read); rendering is the deterministic eval forward
in chunks of --chunk rays. Prints the device, dtype and threads with every figure.
"""

import argparse
import functools
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

from common import device as device_utils  # noqa: E402
from mipnerf import train  # noqa: E402
from mipnerf.internal import models, utils  # noqa: E402

PAPER_AND_DEMO = ('configs/multiblender.gin', 'configs/demo.gin')


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
    render_s = device_utils.timed(render, max(1, args.steps // 2), device)

    params = sum(p.numel() for p in model.parameters())
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'config {gin_file} {" ".join(args.bind)}: {params / 1e6:.3f} M parameters; device {name}; '
          f'dtype float32{"; TF32" if device.type == "cuda" and not args.no_tf32 else ""}'
          f'{"; torch.compile" if args.compile else ""}; threads {torch.get_num_threads()}')
    print(f'train : {args.batch} rays/step, {train_s:.3f} s/step, {args.batch / train_s:,.0f} rays/s')
    print(f'render: {args.render_rays} rays, {render_s:.3f} s, {args.render_rays / render_s:,.0f} rays/s')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', action='append', help='config file (repeatable; default: paper and demo)')
    parser.add_argument('--batch', type=int, default=1024, help='rays per training step')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--render_rays', type=int, default=4096)
    parser.add_argument('--chunk', type=int, default=8192, help='rays per rendering forward pass')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model')
    parser.add_argument('--no_tf32', action='store_true')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    args = parser.parse_args()

    device = device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(not args.no_tf32)
    for gin_file in args.gin or PAPER_AND_DEMO:
        bench(gin_file, args, device)


if __name__ == '__main__':
    main()
