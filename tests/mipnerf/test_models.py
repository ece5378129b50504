"""mipnerf.internal.models: the paper model's size, initialisation, determinism, gradients, rendering."""

import dataclasses

import gin
import pytest
import torch

from mipnerf.internal import models, utils

# Fully qualified gin names: other packages may register an `MLP` too.
TINY = [
    'mipnerf.internal.models.MLP.net_width = 16',
    'mipnerf.internal.models.MLP.net_width_condition = 8',
    'mipnerf.internal.models.MipNerfModel.num_samples = 6',
    'mipnerf.internal.models.MipNerfModel.max_deg_point = 5',
]


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def build(bindings=TINY, seed=0):
    """A MipNerfModel configured by gin bindings, with seeded parameters."""
    gin.parse_config(list(bindings))
    torch.manual_seed(seed)
    return models.MipNerfModel()


def random_rays(shape=(5,), seed=0):
    """Rays from around (0, 0, -4) towards the origin, near 2 and far 6 (Blender's)."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.tensor([0., 0., -4.]) + 0.3 * torch.randn(shape + (3,), generator=g)
    directions = -origins + 0.5 * torch.randn(shape + (3,), generator=g)
    return utils.Rays(
        origins=origins,
        directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True),
        radii=torch.full(shape + (1,), 2e-3),
        lossmult=torch.ones(shape + (1,)),
        near=torch.full(shape + (1,), 2.),
        far=torch.full(shape + (1,), 6.))


def test_paper_model_has_the_original_parameter_count_and_shapes():
    model = build([])
    # The flax kernels [in, out] of the original MLP: IPE of 3 coordinates x 16 scales x sin/cos
    # = 96 inputs, the inputs concatenated again after trunk layer 4, the density head, a 256
    # bottleneck joined by the 27-dim view encoding (identity + 4 scales), then 128 and 3.
    shapes = [(96, 256)] + [(256, 256)] * 4 + [(352, 256)] + [(256, 256)] * 2 + [
        (256, 1), (256, 256), (283, 128), (128, 3)]
    expected = {}
    for i, (fan_in, fan_out) in enumerate(shapes):
        expected[f'MLP_0/Dense_{i}/kernel'] = (fan_in, fan_out)
        expected[f'MLP_0/Dense_{i}/bias'] = (fan_out,)
    params = dict(model.named_parameters())
    got = {}
    for name, flax in model.flax_names().items():
        shape = tuple(params[name].shape)
        got[flax] = shape[::-1] if flax.endswith('kernel') else shape
    assert got == expected
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params == sum(a * b + b for a, b in shapes) == 612740


def test_layers_use_glorot_uniform_kernels_and_zero_biases():
    model = build([])
    for name, p in model.named_parameters():
        if name.endswith('bias'):
            assert torch.all(p == 0), name
        elif p.numel() >= 256 * 96:
            bound = (6 / (p.shape[0] + p.shape[1])) ** 0.5
            assert p.abs().max() <= bound
            # U(-b, b) has std b / sqrt(3).
            assert abs(p.std().item() - bound / 3**0.5) < 0.05 * bound, name


def test_without_viewdirs_the_mlp_has_no_condition_branch():
    model = build(TINY + ['mipnerf.internal.models.MipNerfModel.use_viewdirs = False'])
    assert not hasattr(model.MLP_0, 'bottleneck_layer')
    assert len(model.MLP_0.condition_layers) == 0
    # flax: 8 trunk layers, the density head, then the rgb head straight on the trunk.
    assert model.MLP_0.rgb_layer.in_features == 16
    assert len(model.flax_names()) == 2 * 10
    levels = model(None, random_rays(), randomized=False, white_bkgd=True)
    assert [lvl[0].shape for lvl in levels] == [(5, 3), (5, 3)]


def test_forward_shapes_and_ranges():
    model = build()
    levels = model(torch.Generator().manual_seed(0), random_rays(), randomized=True,
                   white_bkgd=False)
    assert len(levels) == 2
    for rgb, distance, acc in levels:
        assert rgb.shape == (5, 3) and distance.shape == (5,) and acc.shape == (5,)
        assert torch.all((rgb >= -0.001) & (rgb <= 1.001))
        assert torch.all((acc >= 0) & (acc <= 1))
        assert torch.all((distance >= 2) & (distance <= 6))


def test_deterministic_eval_is_repeatable_and_seeded_training_reproducible():
    model = build()
    rays = random_rays()
    first = model(None, rays, randomized=False, white_bkgd=True)
    torch.rand(3)  # Advancing the global generator must not matter.
    second = model(None, rays, randomized=False, white_bkgd=True)
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            assert torch.equal(x, y)

    def train_pass(seed):
        return model(torch.Generator().manual_seed(seed), rays, randomized=True, white_bkgd=True)

    same = [torch.equal(x, y) for a, b in zip(train_pass(1), train_pass(1)) for x, y in zip(a, b)]
    assert all(same)
    assert not torch.equal(train_pass(1)[-1][0], train_pass(2)[-1][0])
    assert not torch.equal(train_pass(1)[-1][0], first[-1][0])


def test_density_noise_only_when_randomized():
    noisy = TINY + ['mipnerf.internal.models.MipNerfModel.density_noise = 1.0']
    plain_model, noisy_model = build(), build(noisy)
    rays = random_rays()
    eval_plain = plain_model(None, rays, randomized=False, white_bkgd=True)
    eval_noisy = noisy_model(None, rays, randomized=False, white_bkgd=True)
    torch.testing.assert_close(eval_noisy[-1][0], eval_plain[-1][0], rtol=0, atol=0)
    train_plain = plain_model(torch.Generator().manual_seed(3), rays, True, True)
    train_noisy = noisy_model(torch.Generator().manual_seed(3), rays, True, True)
    # The first level samples identically; only the noise separates the two.
    assert not torch.allclose(train_noisy[0][2], train_plain[0][2])


def test_disable_integration_ignores_the_ray_radii():
    rays = random_rays()
    wide = dataclasses.replace(rays, radii=100 * rays.radii)
    ipe = build()
    pe = build(TINY + ['mipnerf.internal.models.MipNerfModel.disable_integration = True'])
    for model, same in [(pe, True), (ipe, False)]:
        narrow_rgb = model(None, rays, False, True)[-1][0]
        wide_rgb = model(None, wide, False, True)[-1][0]
        assert torch.allclose(narrow_rgb, wide_rgb) == same


def test_gradients_reach_every_parameter():
    model = build()
    levels = model(torch.Generator().manual_seed(0), random_rays(), randomized=True,
                   white_bkgd=True)
    loss = sum(((rgb - 0.5) ** 2).mean() for rgb, _, _ in levels)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_construct_mipnerf_seeds_from_the_generator():
    gin.parse_config(TINY)
    batch = {'rays': random_rays()}

    def params(seed):
        model = models.construct_mipnerf(torch.Generator().manual_seed(seed), batch)
        return torch.cat([p.flatten() for p in model.parameters()])

    torch.manual_seed(123)
    a = params(7)
    torch.manual_seed(456)  # The global generator plays no part.
    assert torch.equal(a, params(7))
    assert not torch.equal(a, params(8))


def test_render_image_in_chunks_matches_one_call_on_all_rays():
    model = build()
    height, width = 3, 5
    rays = random_rays((height, width))
    with torch.no_grad():
        rgb, distance, acc = models.render_image(
            lambda rng, r: model(rng, r, False, True), rays, None, chunk=4)
        flat_rays = rays.map(lambda r: r.reshape(height * width, -1))
        want_rgb, want_distance, want_acc = model(None, flat_rays, False, True)[-1]
    assert rgb.shape == (height, width, 3)
    assert distance.shape == acc.shape == (height, width)
    torch.testing.assert_close(rgb, want_rgb.reshape(height, width, 3))
    torch.testing.assert_close(distance, want_distance.reshape(height, width))
    torch.testing.assert_close(acc, want_acc.reshape(height, width))


def test_mlp_broadcasts_the_condition_over_samples():
    gin.parse_config(TINY)
    mlp = models.MLP(input_dim=12, condition_dim=7)
    x = torch.randn(2, 4, 12)
    condition = torch.randn(2, 7)
    raw_rgb, raw_density = mlp(x, condition)
    assert raw_rgb.shape == (2, 4, 3) and raw_density.shape == (2, 4, 1)
    # Each ray's samples see only that ray's condition.
    swapped_rgb, swapped_density = mlp(x, condition.flip(0))
    torch.testing.assert_close(swapped_density, raw_density)
    assert not torch.allclose(swapped_rgb, raw_rgb)
    torch.testing.assert_close(mlp(x[1:], condition[1:])[0], raw_rgb[1:])


def test_bf16_autocast_runs_only_the_mlp_in_bfloat16():
    model = build()
    rays = random_rays((64,))
    seen = []
    model.MLP_0.register_forward_hook(lambda m, i, out: seen.append(out[0].dtype))
    full = model(None, rays, randomized=False, white_bkgd=True)
    model.use_bf16_autocast = True
    half = model(None, rays, randomized=False, white_bkgd=True)
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2
    for (rgb_full, dist_full, acc_full), (rgb_half, dist_half, acc_half) in zip(full, half):
        assert rgb_half.dtype == dist_half.dtype == acc_half.dtype == torch.float32
        # bfloat16 keeps 8 mantissa bits: colours agree to a few hundredths, not exactly.
        torch.testing.assert_close(rgb_half, rgb_full, atol=3e-2, rtol=0)
        assert not torch.equal(rgb_half, rgb_full)
