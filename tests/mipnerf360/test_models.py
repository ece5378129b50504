"""mipnerf360.internal.models: the published model's size, forward passes, gradients, rendering."""

import os

import gin
import pytest
import torch

from mipnerf360.internal import configs, models, utils

CONFIG_DIR = os.path.join(os.path.dirname(configs.__file__), '..', 'configs')

# Tiny MLPs and few samples on top of 360.gin, so a forward pass takes milliseconds.
TINY = [
    'PropMLP.net_depth = 2', 'PropMLP.net_width = 16',
    'NerfMLP.net_depth = 2', 'NerfMLP.net_width = 32', 'NerfMLP.bottleneck_width = 16',
    'NerfMLP.net_width_viewdirs = 16', 'NerfMLP.max_deg_point = 4', 'PropMLP.max_deg_point = 4',
    'Model.num_prop_samples = 8', 'Model.num_nerf_samples = 6',
]


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def build(bindings=(), gin_file='360.gin', seed=0):
    """A Model from configs/<gin_file> plus bindings, with seeded parameters."""
    gin.clear_config()
    gin.parse_config_files_and_bindings(
        [os.path.join(CONFIG_DIR, gin_file)], list(bindings), skip_unknown=False)
    config = configs.Config()
    torch.manual_seed(seed)
    return models.Model(config=config), config


def random_rays(n=6, seed=0, far=1e6, **extra):
    """Rays from near the origin in random directions, near 0.2 (360.gin's): fields [n, ...]."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, 3, generator=g)
    return utils.Rays(
        origins=0.1 * torch.randn(n, 3, generator=g),
        directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True),
        radii=torch.full((n, 1), 1e-3),
        imageplane=torch.rand(n, 2, generator=g),
        lossmult=torch.ones(n, 1),
        near=torch.full((n, 1), 0.2),
        far=torch.full((n, 1), far),
        cam_idx=torch.randint(0, 4, (n, 1), generator=g),
        **extra)


def test_360_gin_model_has_the_original_parameter_count_and_shapes():
    model, _ = build()
    # The flax model's Dense kernels [in, out] from multinerf's layer logic: the IPE of 21
    # icosahedron directions x 12 degrees x sin/cos = 504 inputs, a skip concat after layer 4,
    # a 256 bottleneck joined by the 27-dim view encoding, then 128 and 3.
    nerf = [(504, 1024)] + [(1024, 1024)] * 4 + [(1528, 1024)] + [(1024, 1024)] * 2 + [
        (1024, 1), (1024, 256), (283, 128), (128, 3)]
    prop = [(504, 256)] + [(256, 256)] * 3 + [(256, 1)]
    expected = {}
    for mlp, shapes in [('NerfMLP_0', nerf), ('PropMLP_0', prop)]:
        for i, (fan_in, fan_out) in enumerate(shapes):
            expected[f'{mlp}/Dense_{i}/kernel'] = (fan_in, fan_out)
            expected[f'{mlp}/Dense_{i}/bias'] = (fan_out,)
    params = dict(model.named_parameters())
    got = {}
    for name, flax in model.flax_names().items():
        shape = tuple(params[name].shape)
        got[flax] = shape[::-1] if flax.endswith('kernel') else shape
    assert got == expected
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params == sum(a * b + b for a, b in nerf + prop) == 9007493  # "9.01 M".


def test_layers_use_he_uniform_kernels_and_zero_biases():
    model, _ = build()
    for name, p in model.named_parameters():
        if name.endswith('bias'):
            assert torch.all(p == 0), name
        elif p.shape[1] >= 256:
            bound = (6 / p.shape[1]) ** 0.5
            assert p.abs().max() <= bound
            # U(-b, b) has std b / sqrt(3).
            assert abs(p.std().item() - bound / 3**0.5) < 0.05 * bound


def test_gin_bindings_reach_each_mlp_separately():
    model, _ = build(['NerfMLP.net_width = 40', 'PropMLP.net_depth = 3', 'Model.single_mlp = False'])
    assert model.NerfMLP_0.pts_layers[0].out_features == 40
    assert len(model.PropMLP_0.pts_layers) == 3
    assert len(model.NerfMLP_0.pts_layers) == 8
    assert not hasattr(model.PropMLP_0, 'rgb_layer')  # disable_rgb in 360.gin.
    single, _ = build(TINY + ['Model.single_mlp = True'])
    assert not hasattr(single, 'PropMLP_0')


def test_forward_shapes_train_and_eval():
    model, _ = build(TINY)
    rays = random_rays()
    renderings, history = model(
        torch.Generator().manual_seed(1), rays, train_frac=0.3, compute_extras=True)
    assert len(renderings) == len(history) == 3
    for level, n in zip(history, [8, 8, 6]):
        assert level['sdist'].shape == (6, n + 1)
        assert level['weights'].shape == (6, n)
        assert level['density'].shape == (6, n)
        assert level['rgb'].shape == (6, n, 3)
        assert torch.all(level['sdist'][..., 1:] >= level['sdist'][..., :-1])
        assert torch.all(torch.isfinite(level['weights']))
    final = renderings[-1]
    assert final['rgb'].shape == (6, 3) and torch.all(torch.isfinite(final['rgb']))
    for key in ['acc', 'distance_mean', 'distance_median']:
        assert final[key].shape == (6,)
    # opaque_background: every ray is fully absorbed.
    torch.testing.assert_close(final['acc'], torch.ones(6))
    # The proposal levels have no colour: rgb zeros, visualised with the final mean colour.
    assert torch.all(history[0]['rgb'] == 0)
    torch.testing.assert_close(renderings[0]['ray_rgbs'][:, 0], renderings[0]['ray_rgbs'][:, -1])


def test_eval_is_deterministic_and_train_is_random():
    model, _ = build(TINY)
    rays = random_rays()
    with torch.no_grad():
        a, _ = model(None, rays, train_frac=1.0, compute_extras=False)
        b, _ = model(None, rays, train_frac=1.0, compute_extras=False)
        c, _ = model(torch.Generator().manual_seed(5), rays, train_frac=1.0, compute_extras=False)
        d, _ = model(torch.Generator().manual_seed(5), rays, train_frac=1.0, compute_extras=False)
    assert torch.equal(a[-1]['rgb'], b[-1]['rgb'])
    assert torch.equal(c[-1]['rgb'], d[-1]['rgb'])
    assert not torch.equal(a[-1]['rgb'], c[-1]['rgb'])


def test_eval_sampling_is_evenly_spaced_at_the_first_level():
    model, _ = build(TINY)
    with torch.no_grad():
        _, history = model(None, random_rays(), train_frac=1.0, compute_extras=False)
    # Uniform weights, deterministic centres: the midpoints of 8 equal strata, reflected ends.
    expected = torch.linspace(0, 1, 9).expand(6, 9)
    torch.testing.assert_close(history[0]['sdist'], expected, atol=1e-6, rtol=0)


def test_gradients_reach_every_parameter():
    model, _ = build(TINY + ['Model.num_glo_features = 3'])
    rays = random_rays()
    renderings, history = model(
        torch.Generator().manual_seed(1), rays, train_frac=0.5, compute_extras=False,
        zero_glo=False)
    # The data term trains the NeRF MLP, the interlevel term the proposal MLP.
    loss = renderings[-1]['rgb'].sum() + sum(
        (h['weights'] ** 2).sum() for h in history[:-1])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.all(torch.isfinite(p.grad)), name
        if name.startswith('Embed_0'):
            # Only the codes of the cameras in the batch are trained.
            used = torch.unique(rays.cam_idx)
            assert torch.all(p.grad[used].abs().sum(-1) > 0)
        else:
            assert p.grad.abs().sum() > 0, name


def test_glo_codes_change_the_colour_only_when_used():
    model, _ = build(TINY + ['Model.num_glo_features = 3'])
    rays = random_rays()
    with torch.no_grad():
        model.Embed_0.weight.normal_()
        zero, _ = model(None, rays, 1.0, False, zero_glo=True)
        learned, _ = model(None, rays, 1.0, False, zero_glo=False)
        model.Embed_0.weight.zero_()
        zeroed, _ = model(None, rays, 1.0, False, zero_glo=False)
    assert not torch.allclose(zero[-1]['rgb'], learned[-1]['rgb'])
    torch.testing.assert_close(zero[-1]['rgb'], zeroed[-1]['rgb'])


def test_ref_nerf_heads_give_unit_normals_and_differentiable_outputs():
    bindings = TINY + [
        'NerfMLP.disable_density_normals = False', 'NerfMLP.enable_pred_normals = True',
        'NerfMLP.use_reflections = True', 'NerfMLP.use_directional_enc = True',
        'NerfMLP.enable_pred_roughness = True', 'NerfMLP.use_diffuse_color = True',
        'NerfMLP.use_specular_tint = True', 'NerfMLP.use_n_dot_v = True',
        'NerfMLP.bottleneck_noise = 0.1', 'NerfMLP.density_noise = 0.1',
    ]
    model, _ = build(bindings)
    # A near far plane: at |x| ~ 1e6 the contracted density is flat and its gradient underflows.
    rays = random_rays(far=4.0)
    renderings, history = model(torch.Generator().manual_seed(0), rays, 0.5, True)
    nerf = history[-1]
    for key in ['normals', 'normals_pred']:
        torch.testing.assert_close(nerf[key].norm(dim=-1), torch.ones(6, 6))
    assert nerf['roughness'].shape == (6, 6, 1)
    assert renderings[-1]['normals'].shape == (6, 3)
    # The normals are differentiable in the parameters (the orientation loss needs that).
    nerf['normals'].sum().backward()
    assert model.NerfMLP_0.pts_layers[0].weight.grad is not None
    # Rendering without autograd still computes the normals.
    with torch.no_grad():
        _, eval_history = model(None, rays, 0.5, True)
    assert torch.all(torch.isfinite(eval_history[-1]['normals']))


def test_density_normals_are_the_negated_density_gradient():
    model, _ = build(TINY + ['NerfMLP.disable_density_normals = False'])
    mlp = model.NerfMLP_0
    g = torch.Generator().manual_seed(0)
    means = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    covs = 1e-4 * torch.eye(3, dtype=torch.float64).expand(2, 3, 3, 3)
    mlp.double()
    viewdirs = torch.randn(2, 3, dtype=torch.float64)
    out = mlp(None, (means, covs), viewdirs=viewdirs)
    h = 1e-6
    # softplus is monotone, so the density's gradient has the direction of the raw density's.
    fd = torch.stack([
        (mlp(None, (means + h * e, covs), viewdirs=viewdirs)['density'] -
         mlp(None, (means - h * e, covs), viewdirs=viewdirs)['density']) / (2 * h)
        for e in torch.eye(3, dtype=torch.float64)], dim=-1)
    torch.testing.assert_close(out['normals'], -fd / fd.norm(dim=-1, keepdim=True))


def test_bf16_autocast_keeps_outputs_in_float32():
    model, config = build(TINY + ['Config.use_bf16_autocast = True'])
    assert config.use_bf16_autocast
    renderings, history = model(torch.Generator().manual_seed(1), random_rays(), 0.5, True)
    for level in history:
        assert level['density'].dtype == torch.float32
        assert level['weights'].dtype == torch.float32
    assert renderings[-1]['rgb'].dtype == torch.float32
    assert torch.all(torch.isfinite(renderings[-1]['rgb']))


def test_random_background_is_drawn_in_training_and_centred_in_eval():
    model, _ = build(TINY + ['Model.bg_intensity_range = (0., 1.)',
                             'Model.opaque_background = False'])
    with torch.no_grad():
        # A huge density bias empties the scene, so the colour is the background.
        model.NerfMLP_0.density_layer.bias.fill_(-100.)
        eval_r, _ = model(None, random_rays(), 1.0, False)
        train_r, _ = model(torch.Generator().manual_seed(0), random_rays(), 1.0, False)
    torch.testing.assert_close(eval_r[-1]['rgb'], torch.full((6, 3), 0.5))
    assert train_r[-1]['rgb'].std() > 0.1


def test_flax_checkpoint_round_trip():
    model, _ = build(TINY + ['Model.num_glo_features = 2', 'Model.learned_exposure_scaling = True'])
    params = dict(model.named_parameters())
    flax = {}
    for name, path in model.flax_names().items():
        value = params[name].detach().numpy()
        flax[path] = value.T if path.endswith('kernel') else value
    assert 'Embed_0/embedding' in flax and 'exposure_scaling_offsets/embedding' in flax
    other, _ = build(TINY + ['Model.num_glo_features = 2', 'Model.learned_exposure_scaling = True'],
                     seed=1)
    models.load_flax_params(other, flax)
    for name, p in other.named_parameters():
        torch.testing.assert_close(p, params[name])


def test_render_image_matches_one_call_and_picks_vis_rays():
    model, config = build(TINY + ['Config.render_chunk_size = 7', 'Config.vis_num_rays = 5'])
    rays = random_rays(n=4 * 5).map(lambda r: r.reshape((4, 5) + r.shape[1:]))

    def render_fn(rng, chunk_rays):
        with torch.no_grad():
            return model(rng, chunk_rays, 1.0, True)

    rendering = models.render_image(render_fn, rays, None, config, verbose=False)
    whole, _ = render_fn(None, rays.map(lambda r: r.reshape(20, -1)))
    assert rendering['rgb'].shape == (4, 5, 3)
    assert rendering['acc'].shape == (4, 5)
    torch.testing.assert_close(rendering['rgb'], whole[-1]['rgb'].reshape(4, 5, 3))
    torch.testing.assert_close(
        rendering['distance_median'], whole[-1]['distance_median'].reshape(4, 5))
    # Each chunk keeps its first vis_num_rays rays: 5 + 5 + 5 (of 7, 7, 6), then 5 are picked.
    assert len(rendering['ray_sdist']) == 3
    assert rendering['ray_sdist'][-1].shape == (5, 7)
    assert rendering['ray_rgbs'][0].shape == (5, 8, 3)


def test_train_frac_may_be_a_tensor_and_anneals_the_near_bound():
    model, _ = build(TINY + ['Model.near_anneal_rate = 0.5'])
    rays = random_rays()
    with torch.no_grad():
        as_float, history = model(None, rays, 0.1, False)
        as_tensor, _ = model(None, rays, torch.tensor(0.1), False)
    torch.testing.assert_close(as_float[-1]['rgb'], as_tensor[-1]['rgb'])
    # At train_frac .1 the normalised near bound is 1 - .1 / .5 = .8.
    for level in history:
        assert level['sdist'].min() >= 0.8 - 1e-6
    assert history[0]['sdist'][:, 0].min() == pytest.approx(0.8, abs=1e-6)


@pytest.mark.parametrize('bindings', [
    ['Model.ray_shape = "cylinder"'], ['Model.disable_integration = True'],
    ['Model.use_viewdirs = False'], ['Model.num_levels = 2', 'Model.stop_level_grad = False'],
])
def test_model_variants_run(bindings):
    model, _ = build(TINY + bindings)
    renderings, history = model(torch.Generator().manual_seed(0), random_rays(), 0.5, False)
    assert len(history) == model.num_levels
    renderings[-1]['rgb'].sum().backward()
    assert torch.all(torch.isfinite(model.NerfMLP_0.pts_layers[0].weight.grad))


def test_exposures_scale_the_colour():
    model, _ = build(TINY + ['Model.learned_exposure_scaling = True'])
    n = 6
    with torch.no_grad():
        model.exposure_scaling_offsets.weight[1] = 1.0  # Exposure 1: scale 2; exposure 0 stays 1.

        def render(idx, value):
            rays = random_rays(
                exposure_idx=torch.full((n, 1), idx), exposure_values=torch.full((n, 1), value))
            return model(None, rays, 1.0, False)[0][-1]['rgb']

        base = render(0, 1.0)
        # opaque_background: every ray's weights sum to 1, so the colour scales as a whole.
        torch.testing.assert_close(render(0, 3.0), 3 * base)
        torch.testing.assert_close(render(1, 3.0), 6 * base)


@pytest.mark.parametrize('normals', [False, True])
def test_density_noise_is_per_sample_except_under_density_normals(normals):
    model, _ = build(TINY + ['NerfMLP.density_noise = 1.0',
                             f'NerfMLP.disable_density_normals = {not normals}'])
    g = torch.Generator().manual_seed(0)
    gaussians = (torch.randn(4, 5, 3, generator=g), 1e-4 * torch.eye(3).expand(4, 5, 3, 3))
    viewdirs = torch.randn(4, 3, generator=g)
    with torch.no_grad():
        clean = model.NerfMLP_0(None, gaussians, viewdirs=viewdirs)['density']
        noisy = model.NerfMLP_0(g, gaussians, viewdirs=viewdirs)['density']
    # The noise is added to the raw density, before softplus(raw - 1).
    noise = torch.log(torch.expm1(noisy)) - torch.log(torch.expm1(clean))
    assert noise.abs().max() > 1e-2
    # multinerf's vmap shares one draw among all samples when it computes normals.
    assert torch.allclose(noise, noise[0, 0], atol=1e-4) == normals


def test_glo_embeddings_start_as_flax_default_embed_init():
    """flax's default_embed_init: an untruncated normal of std 1/sqrt(features), so about 4.55% of
    the entries lie beyond 2 std (a truncated normal would have none)."""
    model, _ = build(TINY + ['Model.num_glo_features = 64', 'Model.num_glo_embeddings = 2000'])
    weight = model.Embed_0.weight.detach()
    std = 64 ** -0.5
    assert weight.std().item() == pytest.approx(std, rel=0.02)
    assert (weight.abs() > 2 * std).float().mean().item() == pytest.approx(0.0455, abs=0.004)
