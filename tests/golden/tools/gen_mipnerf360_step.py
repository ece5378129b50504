#!/usr/bin/env python3
"""Writes whole-training-step golden cases of mipnerf360 from the ORIGINAL multinerf (JAX, CPU).

    python tests/golden/tools/gen_mipnerf360_step.py --original /tmp/orig_multinerf \
        --out tests/golden/mipnerf360 [--x64]

What it runs: multinerf's own gin configs (configs/360.gin plus the case's bindings, a small
NerfMLP / PropMLP), its `models.construct_model` for seeded flax parameters, its `Model.apply` on
seeded rays with rng None (deterministic sampling), and the losses exactly as the loss function of
its `train_utils.create_train_step` composes them (`train_utils.compute_data_loss`,
`interlevel_loss`, `distortion_loss`, summed), then `jax.grad` of the total loss and of the data
loss alone. Everything the port needs is stored in the case file:
  in_params_<flax path, '/' -> '__'>: every initialised flax parameter leaf,
  in_rays_<field>: the Rays fields, in_rgb: the batch's colours,
  out_level<i>_{rgb,weights,sdist}: every level's rendering and ray history,
  out_loss_{data,interlevel,distortion,total},
  out_grad_<path>: d total / d parameter, out_grad_data_<path>: d data loss / d parameter.
A 'split' run writes two cases: <name> (every level, loss and parameter gradient, with the
tolerance that float32 conditioning needs) and <name>_heads (the losses and the head layers'
gradients of the same run, the well-conditioned outputs, with a tight tolerance). A
'given_sdist' run writes one case that also stores multinerf's sample positions of every level
(in_sdist_level<i>), which the port's adapter substitutes for its own: all outputs tight.

multinerf needs a few shims under current JAX/numpy (np.math; rawpy and pycolmap stubs, since
train_utils imports datasets); nothing of multinerf is copied. With --x64 it writes no case but
/tmp/<name>_x64.npz, the outputs of a float32 and a float64 run (jax_enable_x64, float64
parameters, the same float32-rounded rays) as f32_<output> / f64_<output>, to compare with the
port's model.double() and tell float32 conditioning from real differences.
Running it twice replaces its own manifest entries.
"""

import argparse
import json
import os
import pathlib
import sys
import types

import numpy as np

# The repository root: data_tools.flax_checkpoints needs only numpy and msgpack (which flax brings).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
from data_tools import flax_checkpoints  # noqa: E402

COMMIT = '5b4d4f64608ec8077222c52fdf814d40acc10bc1'
REFERENCE = f'google-research/multinerf@{COMMIT}'

# The small 360.gin model of the case (the paper's 8x1024 / 4x256 MLPs shrunk; the bottleneck
# halved to keep the case file small), with every Config value the loss reads made explicit.
SMALL_360 = [
    'NerfMLP.net_depth = 4', 'NerfMLP.net_width = 128', 'NerfMLP.bottleneck_width = 128',
    'PropMLP.net_depth = 2', 'PropMLP.net_width = 64',
    'Config.randomized = False',
    'Config.data_loss_type = "mse"', 'Config.data_loss_mult = 1.0',
    'Config.data_coarse_loss_mult = 0.0', 'Config.interlevel_loss_mult = 1.0',
    'Config.distortion_loss_mult = 0.01',
]

# A tiny model for the given-sample-positions case (later bindings override SMALL_360's).
TINY_360 = [
    'NerfMLP.net_depth = 2', 'NerfMLP.net_width = 32', 'NerfMLP.bottleneck_width = 16',
    'NerfMLP.net_width_viewdirs = 16', 'NerfMLP.max_deg_point = 4', 'PropMLP.net_width = 16',
    'PropMLP.max_deg_point = 4',
]

CASES = [
    # name, extra gin bindings, number of rays, seed, train_frac, kind: 'split' writes <name>
    # and <name>_heads; 'given_sdist' stores multinerf's sample positions as inputs.
    ('train_step_360_small', [], 64, 0, 0.5, 'split'),
    ('train_step_360_tiny_given_sdist', TINY_360, 64, 1, 0.3, 'given_sdist'),
]

# The layers after the trunk: NerfMLP's density head, bottleneck, view-direction layer and colour
# head, and PropMLP's density head. Their gradients are well conditioned (see HEADS_NOTES).
HEAD_LAYERS = ('NerfMLP_0/Dense_4/', 'NerfMLP_0/Dense_5/', 'NerfMLP_0/Dense_6/',
               'NerfMLP_0/Dense_7/', 'PropMLP_0/Dense_2/')

CONVENTION = (
    'Whole training step of multinerf (the loss function of train_utils.create_train_step) on '
    '64 seeded rays, deterministic (Config.randomized False: rng None, linspace sampling). Port '
    'convention (tests/golden_adapters/mipnerf360/train_step.py): parse static gin_configs '
    '(relative to the mipnerf360 package) and gin_bindings, build Config() and '
    'models.Model(config), load the in_params_<flax path, "/" as "__"> leaves with '
    'models.load_flax_params, build utils.Rays from in_rays_<field> (cam_idx int, no '
    'exposure_idx) and utils.Batch(rays, rgb=in_rgb), call train_utils.compute_losses(model, '
    'model, None, batch, None, PERSPECTIVE, train_frac, 1.0, config) and backpropagate. Outputs: '
    'level<i>_{rgb,weights,sdist} = renderings[i]["rgb"], ray_history[i]["weights"/"sdist"]; '
    'loss_{data,interlevel,distortion} as train_utils computes them, loss_total their sum (no '
    'weight decay); grad_<path> = d loss_total / d param and grad_data_<path> = d loss_data / d '
    'param, in flax layout (kernels [in, out]). ')
EVIDENCE = (
    'Measured (port vs multinerf, jax 0.10.2 CPU): in float64 on both sides (jax_enable_x64, '
    'model.double()) with multinerf\'s sample positions fed to the port (its deterministic linspace '
    'is float32 even under x64), every rendering, loss and gradient agrees to 1e-13 of its largest '
    'entry: the backward is the same (stop-gradients, '
    'ReLU at 0, safe_sin/safe_exp, IPE, contract, view branch). In float32 the deterministic '
    'sample positions differ by 1 ulp (jnp.linspace vs torch.linspace rounding, XLA fusion), and '
    'the 360.gin ray warp (1/t, far 1e6) is ill-conditioned near s = 1: t ~ near / (1 - s), so at '
    's = 1 - 2^-22 one ulp of s moves t by ~30%, and the second-to-last interval of every level '
    'spans ~[12, 5e5]. With multinerf\'s float32 sample positions forced into the port every '
    'gradient agrees to 2.5e-5 of its largest entry; with its own positions the port\'s weights '
    'differ by up to 7.6e-5 (7e-4 of max), sdist by 2.6e-5, and the trunk gradients (NerfMLP '
    'Dense_0..3, PropMLP Dense_0..1) by up to 1.2e-4 absolute (1.5e-2 of the largest entry, '
    'NerfMLP_0/Dense_1/kernel). ')
STEP_NOTES = (
    'The complete step: every level, the losses and the gradient of every parameter. '
    'Tolerance rtol 1e-3, atol 3e-4 covers the float32 conditioning measured below with a margin '
    'of 2.5; '
    'the losses and the head gradients are checked tightly by the _heads case of the same run. ')
GIVEN_NOTES = (
    'multinerf\'s own sample positions of every level are inputs (in_sdist_level<i>, its '
    'ray_history[i]["sdist"], float32) and replace the port\'s stepfun.sample_intervals (static '
    'given_sdist: the adapter substitutes them level by level; sdist is a constant of the '
    'gradient in both, stop_level_grad). That removes the float32 conditioning of the sample '
    'positions (see train_step_360_small; with the port\'s own positions the gradients of this '
    'case differ by up to 7.8e-5 of their largest entry), so every output, trunk gradients '
    'included, is compared tightly: a regression test of the whole backward. Measured: every '
    'gradient within '
    '1e-8 at rtol 1e-5; atol 1e-6 is for the proposal levels\' rgb, (1 - acc) * bg with acc = 1 '
    'to 2.4e-7. Tiny MLPs (NerfMLP 2x32, PropMLP 2x16, 4 IPE degrees), 360.gin\'s 64/64/32 samples. ')
HEADS_NOTES = (
    'The same run as train_step_360_small, its well-conditioned outputs only: the losses (3e-6 '
    'relative) and the gradients of the head layers (NerfMLP Dense_4..7, PropMLP Dense_2; '
    'measured within 5e-7 at rtol 1e-5), of the total and of the data loss. ')


def setup_original(path, x64):
    """Imports multinerf from `path` with the shims current JAX and numpy need."""
    if not hasattr(np, 'math'):
        import math as _math
        np.math = _math
    sys.modules.setdefault('rawpy', types.ModuleType('rawpy'))
    pycolmap = types.ModuleType('pycolmap')
    pycolmap.SceneManager = object
    sys.modules.setdefault('pycolmap', pycolmap)
    sys.path.insert(0, str(path))
    import jax
    jax.config.update('jax_platforms', 'cpu')
    if x64:
        jax.config.update('jax_enable_x64', True)


def flat_params(tree, prefix=''):
    """{'NerfMLP_0/Dense_0/kernel': array} of a nested params dict."""
    flat = {}
    for k, v in tree.items():
        path = f'{prefix}/{k}' if prefix else k
        if hasattr(v, 'items'):
            flat.update(flat_params(v, path))
        else:
            flat[path] = np.asarray(v)
    return flat


def seeded_rays(n, seed, near, far):
    """numpy Rays fields of n camera-like rays: unnormalised directions, unit viewdirs."""
    r = np.random.default_rng(seed)
    viewdirs = r.normal(size=(n, 3))
    viewdirs /= np.linalg.norm(viewdirs, axis=-1, keepdims=True)
    directions = viewdirs * r.uniform(1.0, 1.3, size=(n, 1))  # |d| > 1, as for pixel rays.
    one = np.ones((n, 1))
    return dict(
        origins=r.normal(size=(n, 3)) * 0.3,
        directions=directions,
        viewdirs=viewdirs,
        radii=r.uniform(5e-4, 3e-3, size=(n, 1)),
        imageplane=r.uniform(-1, 1, size=(n, 2)),
        lossmult=r.uniform(0.5, 1.5, size=(n, 1)),
        near=one * near,
        far=one * far,
        cam_idx=np.zeros((n, 1), np.int32),
        exposure_values=one,
    ), r.uniform(size=(n, 3))


def run_original(original, bindings, n, seed, train_frac, dtype, param_override=None):
    """multinerf's step on seeded rays: (params, rays, rgb, outputs), all numpy."""
    import gin
    import jax
    import jax.numpy as jnp
    from internal import configs, models, train_utils, utils

    gin.clear_config()
    gin.parse_config_files_and_bindings(
        [str(pathlib.Path(original) / 'configs' / '360.gin')], SMALL_360 + bindings,
        skip_unknown=False)
    config = configs.Config()
    fields, rgb = seeded_rays(n, seed, config.near, config.far)
    # Inputs are rounded to float32 first (as the case stores them), also for a float64 run.
    cast = lambda x: x.astype(np.float32).astype(dtype) if x.dtype.kind == 'f' else x
    fields = {k: cast(v) for k, v in fields.items()}
    rgb = cast(rgb)
    rays = utils.Rays(**{k: jnp.asarray(v) for k, v in fields.items()})
    model, variables = models.construct_model(jax.random.PRNGKey(seed), rays, config)
    if param_override is not None:
        variables = jax.tree_util.tree_map(jnp.asarray, param_override)
    variables = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), variables)
    batch = utils.Batch(rays=rays, rgb=jnp.asarray(rgb))

    def losses_fn(variables):
        # The loss function of train_utils.create_train_step, rng None (config.randomized False).
        renderings, ray_history = model.apply(
            variables, None, batch.rays, train_frac=train_frac, compute_extras=False,
            zero_glo=False)
        losses = {}
        losses['data'], _ = train_utils.compute_data_loss(batch, renderings, batch.rays, 1.0, config)
        losses['interlevel'] = train_utils.interlevel_loss(ray_history, config)
        losses['distortion'] = train_utils.distortion_loss(ray_history, config)
        return losses, (renderings, ray_history)

    def total_fn(variables):
        losses, aux = losses_fn(variables)
        return jnp.sum(jnp.array(list(losses.values()))), (losses, aux)

    (total, (losses, (renderings, ray_history))), grads = jax.value_and_grad(
        total_fn, has_aux=True)(variables)
    grads_data = jax.grad(lambda v: losses_fn(v)[0]['data'])(variables)

    out = {}
    for i, (rendering, history) in enumerate(zip(renderings, ray_history)):
        out[f'level{i}_rgb'] = rendering['rgb']
        out[f'level{i}_weights'] = history['weights']
        out[f'level{i}_sdist'] = history['sdist']
    for k in ('data', 'interlevel', 'distortion'):
        out[f'loss_{k}'] = losses[k]
    out['loss_total'] = total
    for path, g in flat_params(grads['params']).items():
        out['grad_' + path.replace('/', '__')] = g
    for path, g in flat_params(grads_data['params']).items():
        out['grad_data_' + path.replace('/', '__')] = g
    out = {k: np.asarray(v) for k, v in out.items()}
    return flat_params(variables['params']), fields, rgb, out


def write_case(out_dir, name, bindings, train_frac, params, fields, rgb, out, rtol, atol, notes,
               extra_inputs=None, extra_static=None):
    """The .npz (float32) and its manifest entry, replacing an entry of the same name."""
    arrays = {}
    for path, v in params.items():
        arrays['in_params_' + path.replace('/', '__')] = v.astype(np.float32)
    for k, v in fields.items():
        arrays['in_rays_' + k] = v.astype(np.float32) if v.dtype.kind == 'f' else v
    arrays['in_rgb'] = rgb.astype(np.float32)
    for k, v in (extra_inputs or {}).items():
        arrays['in_' + k] = v.astype(np.float32)
    for k, v in out.items():
        arrays['out_' + k] = v.astype(np.float32)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / f'{name}.npz', **arrays)
    entry = {
        'case': f'{name}.npz',
        'function': 'mipnerf360.internal.train_utils:compute_losses',
        'reference': f'{REFERENCE}:internal/train_utils.py:create_train_step.train_step.loss_fn',
        'args': ['rays', 'rgb'],
        'static': {
            'gin_configs': ['configs/360.gin'],
            'gin_bindings': SMALL_360 + bindings,
            'train_frac': train_frac,
            **(extra_static or {}),
        },
        'outputs': list(out),
        'rtol': rtol,
        'atol': atol,
        'notes': notes,
    }
    manifest = out_dir / 'manifest.json'
    entries = json.loads(manifest.read_text()) if manifest.exists() else []
    entries = [e for e in entries if e['case'] != entry['case']] + [entry]
    manifest.write_text(json.dumps(entries, indent=1) + '\n')
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--original', required=True, help='multinerf tree (at %s)' % COMMIT)
    parser.add_argument('--out', default='tests/golden/mipnerf360')
    parser.add_argument('--x64', action='store_true', help='compare float32 and float64 runs')
    args = parser.parse_args()
    setup_original(os.path.abspath(args.original), args.x64)
    for name, bindings, n, seed, train_frac, kind in CASES:
        params, fields, rgb, out = run_original(
            args.original, bindings, n, seed, train_frac, np.float32)
        if args.x64:
            np.savez(f'/tmp/{name}_x64.npz', **{
                **{'f32_' + k: v for k, v in out.items()},
                **{'f64_' + k: v for k, v in run_original(
                    args.original, bindings, n, seed, train_frac, np.float64,
                    param_override={'params': flax_checkpoints.nest(params)})[3].items()}})
            print(f'wrote /tmp/{name}_x64.npz')
            continue
        if kind == 'given_sdist':
            sdist = {f'sdist_level{i}': out[f'level{i}_sdist']
                     for i in range(len(out)) if f'level{i}_sdist' in out}
            entry = write_case(
                args.out, name, bindings, train_frac, params, fields, rgb, out, 1e-5, 1e-6,
                GIVEN_NOTES + CONVENTION, extra_inputs=sdist, extra_static={'given_sdist': True})
            print(f"wrote {entry['case']}: {len(out)} outputs")
            continue
        step = {k: v for k, v in out.items() if not k.startswith('grad_data_')}
        heads = {k: v for k, v in out.items() if k.startswith('loss_') or any(
            k.endswith(layer.replace('/', '__') + leaf) for layer in HEAD_LAYERS
            for leaf in ('kernel', 'bias'))}
        for case_name, outputs, rtol, atol, notes in [
                (name, step, 1e-3, 3e-4, STEP_NOTES),
                (name + '_heads', heads, 2e-5, 1.5e-6, HEADS_NOTES)]:
            entry = write_case(args.out, case_name, bindings, train_frac, params, fields, rgb,
                               outputs, rtol, atol, notes + EVIDENCE + CONVENTION)
            print(f"wrote {entry['case']}: {len(outputs)} outputs")


if __name__ == '__main__':
    main()
