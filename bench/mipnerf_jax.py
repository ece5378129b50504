"""Times google/mipnerf's own JAX train step and render at a gin config (blender.gin), bench/mipnerf.py's twin.

    python bench/mipnerf_jax.py MIPNERF_TREE [--gin configs/blender.gin] [--batch 1024] [--render_rays 4096]
        [--steps 3] [--render_steps 1] [--bind 'MLP.net_width = 128' ...] [--json]

Run with an interpreter that has jax, flax, optax and gin-config (not the project venv); the original is
imported from MIPNERF_TREE, never copied. New jax/flax lack a few names the 2021 code uses; as in
tests/golden/tools/gen_mipnerf.py they are shimmed (flax.nn activations, jax.tree_map, jax.host_id), and
modules imported for I/O and logging only (tensorboard, checkpoints, cv2, matplotlib, PIL when missing) are
empty stand-ins.
flax.optim is gone: its Adam (beta1 0.9, beta2 0.999, eps 1e-8, no weight decay), which train.py makes with
`flax.optim.Adam(config.lr_init).create(variables)`, is stood in for by the same update through
optax.scale_by_adam behind flax.optim's `target` / `apply_gradient(grad, learning_rate)` interface.

The model is models.construct_mipnerf's MipNerfModel; the step is train.py's train_step pmapped as train.py
pmaps it (donated state), on --batch random rays of a radius-4 orbit looking near the origin (the rays
bench/mipnerf.py draws; no dataset is read). Rendering is models.render_image of train.py's render_eval_fn
(deterministic) over --render_rays rays in chunks of --chunk (train.py's flag, 8192). Steps are timed after two warm-up calls
(compilation). The last line with --json is {train_rays_per_s, render_rays_per_s, ...}.
"""

import argparse
import functools
import json
import os
import sys
import time
import types
from typing import Any

import numpy as np


def import_original(tree):
    """train, internal.models and internal.utils of the original, with the shims above."""
    import flax
    import jax
    import optax

    flax.nn = types.SimpleNamespace(relu=jax.nn.relu, sigmoid=jax.nn.sigmoid, softplus=jax.nn.softplus)

    @flax.struct.dataclass
    class Adam:
        """flax.optim's Optimizer for Adam: target (the parameters) and the moments."""
        target: Any
        state: Any

        def apply_gradient(self, grad, learning_rate):
            updates, state = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8).update(grad, self.state)
            target = jax.tree_util.tree_map(lambda p, u: p - learning_rate * u, self.target, updates)
            return Adam(target=target, state=state)

        @classmethod
        def create(cls, variables):
            return cls(target=variables, state=optax.scale_by_adam().init(variables))

    flax.optim = types.SimpleNamespace(Optimizer=object, Adam=Adam)
    if not hasattr(jax, 'tree_map'):
        jax.tree_map = jax.tree_util.tree_map
    if not hasattr(jax, 'host_id'):
        jax.host_id, jax.host_count = jax.process_index, jax.process_count
    if not hasattr(jax.config, 'parse_flags_with_absl'):
        jax.config.parse_flags_with_absl = lambda: None
    for name in ('cv2', 'flax.metrics.tensorboard', 'flax.training.checkpoints', 'matplotlib', 'matplotlib.cm'):
        sys.modules.setdefault(name, types.ModuleType(name))
    try:
        import PIL.Image  # noqa: F401
    except ImportError:  # utils imports it for image I/O only
        pil = types.ModuleType('PIL')
        pil.Image = types.ModuleType('PIL.Image')
        sys.modules['PIL'], sys.modules['PIL.Image'] = pil, pil.Image
    sys.path.insert(0, os.path.abspath(tree))
    import train  # noqa: E402
    from internal import models, utils  # noqa: E402
    return types.SimpleNamespace(models=models, utils=utils, train=train, Adam=Adam)


def random_rays(utils, n, rng):
    """Rays [n, ...] from cameras on a radius-4 orbit looking near the origin (bench/mipnerf.py's rays)."""
    angle = 2 * np.pi * rng.uniform(size=(n, 1))
    origins = np.concatenate([4 * np.cos(angle), 4 * np.sin(angle), 0.5 + rng.uniform(size=(n, 1))], -1)
    directions = 0.5 * (rng.uniform(size=(n, 3)) - 0.5) - origins
    ones = np.ones((n, 1))
    rays = dict(origins=origins, directions=directions,
                viewdirs=directions / np.linalg.norm(directions, axis=-1, keepdims=True), radii=ones * 0.002,
                lossmult=ones, near=ones * 2., far=ones * 6.)
    return utils.Rays(**{k: v.astype(np.float32) for k, v in rays.items()})


def flops_per_ray(variables, model):
    """2 x in x out of every Dense kernel of the MLP, at num_samples samples of each of num_levels levels."""
    mlp = variables['params']['MLP_0']
    return 2.0 * model.num_levels * model.num_samples * sum(
        np.prod(v['kernel'].shape) for v in mlp.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('tree')
    parser.add_argument('--gin', default='configs/blender.gin')
    parser.add_argument('--batch', type=int, default=1024)
    parser.add_argument('--render_rays', type=int, default=4096)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--render_steps', type=int, default=1)
    parser.add_argument('--chunk', type=int, default=8192, help="rays per render call (train.py's --chunk)")
    parser.add_argument('--bind', action='append', default=[])
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args()

    orig = import_original(args.tree)
    os.chdir(args.tree)
    import flax
    import gin
    import jax

    gin.parse_config_files_and_bindings([args.gin], [f'Config.batch_size = {args.batch}'] + args.bind)
    config = orig.utils.Config()
    rng = np.random.default_rng(0)
    rays = random_rays(orig.utils, args.batch, rng)
    batch = {'rays': rays, 'pixels': rng.uniform(size=(args.batch, 3)).astype(np.float32)}
    model, variables = orig.models.construct_mipnerf(jax.random.PRNGKey(0), orig.utils.shard(batch))
    forward = flops_per_ray(variables, model)
    # train.py: state = utils.TrainState(optimizer=flax.optim.Adam(config.lr_init).create(variables))
    state = flax.jax_utils.replicate(orig.utils.TrainState(optimizer=orig.Adam.create(variables)))
    train_pstep = jax.pmap(functools.partial(orig.train.train_step, model, config), axis_name='batch',
                           in_axes=(0, 0, 0, None), donate_argnums=(2,))
    pbatch = orig.utils.shard(batch)
    keys = jax.random.split(jax.random.PRNGKey(1), jax.local_device_count())
    lr = 1e-4
    for _ in range(2):  # compilation, then the donated state's layout
        state, stats, keys = train_pstep(keys, state, pbatch, lr)
    jax.block_until_ready(stats.loss)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, stats, keys = train_pstep(keys, state, pbatch, lr)
    jax.block_until_ready(stats.loss)
    train_s = (time.perf_counter() - start) / args.steps

    def render_eval_fn(variables, _, rays):  # train.py's
        return jax.lax.all_gather(
            model.apply(variables, jax.random.PRNGKey(0), rays, randomized=False, white_bkgd=config.white_bkgd),
            axis_name='batch')

    render_eval_pfn = jax.pmap(render_eval_fn, in_axes=(None, None, 0), donate_argnums=(2,), axis_name='batch')
    target = flax.jax_utils.unreplicate(state).optimizer.target
    image = orig.utils.namedtuple_map(lambda x: x[None], random_rays(orig.utils, args.render_rays, rng))
    render = lambda: jax.block_until_ready(
        orig.models.render_image(functools.partial(render_eval_pfn, target), image, keys[0], chunk=args.chunk))
    render()
    start = time.perf_counter()
    for _ in range(args.render_steps):
        render()
    render_s = (time.perf_counter() - start) / args.render_steps
    result = {
        'config': f'google/mipnerf {args.gin} {" ".join(args.bind)}'.strip(), 'jax': jax.__version__,
        'device': str(jax.devices()[0]), 'train_rays': args.batch, 'train_s_per_step': train_s,
        'train_rays_per_s': args.batch / train_s, 'render_rays': args.render_rays, 'render_s': render_s,
        'render_rays_per_s': args.render_rays / render_s, 'flops_per_ray_train': 3 * forward,
        'train_gflops': 3 * forward * args.batch / train_s / 1e9, 'loss': float(stats.loss[0]),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f'{k}: {v}')


if __name__ == '__main__':
    main()
