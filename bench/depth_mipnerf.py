"""Throughput of depth_mipnerf: rays/s of a training step and of rendering, for lego.gin and demo.gin.

    python bench/depth_mipnerf.py [--gin configs/lego.gin ...] [--batch 1024] [--steps 3]
        [--render_rays 4096] [--bind 'nerf.mlp.net_depth=4' ...]

A training step is forward + MSELoss (bounded-CDF depth terms included) + backward + gradient clip
+ Adam (train.train_step) on --batch random rays of a radius-4 orbit with depth 4 (no dataset is
read); rendering is the deterministic eval forward in val.chunk_size chunks. Prints the device,
dtype and threads with every figure.
"""

import argparse
import os
import sys

# This file shares its name with the package: keep bench/ off the import path, the repository first.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import torch  # noqa: E402

from common import device as device_utils  # noqa: E402
from depth_mipnerf import train  # noqa: E402
from depth_mipnerf.configs import config as config_lib  # noqa: E402
from depth_mipnerf.datasets.datasets import Rays  # noqa: E402
from depth_mipnerf.models import nerf_system  # noqa: E402

PAPER_AND_DEMO = ('configs/lego.gin', 'configs/demo.gin')


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
    batches = FixedBatches(rays, torch.rand(args.batch, 3, generator=generator).to(device))
    train_s = device_utils.timed(
        lambda: train.train_step(model, loss_fn, optimizer, batches, 1, config, sections),
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
    args = parser.parse_args()
    device = device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(True)
    for gin_file in args.gin or PAPER_AND_DEMO:
        bench(gin_file, args, device)


if __name__ == '__main__':
    main()
