"""Seconds per iNeRF pose estimate (Config.n_steps steps, 300 by default) of a config.

    python bench/inerf.py [--gin inerf/configs/blender.gin ...] [--size 400] [--steps 3] [--threads 1]
        [--bind 'Config.batch_size=512' ...]

Without --gin it measures the paper's config (blender.gin: 8x256 coarse and fine NeRF, 64 + 128
samples, batch 2048, interest regions) and demo.gin. The NeRF has random weights and the observed
image is random noise at the config's resolution (400x400 for half-res Blender; demo: 32x32):
only time is measured. One estimate of --steps steps is timed after a warm-up one and scaled to n_steps.
"""

import argparse
import dataclasses
import os
import sys

# bench/ shares its file name with the package: keep it off the import path, the repository root first.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [
    p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import device as device_utils  # noqa: E402
from inerf import nerf_helpers, run, utils  # noqa: E402

PAPER_AND_DEMO = (('inerf/configs/blender.gin', 400), ('inerf/configs/demo.gin', 32))


def bench(gin_file, size, args, device):
    """Prints seconds per step and per n_steps-step estimate of one config."""
    gin.clear_config()
    config = utils.parse_config([gin_file], args.bind)
    torch.manual_seed(0)
    render_kwargs, models = nerf_helpers.create_nerf(config, device)
    for model in models.values():
        if model is not None:
            model.requires_grad_(False)
    rng = np.random.default_rng(0)
    obs = rng.random((size, size, 3)).astype(np.float32)
    focal = 0.5 * size / np.tan(0.5 * 0.69)
    pose = np.eye(4)
    pose[:3, 3] = [0., 0., 4.]

    def steps(n):
        cfg = dataclasses.replace(config, n_steps=n, eval_steps=())
        run.estimate_pose(render_kwargs, obs, pose, [size, size, focal], cfg, rng, config.near,
                          config.far)

    per_step = device_utils.timed(lambda: steps(args.steps), 1, device) / args.steps
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'config {gin_file} {" ".join(args.bind)}: {size}x{size} image, batch {config.batch_size}, '
          f'{config.N_samples}+{config.N_importance} samples, {config.sampling_strategy}; device {name}; '
          f'threads {torch.get_num_threads()}')
    print(f'{per_step:.3f} s/step, {per_step * config.n_steps:.1f} s per pose estimate '
          f'({config.n_steps} steps)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', action='append', help='config file (repeatable; default: paper and demo)')
    parser.add_argument('--size', type=int, default=None, help='image side in pixels')
    parser.add_argument('--steps', type=int, default=3, help='timed steps')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_utils.pick_device()
    configs = [(g, args.size or 400) for g in args.gin] if args.gin else PAPER_AND_DEMO
    for gin_file, size in configs:
        bench(gin_file, args.size or size, args, device)


if __name__ == '__main__':
    main()
