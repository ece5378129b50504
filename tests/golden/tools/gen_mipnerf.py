"""Writes golden cases for mipnerf by running the ORIGINAL google/mipnerf (JAX, on the CPU).

    python tests/golden/tools/gen_mipnerf.py --original /tmp/orig_mipnerf --out tests/golden/mipnerf

--original is a checkout of google/mipnerf (the cases name the commit given by --commit). Run it
with a Python that has jax, jaxlib, flax and gin-config (not the project venv); new jax/flax lack a
few names the 2021 code imports (flax.nn, flax.optim, jax.tree_map) and the original's train.py
imports tensorboard/checkpoint/plotting modules the step does not use: these are shimmed or stubbed
below, nothing of the computation is. The cases:

- Dataset._generate_rays (Blender cameras) and Multicam._generate_rays (cameras of several sizes,
  as scripts/convert_blender_data.py writes them), called on a stand-in object;
- MipNerfModel forward at several sizes and options, flax parameters stored leaf by leaf;
- whole training steps: train.py's train_step (run under jax.vmap with axis_name 'batch' over
  one device, its optimizer replaced by one that returns the gradient), giving the per-level
  losses and psnrs, weight_l2, the total loss and the gradient of every parameter (the port's
  loss_fn), and once with both gradient clips on (the port's train_step: the clipped gradients
  and the gradient-norm stats).

Each case is written as <name>.npz and replaces the manifest entry of the same name.
"""

import argparse
import functools
import json
import pathlib
import sys
import types

import numpy as np

COMMIT = '84c969e0a623edd183b75693aed72a7e7c22902d'
RAY_FIELDS = ('origins', 'directions', 'viewdirs', 'radii', 'lossmult', 'near', 'far')


def import_original(path):
    """Imports the original's internal.{datasets,models,utils} and train from `path`."""
    import flax
    import gin
    import jax

    # New flax has no flax.nn (utils registers its activations with gin) nor flax.optim (an
    # annotation of utils.TrainState); new jax has no jax.tree_map.
    flax.nn = types.SimpleNamespace(
        relu=jax.nn.relu, sigmoid=jax.nn.sigmoid, softplus=jax.nn.softplus)
    flax.optim = types.SimpleNamespace(Optimizer=object)
    if not hasattr(jax, 'tree_map'):
        jax.tree_map = jax.tree_util.tree_map
    if not hasattr(jax.config, 'parse_flags_with_absl'):
        jax.config.parse_flags_with_absl = lambda: None
    # Modules imported at the top of the original's files that no case here calls.
    for name in ('cv2', 'flax.metrics.tensorboard', 'flax.training.checkpoints', 'matplotlib',
                 'matplotlib.cm'):
        sys.modules.setdefault(name, types.ModuleType(name))
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        pil = types.ModuleType('PIL')
        pil.Image = types.ModuleType('PIL.Image')
        sys.modules['PIL'], sys.modules['PIL.Image'] = pil, pil.Image
    sys.path.insert(0, str(path))
    from internal import datasets, models, utils  # noqa: E402
    import train  # noqa: E402
    gin.clear_config()
    return types.SimpleNamespace(datasets=datasets, models=models, utils=utils, train=train)


def reference(path, function):
    return f'google/mipnerf@{COMMIT}:{path}:{function}'


class Writer:
    """Writes .npz cases and keeps the manifest, replacing entries of the same case name."""

    def __init__(self, out):
        self.out = pathlib.Path(out)
        self.manifest_path = self.out / 'manifest.json'
        self.manifest = json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else []

    def add(self, entry, arrays):
        np.savez_compressed(self.out / entry['case'], **arrays)
        self.manifest = [e for e in self.manifest if e['case'] != entry['case']] + [entry]
        print(f"{entry['case']}: {(self.out / entry['case']).stat().st_size} bytes")

    def save(self):
        self.manifest_path.write_text(json.dumps(self.manifest, indent=1) + '\n')


def random_camtoworlds(rng, n):
    """[n, 4, 4] float32 camera-to-world matrices: random rotations, translations ~ 4."""
    mats = []
    for _ in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        mat = np.eye(4)
        mat[:3, :3] = q
        mat[:3, 3] = rng.normal(size=3) * 4.
        mats.append(mat)
    return np.stack(mats).astype(np.float32)


def field_arrays(rays, prefix='out_'):
    return {f'{prefix}{name}': np.asarray(getattr(rays, name)) for name in RAY_FIELDS}


def blender_rays_cases(orig, writer, rng):
    """Dataset._generate_rays on Blender cameras: other sizes, non-square, other focals."""
    # (w, h, camera_angle_x, near, far, number of cameras)
    for w, h, angle, near, far, n in [(5, 7, 0.69, 2., 6., 1), (16, 9, 1.2, .5, 3., 3),
                                      (11, 11, 0.3, 1., 10., 2), (24, 3, 0.9, 2., 6., 2)]:
        focal = float(.5 * w / np.tan(.5 * angle))
        camtoworlds = random_camtoworlds(rng, n)
        stand_in = types.SimpleNamespace(w=w, h=h, focal=focal, near=near, far=far,
                                         camtoworlds=camtoworlds)
        orig.datasets.Dataset._generate_rays(stand_in)
        writer.add({
            'case': f'datasets_blender_generate_rays_w{w}_h{h}_n{n}.npz',
            'function': 'mipnerf.internal.datasets:Dataset._generate_rays',
            'reference': reference('internal/datasets.py', 'Dataset._generate_rays'),
            'args': ['self'],
            'static': {'w': w, 'h': h, 'focal': focal, 'near': near, 'far': far},
            'outputs': list(RAY_FIELDS),
            'rtol': 1e-5, 'atol': 1e-5,
            'notes': ('METHOD case, as datasets_blender_generate_rays.npz: the stand-in object has '
                      'the static w, h, focal (= .5 * w / tan(.5 * camera_angle_x)), near, far and '
                      'camtoworlds (in_camtoworlds [N, 4, 4] float32, as the Blender loader stacks '
                      'them); outputs are the fields of self.rays [N, H, W, C].'),
        }, {'in_camtoworlds': camtoworlds, **field_arrays(stand_in.rays)})


def multicam_meta(rng, sizes, focals, lossmults, nears, fars):
    """The metadata.json arrays of cameras of the given (width, height) and focals."""
    n = len(sizes)
    width = np.array([s[0] for s in sizes])
    height = np.array([s[1] for s in sizes])
    fx = np.array(focals, dtype=np.float64)
    cx, cy = width * .5, height * .5
    zeros, ones = np.zeros(n), np.ones(n)
    # The inverse intrinsics into NeRF's camera axes, as scripts/convert_blender_data.py writes them.
    pix2cam = np.moveaxis(np.array([[ones / fx, zeros, -cx / fx],
                                    [zeros, -ones / fx, cy / fx],
                                    [zeros, zeros, -ones]]), -1, 0)
    return {
        'pix2cam': pix2cam, 'cam2world': random_camtoworlds(rng, n).astype(np.float64),
        'width': width, 'height': height, 'lossmult': np.array(lossmults, dtype=np.float64),
        'near': np.array(nears, dtype=np.float64), 'far': np.array(fars, dtype=np.float64),
    }


def multicam_rays_cases(orig, writer, rng):
    """Multicam._generate_rays: several cameras of different sizes and focals."""
    # A multiscale view (each image half the previous one, focal / 2^j, lossmult 4^j) whose sizes
    # are odd (at least 3 rows: the original's radii need two row distances), then unrelated
    # cameras of different sizes, focals and bounds.
    cases = {
        'multiscale3_w13_h11': multicam_meta(
            rng, [(13, 11), (6, 5), (3, 3)], [17.3, 17.3 / 2, 17.3 / 4], [1., 4., 16.],
            [2.] * 3, [6.] * 3),
        'cams4_mixed': multicam_meta(
            rng, [(7, 11), (9, 4), (4, 9), (10, 10)], [5., 30., 8.5, 12.], [1., 2., .5, 1.],
            [.5, 2., 1., 3.], [4., 6., 8., 5.]),
    }
    for name, meta in cases.items():
        # Stored as the JSON arrays become them in float32/int32 (metadata.json holds decimals);
        # the reference ran on these same rounded values.
        inputs = {f'in_{k}': (v.astype(np.int32) if k in ('width', 'height') else v.astype(np.float32))
                  for k, v in meta.items()}
        rounded = {k: inputs[f'in_{k}'].astype(v.dtype) for k, v in meta.items()}
        stand_in = types.SimpleNamespace(meta=rounded, n_examples=len(meta['width']))
        orig.datasets.Multicam._generate_rays(stand_in)
        outputs = {f'out_{field}_{i}': np.asarray(values[i])
                   for field, values in zip(RAY_FIELDS, stand_in.rays)
                   for i in range(stand_in.n_examples)}
        writer.add({
            'case': f'datasets_multicam_generate_rays_{name}.npz',
            'function': 'mipnerf.internal.datasets:Multicam._generate_rays',
            'reference': reference('internal/datasets.py', 'Multicam._generate_rays'),
            'args': ['self'],
            'static': {},
            'outputs': [k[4:] for k in outputs],
            'rtol': 1e-5, 'atol': 1e-5,
            'notes': ('METHOD case, as datasets_multicam_generate_rays.npz: self.meta holds in_pix2cam '
                      '[N, 3, 3], in_cam2world [N, 4, 4], in_width, in_height, in_lossmult, in_near, '
                      'in_far [N] (images of different sizes); self.n_examples = N. Outputs '
                      'out_<field>_<image> [H_i, W_i, C]. The reference ran in float64 on the stored '
                      'float32 values.'),
        }, {**inputs, **outputs})


def random_rays(rng, batch, lossmults=(1.,)):
    """A batch of rays (float32 [batch, C] fields) through a scene around the origin."""
    origins = rng.normal(size=(batch, 3)) * .3
    directions = rng.normal(size=(batch, 3))
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    directions = directions * rng.uniform(1., 1.3, size=(batch, 1))
    origins = origins - 4. * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    rays = {
        'origins': origins,
        'directions': directions,
        'viewdirs': directions / np.linalg.norm(directions, axis=-1, keepdims=True),
        'radii': rng.uniform(.001, .01, size=(batch, 1)),
        'lossmult': rng.choice(np.array(lossmults), size=(batch, 1)),
        'near': np.full((batch, 1), 2.),
        'far': np.full((batch, 1), 6.),
    }
    return {k: v.astype(np.float32) for k, v in rays.items()}


def init_params(orig, model, rays, seed, rng):
    """The model's flax init, biases made non-zero (uniform +-0.1) so that they are tested too."""
    import jax
    variables = model.init(jax.random.PRNGKey(seed), rng=jax.random.PRNGKey(seed + 1),
                           rays=orig.utils.Rays(**rays), randomized=False, white_bkgd=False)
    params = jax.tree_util.tree_map(np.asarray, variables['params'])
    for layer in params['MLP_0'].values():
        layer['bias'] = (layer['bias'] + rng.uniform(-.1, .1, size=layer['bias'].shape)).astype(np.float32)
    return {'params': params}


def flat_params(variables, prefix):
    """{prefix + 'MLP_0_Dense_<i>_<kernel|bias>': array} of flax variables {'params': ...}."""
    return {f'{prefix}MLP_0_{layer}_{leaf}': np.asarray(value)
            for layer, leaves in variables['params']['MLP_0'].items()
            for leaf, value in leaves.items()}


def build_model(orig, static):
    """MipNerfModel of the static values (MLP.* through gin), as the cases' adapters build it."""
    import gin
    import jax
    gin.clear_config()
    gin.parse_config([f'MLP.{k[4:]} = {v!r}' for k, v in static.items() if k.startswith('MLP.')])
    kwargs = {k: v for k, v in static.items()
              if '.' not in k and k not in ('randomized', 'white_bkgd') and k in MODEL_FIELDS}
    kwargs['density_activation'] = {'softplus': jax.nn.softplus}[kwargs['density_activation']]
    return orig.models.MipNerfModel(**kwargs)


MODEL_FIELDS = ('num_samples', 'num_levels', 'resample_padding', 'stop_level_grad', 'use_viewdirs',
                'lindisp', 'ray_shape', 'min_deg_point', 'max_deg_point', 'deg_view',
                'density_activation', 'density_bias', 'rgb_padding', 'disable_integration')


def model_static(**overrides):
    static = {
        'num_samples': 8, 'num_levels': 2, 'resample_padding': 0.01, 'stop_level_grad': True,
        'use_viewdirs': True, 'lindisp': False, 'ray_shape': 'cone', 'min_deg_point': 0,
        'max_deg_point': 16, 'deg_view': 4, 'density_activation': 'softplus', 'density_bias': -1.0,
        'rgb_padding': 0.001, 'disable_integration': False,
        'MLP.net_depth': 8, 'MLP.net_width': 32, 'MLP.net_depth_condition': 1,
        'MLP.net_width_condition': 16, 'MLP.skip_layer': 4,
        'randomized': False, 'white_bkgd': True,
    }
    static.update(overrides)
    return static


MODEL_CASES = {
    # name: (batch, static overrides)
    'd4w16_c2w8_skip2_s5_l3_b3_black': (3, dict(
        num_samples=5, num_levels=3, **{'MLP.net_depth': 4, 'MLP.net_width': 16,
                                         'MLP.net_depth_condition': 2, 'MLP.net_width_condition': 8,
                                         'MLP.skip_layer': 2}, white_bkgd=False)),
    'noviewdirs_cylinder_pe_l1_s7_b6': (6, dict(
        num_samples=7, num_levels=1, use_viewdirs=False, ray_shape='cylinder',
        disable_integration=True, min_deg_point=2, max_deg_point=6,
        **{'MLP.net_depth': 3, 'MLP.net_width': 24})),
    'lindisp_pad0.1_nostopgrad_c0_b10': (10, dict(
        num_samples=6, resample_padding=0.1, stop_level_grad=False, lindisp=True, deg_view=2,
        density_bias=0.0, rgb_padding=0.01, max_deg_point=10,
        **{'MLP.net_depth': 5, 'MLP.net_width': 20, 'MLP.net_depth_condition': 0})),
    'cylinder_s16_l2_b1_white': (1, dict(
        num_samples=16, ray_shape='cylinder', min_deg_point=1, max_deg_point=12, deg_view=3,
        **{'MLP.net_depth': 6, 'MLP.net_width': 12, 'MLP.net_width_condition': 6,
           'MLP.skip_layer': 3})),
    'pe_cone_viewdirs_l2_s12_b5': (5, dict(
        num_samples=12, disable_integration=True, max_deg_point=5, density_bias=-0.5,
        **{'MLP.net_depth': 2, 'MLP.net_width': 16, 'MLP.net_width_condition': 16})),
}


def model_cases(orig, writer, rng):
    """MipNerfModel forward at other sizes and options (deterministic: randomized False)."""
    import jax
    for i, (name, (batch, overrides)) in enumerate(MODEL_CASES.items()):
        static = model_static(**overrides)
        model = build_model(orig, static)
        rays = random_rays(rng, batch)
        variables = init_params(orig, model, rays, 100 + 2 * i, rng)
        levels = model.apply(variables, jax.random.PRNGKey(7), orig.utils.Rays(**rays),
                             randomized=False, white_bkgd=static['white_bkgd'])
        outputs = {f'out_{k}_{l}': np.asarray(v) for l, level in enumerate(levels)
                   for k, v in zip(('rgb', 'distance', 'acc'), level)}
        writer.add({
            'case': f'models_mipnerf_forward_{name}.npz',
            'function': 'mipnerf.internal.models:MipNerfModel',
            'reference': reference('internal/models.py', 'MipNerfModel.__call__'),
            'args': ['params', 'rays'],
            'static': static,
            'outputs': list(k[4:] for k in outputs),
            'rtol': 1e-5, 'atol': 1e-5,
            'notes': ('INTEGRATION case, as models_mipnerf_forward_small.npz: MipNerfModel of the '
                      'static constructor values (MLP.* are the fields of MLP, bound through gin), '
                      'flax parameters in_params_MLP_0_Dense_<i>_<kernel|bias> (kernel [in, out]; '
                      'Dense_i numbered in creation order: trunk, density head, then with use_viewdirs '
                      'the bottleneck and condition layers, then the rgb head), rays in_origins .. '
                      'in_far [B, C]; called with randomized=False and white_bkgd. Outputs rgb_l, '
                      'distance_l, acc_l of every level l. Measured port error 6e-7 of the '
                      'largest entry.'),
        }, {**{f'in_{k}': v for k, v in rays.items()}, **flat_params(variables, 'in_params_'),
            **outputs})
    import gin
    gin.clear_config()


STEP_CASES = {
    # name: (port function, batch, model static overrides, train config)
    'loss_fn_d4w32_c1w16_l2_s8_b16_lossmult_wd': ('loss_fn', 16, dict(
        **{'MLP.net_depth': 4, 'MLP.net_width': 32, 'MLP.skip_layer': 2}),
        dict(coarse_loss_mult=0.1, weight_decay_mult=0.1, disable_multiscale_loss=False,
             randomized=False, white_bkgd=True, grad_max_norm=0., grad_max_val=0.)),
    'loss_fn_nostopgrad_cylinder_l3_s6_b12_nomultiscale': ('loss_fn', 12, dict(
        num_samples=6, num_levels=3, stop_level_grad=False, ray_shape='cylinder', max_deg_point=8,
        resample_padding=0.05,
        **{'MLP.net_depth': 3, 'MLP.net_width': 16, 'MLP.net_width_condition': 8}),
        dict(coarse_loss_mult=0.5, weight_decay_mult=0.01, disable_multiscale_loss=True,
             randomized=False, white_bkgd=False, grad_max_norm=0., grad_max_val=0.)),
    # The whole step with both clips active: the gradients Adam receives.
    'train_step_clip_d3w16_l2_s8_b8': ('train_step', 8, dict(
        max_deg_point=8, **{'MLP.net_depth': 3, 'MLP.net_width': 16, 'MLP.net_width_condition': 8}),
        dict(coarse_loss_mult=0.1, weight_decay_mult=0.0, disable_multiscale_loss=False,
             randomized=False, white_bkgd=True, grad_max_norm=0.05, grad_max_val=0.02)),
    # The paper's depth, skip, encodings and loss settings (multiblender: lossmult 1, 4, 16), at a
    # quarter width and a quarter of the samples.
    'loss_fn_paperlike_d8w64_c1w32_s32_b32': ('loss_fn', 32, dict(
        num_samples=32, **{'MLP.net_width': 64, 'MLP.net_width_condition': 32}),
        dict(coarse_loss_mult=0.1, weight_decay_mult=0.0, disable_multiscale_loss=False,
             randomized=False, white_bkgd=True, grad_max_norm=0., grad_max_val=0.)),
}

STEP_NOTES = {
    'loss_fn': (
        'WHOLE-STEP case: the loss_fn of the original train_step (deterministic, randomized False; '
        'its optimizer replaced by one that keeps the gradient; no clipping). Build MipNerfModel '
        'from the static constructor values (MLP.* through gin), load in_params_MLP_0_Dense_<i>_'
        '<kernel|bias> (flax layout) and the batch {pixels: in_pixels [B, 3], rays: in_origins .. '
        'in_far [B, C]}; Config.* are the train config, rng unused. Outputs: losses [levels] (each '
        'sum(lossmult * (rgb - pixels)^2) / sum(lossmult), lossmult ones when '
        'disable_multiscale_loss), psnrs = mse_to_psnr(losses), weight_l2 = weight_decay_mult * '
        'sum of squares / number of parameter entries, loss = coarse_loss_mult * sum(losses[:-1]) '
        '+ losses[-1] + weight_l2, and grad_MLP_0_Dense_<i>_<kernel|bias> = d loss / d parameter '
        'in the flax layout (kernel [in, out]). Measured port error: at most 2.5e-6 of an output\'s '
        'largest entry (the first trunk kernel of the 8-layer case; 5e-7 in the smaller ones), '
        '7.6e-9 absolute.'),
    'train_step': (
        'WHOLE-STEP case: the original train_step with Config.grad_max_val and grad_max_norm > 0 '
        '(deterministic; its optimizer replaced by one that keeps what apply_gradient receives). '
        'Inputs as the loss_fn cases; call train_step(model, config, None, optimizer, batch, lr) '
        'with any optimizer and read the parameters\' .grad afterwards. Outputs: the stats loss, '
        'losses, weight_l2, psnr, psnrs, grad_norm and grad_abs_max (after the value clip, before '
        'the norm clip), grad_norm_clipped, and grad_MLP_0_Dense_<i>_<kernel|bias>: the clipped '
        'gradient in the flax layout.'),
}


def train_step_cases(orig, writer, rng):
    """The loss and gradients of train.py's train_step (deterministic), through vmap over one device."""
    import flax
    import jax
    import jax.numpy as jnp
    from typing import Any

    @flax.struct.dataclass
    class GradientCatcher:
        """Stands in for flax.optim.Optimizer: apply_gradient returns the gradient as the target."""
        target: Any

        def apply_gradient(self, grad, learning_rate):
            del learning_rate
            return GradientCatcher(target=grad)

    for i, (name, (kind, batch_size, overrides, train_config)) in enumerate(STEP_CASES.items()):
        static = model_static(**overrides)
        model = build_model(orig, static)
        rays = random_rays(rng, batch_size, lossmults=(1., 4., 16.))
        pixels = rng.uniform(0., 1., size=(batch_size, 3)).astype(np.float32)
        variables = init_params(orig, model, rays, 200 + 2 * i, rng)
        config = orig.utils.Config(**train_config)
        state = orig.utils.TrainState(optimizer=GradientCatcher(target=variables))
        batch = {'pixels': pixels, 'rays': orig.utils.Rays(**rays)}
        # One device: a leading axis of size 1 on the mapped arguments, as utils.shard makes it.
        one = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)
        step = jax.vmap(functools.partial(orig.train.train_step, model, config), axis_name='batch',
                        in_axes=(0, 0, 0, None))
        new_state, stats, _ = step(one(jax.random.PRNGKey(11)), one(state), one(batch), 0.)
        grads = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], new_state.optimizer.target)
        names = ['losses', 'psnrs', 'weight_l2', 'loss']
        if kind == 'train_step':
            names += ['psnr', 'grad_norm', 'grad_abs_max', 'grad_norm_clipped']
        outputs = {f'out_{k}': np.asarray(getattr(stats, k))[0] for k in names}
        outputs.update(flat_params(grads, 'out_grad_'))
        model_part = {k: v for k, v in static.items() if k not in ('randomized', 'white_bkgd')}
        writer.add({
            'case': f'train_{name}.npz',
            'function': f'mipnerf.train:{kind}',
            'reference': reference('train.py', 'train_step'),
            'args': ['params', 'batch'],
            'static': {**model_part, **{f'Config.{k}': v for k, v in train_config.items()}},
            'outputs': [k[4:] for k in outputs],
            'rtol': 1e-5, 'atol': 1e-6,
            'notes': STEP_NOTES[kind],
        }, {'in_pixels': pixels, **{f'in_{k}': v for k, v in rays.items()},
            **flat_params(variables, 'in_params_'), **outputs})
    import gin
    gin.clear_config()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--original', required=True, help='google/mipnerf checkout')
    parser.add_argument('--out', required=True, help='golden folder (holds manifest.json)')
    parser.add_argument('--only', nargs='*', default=['rays', 'models', 'step'],
                        help='which groups of cases to write')
    args = parser.parse_args()
    orig = import_original(pathlib.Path(args.original).resolve())
    writer = Writer(args.out)
    if 'rays' in args.only:
        blender_rays_cases(orig, writer, np.random.default_rng(1700))
        multicam_rays_cases(orig, writer, np.random.default_rng(1701))
    if 'models' in args.only:
        model_cases(orig, writer, np.random.default_rng(1702))
    if 'step' in args.only:
        train_step_cases(orig, writer, np.random.default_rng(1703))
    writer.save()


if __name__ == '__main__':
    main()
