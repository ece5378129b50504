"""Times google-research/multinerf's own JAX train step and render at a gin config (360.gin).

    python bench/multinerf_jax.py MULTINERF_TREE [--gin configs/360.gin] [--batch 16384]
        [--render_rays 65536] [--steps 20] [--bind 'NerfMLP.net_width = 128' ...] [--json]

Run with an interpreter that has jax, flax, optax and gin-config (the GPU machine's own Python
has all but gin-config, which is carried as a wheel). The model and optimizer come from
multinerf's train_utils.setup_model on random rays (no dataset), so only the model's compute is
timed, as bench/mipnerf360.py times the port. Modules multinerf imports for data loading and
metrics only (rawpy, pycolmap, dm_pix) are replaced by empty stand-ins when missing. The last line
with --json is {train_rays_per_s, render_rays_per_s, train_tflops, ...}; FLOPs per ray come from
the dense kernels' sizes at the config's sample counts, counted as bench/mipnerf360.py counts them.
"""

import argparse
import json
import os
import sys
import time
import types

import numpy as np


def stub_missing(names):
    """Empty stand-ins for modules multinerf imports but the timed code never uses."""
    for name in names:
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.SceneManager = object  # datasets.py subclasses pycolmap.SceneManager
            sys.modules[name] = module


def random_rays(utils, config, n, seed):
    """multinerf Rays [n, ...] from near the origin in random directions."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3)).astype(np.float32)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    one = np.ones((n, 1), np.float32)
    return utils.Rays(
        origins=(0.1 * rng.normal(size=(n, 3))).astype(np.float32), directions=d, viewdirs=d,
        radii=one * 1e-3, imageplane=np.zeros((n, 2), np.float32), lossmult=one,
        near=one * config.near, far=one * config.far, cam_idx=np.zeros((n, 1), np.int32),
        exposure_idx=None, exposure_values=one)


def flops_per_ray(params, model):
    """Forward FLOPs per ray: 2 x in x out of every Dense kernel, at each level's samples."""
    def mlp_flops(tree):
        return 2.0 * sum(np.prod(v['kernel'].shape) for k, v in tree.items() if k.startswith('Dense'))
    nerf = mlp_flops(params['NerfMLP_0'])
    prop = nerf if model.single_mlp else mlp_flops(params['PropMLP_0'])
    return prop * model.num_prop_samples * (model.num_levels - 1) + nerf * model.num_nerf_samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('tree')
    parser.add_argument('--gin', default='configs/360.gin')
    parser.add_argument('--batch', type=int, default=16384)
    parser.add_argument('--render_rays', type=int, default=65536)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--bind', action='append', default=[])
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args()

    if not hasattr(np, 'math'):  # multinerf uses np.math, gone from numpy 2
        import math
        np.math = math
    stub_missing(['rawpy', 'pycolmap', 'dm_pix', 'mediapy'])
    sys.path.insert(0, os.path.abspath(args.tree))
    os.chdir(args.tree)
    import flax
    import gin
    import jax
    from internal import configs, train_utils, utils

    gin.parse_config_files_and_bindings(
        [args.gin], [f'Config.batch_size = {args.batch}'] + args.bind, skip_unknown=True)
    config = configs.Config()
    model, state, render_pfn, train_pstep, _ = train_utils.setup_model(config, jax.random.PRNGKey(0))
    params = state.params['params']
    forward = flops_per_ray(params, model)
    pstate = flax.jax_utils.replicate(state)
    rgb = np.random.default_rng(2).uniform(size=(args.batch, 3)).astype(np.float32)
    batch = utils.shard(utils.Batch(rays=random_rays(utils, config, args.batch, 1), rgb=rgb))
    rngs = jax.random.split(jax.random.PRNGKey(1), jax.local_device_count())
    # Two warm-up calls: the pmapped step compiles again for the donated state of the first.
    for _ in range(2):
        pstate, stats, rngs = train_pstep(rngs, pstate, batch, None, 0.5, float('inf'))
    jax.block_until_ready(stats['loss'])
    start = time.perf_counter()
    for _ in range(args.steps):
        pstate, stats, rngs = train_pstep(rngs, pstate, batch, None, 0.5, float('inf'))
    jax.block_until_ready(stats['loss'])
    train_s = (time.perf_counter() - start) / args.steps

    chunk = min(config.render_chunk_size, args.render_rays)
    chunks = [utils.shard(random_rays(utils, config, chunk, 3 + i))
              for i in range(max(1, args.render_rays // chunk))]
    eval_params = flax.jax_utils.unreplicate(pstate).params
    jax.block_until_ready(render_pfn(eval_params, 0.5, None, chunks[0]))
    start = time.perf_counter()
    outputs = [render_pfn(eval_params, 0.5, None, c) for c in chunks]
    jax.block_until_ready(outputs)
    render_s = time.perf_counter() - start
    result = {
        'config': f'multinerf {args.gin} {" ".join(args.bind)}'.strip(),
        'jax': jax.__version__, 'device': str(jax.devices()[0]),
        'train_rays': args.batch, 'train_rays_per_s': args.batch / train_s,
        'render_rays': chunk * len(chunks), 'render_rays_per_s': chunk * len(chunks) / render_s,
        'flops_per_ray_train': 3 * forward,
        'train_tflops': 3 * forward * args.batch / train_s / 1e12,
        'loss': float(stats['loss'][0]),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f'{k}: {v}')


if __name__ == '__main__':
    main()
