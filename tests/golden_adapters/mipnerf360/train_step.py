"""Adapter for whole-training-step cases of mipnerf360 (`train_utils:compute_losses`).

Convention of such a case (see its manifest `notes`):
  static:  gin_configs (files relative to the mipnerf360 package, e.g. 'configs/360.gin') and
           gin_bindings that configure Config, Model, NerfMLP and PropMLP; train_frac.
  inputs:  params_<flax path with '/' -> '__'> (multinerf's initialised parameters, loaded with
           models.load_flax_params), rays_<Rays field>, rgb (the batch's colours).
  outputs: level<i>_{rgb,weights,sdist} (renderings[i]['rgb'], ray_history[i]['weights'/'sdist']),
           loss_{data,interlevel,distortion,total}, grad_<path> (d total / d parameter, flax
           layout: kernels [in, out]) and grad_data_<path> (d data loss / d parameter).
The model is called by compute_losses itself (the forward is captured with a hook), with the
rng of compute_losses (None: config.randomized is False in these cases). With static given_sdist
the case also stores sdist_level<i> (the original's sample positions of each level), which
replace the port's stepfun.sample_intervals level by level.
"""

import contextlib
import os

import gin
import torch

from mipnerf360.internal import camera_utils, configs, models, stepfun, utils

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(configs.__file__)))
_RAY_FIELDS = ('origins', 'directions', 'viewdirs', 'radii', 'imageplane', 'lossmult', 'near',
               'far', 'cam_idx', 'exposure_idx', 'exposure_values')


def _qualified(line):
    """A gin line whose binding names a configurable that other packages of this process also
    register (`Config`: the golden cases of every package share one process), with the selector
    of mipnerf360's own."""
    name, dot, rest = line.partition('.')
    if not dot or '=' not in rest or not name.isidentifier():
        return line
    matches = gin.config._REGISTRY.matching_selectors(name)
    ours = [m for m in matches if m.startswith('mipnerf360.')]
    return f'{ours[0]}.{rest}' if len(matches) > 1 and len(ours) == 1 else line


@contextlib.contextmanager
def _gin_scope(static):
    """Parses the case's gin files and bindings; clears them again afterwards."""
    lines = []
    for name in static.get('gin_configs', []):
        with open(os.path.join(_PACKAGE_DIR, name)) as f:
            lines += f.read().splitlines()
    lines += static.get('gin_bindings', [])
    gin.clear_config()
    try:
        gin.parse_config([_qualified(line.strip()) for line in lines])
        yield
    finally:
        gin.clear_config()


def build(case, inputs, dtype=torch.float32):
    """(config, model with the case's flax parameters, batch) in `dtype`."""
    with _gin_scope(case['static']):
        config = configs.Config()
        model = models.Model(config=config)
    flax_params = {k[len('params_'):].replace('__', '/'): v.numpy()
                   for k, v in inputs.items() if k.startswith('params_')}
    expected = set(model.flax_names().values())
    if set(flax_params) != expected:
        raise KeyError(f'case parameters {sorted(set(flax_params) ^ expected)} do not match the '
                       'model built from its gin bindings')
    models.load_flax_params(model, flax_params)
    model = model.to(dtype)
    cast = lambda x: x.to(dtype) if x.is_floating_point() else x.long()
    rays = utils.Rays(**{f: cast(inputs[f'rays_{f}']) for f in _RAY_FIELDS
                         if f'rays_{f}' in inputs})
    batch = utils.Batch(rays=rays, rgb=cast(inputs['rgb']))
    return config, model, batch


@contextlib.contextmanager
def _given_sample_intervals(inputs, dtype):
    """Makes stepfun.sample_intervals return the case's sdist_level0, sdist_level1, ... in turn."""
    levels = []
    while f'sdist_level{len(levels)}' in inputs:
        levels.append(inputs[f'sdist_level{len(levels)}'].to(dtype))
    given = iter(levels)
    original = stepfun.sample_intervals
    stepfun.sample_intervals = lambda rng, t, *args, **kwargs: next(given).to(t.device)
    try:
        yield
    finally:
        stepfun.sample_intervals = original


def run_step(case, inputs, function, dtype=torch.float32):
    """compute_losses on the case's model and batch, and the gradients: {output name: tensor}."""
    config, model, batch = build(case, inputs, dtype)
    forward = {}
    hook = model.register_forward_hook(lambda m, args, out: forward.update(out=out))
    given = (_given_sample_intervals(inputs, dtype) if case['static'].get('given_sdist')
             else contextlib.nullcontext())
    with torch.enable_grad(), given:
        losses, _, _ = function(
            model, model, None, batch, None, camera_utils.ProjectionType.PERSPECTIVE,
            case['static']['train_frac'], 1.0, config)
        hook.remove()
        renderings, ray_history = forward['out']
        total = sum(losses.values())
        params = dict(model.named_parameters())
        names = model.flax_names()

        def grads_of(loss):
            grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True,
                                        allow_unused=True)
            out = {}
            for (name, p), g in zip(params.items(), grads):
                g = torch.zeros_like(p) if g is None else g
                flax = names[name]
                out[flax.replace('/', '__')] = g.T if flax.endswith('/kernel') else g
            return out

        grads = grads_of(total)
        grads_data = grads_of(losses['data'])
    out = {}
    for i, (rendering, history) in enumerate(zip(renderings, ray_history)):
        out[f'level{i}_rgb'] = rendering['rgb']
        out[f'level{i}_weights'] = history['weights']
        out[f'level{i}_sdist'] = history['sdist']
    for k in ('data', 'interlevel', 'distortion'):
        out[f'loss_{k}'] = losses[k]
    out['loss_total'] = total
    out.update({f'grad_{k}': v for k, v in grads.items()})
    out.update({f'grad_data_{k}': v for k, v in grads_data.items()})
    return {k: v.detach() for k, v in out.items() if k in case['outputs']}


ADAPTERS = {
    'mipnerf360.internal.train_utils:compute_losses': run_step,
}
