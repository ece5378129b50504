"""mipnerf360.internal.train_utils: losses, per-MLP clipping, the optimizer and the train step."""

import dataclasses
import functools
import math
import os
import types

import gin
import numpy as np
import pytest
import torch

from mipnerf360.internal import camera_utils, configs, models, train_utils, utils

CONFIG_DIR = os.path.join(os.path.dirname(configs.__file__), '..', 'configs')
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


def parse(bindings=()):
    gin.parse_config_files_and_bindings(
        [os.path.join(CONFIG_DIR, '360.gin')], TINY + list(bindings), skip_unknown=False)
    return configs.Config()


def random_rays(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, 3, generator=g)
    return utils.Rays(
        origins=0.1 * torch.randn(n, 3, generator=g),
        directions=directions,
        viewdirs=directions / directions.norm(dim=-1, keepdim=True),
        radii=torch.full((n, 1), 1e-3),
        imageplane=torch.zeros(n, 2),
        lossmult=torch.ones(n, 1),
        near=torch.full((n, 1), 0.2),
        far=torch.full((n, 1), 1e6),
        cam_idx=torch.zeros(n, 1, dtype=torch.int64))


def test_data_losses_match_hand_computation():
    config = configs.Config(data_coarse_loss_mult=0.1, data_loss_mult=1.0, charb_padding=0.5)
    gt = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    renderings = [{'rgb': torch.full((2, 3), 0.5)}, {'rgb': torch.tensor([[0.0, 0.5, 0.0],
                                                                          [1.0, 1.0, 0.0]])}]
    rays = utils.Rays(*(torch.zeros(2, 1),) * 9)
    rays = dataclasses.replace(rays, lossmult=torch.tensor([[1.0], [3.0]]))
    batch = utils.Batch(rays=rays, rgb=gt)
    # Residuals^2: level 0 rows (.25, 0, .25), (.25, .25, .25); level 1 rows (0, 0, 1), (0, 0, 1).
    # lossmult 1 and 3 per row, over 3 channels: the denominator is 3 * (1 + 3) = 12.
    mse0 = (0.5 + 3 * 0.75) / 12
    mse1 = (1 + 3 * 1) / 12
    loss, stats = train_utils.compute_data_loss(batch, renderings, rays, 1.0, config)
    torch.testing.assert_close(stats['mses'], torch.tensor([mse0, mse1]))
    charb = lambda r2: math.sqrt(r2 + 0.25)
    charb0 = (2 * charb(0.25) + charb(0) + 3 * 3 * charb(0.25)) / 12
    charb1 = (2 * charb(0) + charb(1) + 3 * (2 * charb(0) + charb(1))) / 12
    torch.testing.assert_close(loss, torch.tensor(0.1 * charb0 + charb1))

    mse_loss, _ = train_utils.compute_data_loss(
        batch, renderings, rays, 1.0, dataclasses.replace(config, data_loss_type='mse'))
    torch.testing.assert_close(mse_loss, torch.tensor(0.1 * mse0 + mse1))

    # disable_multiscale_loss ignores lossmult.
    flat, stats = train_utils.compute_data_loss(
        batch, renderings, rays, 1.0,
        dataclasses.replace(config, data_loss_type='mse', disable_multiscale_loss=True))
    torch.testing.assert_close(stats['mses'], torch.tensor([1.25 / 6, 2 / 6]))

    with pytest.raises(NotImplementedError):
        train_utils.compute_data_loss(
            batch, renderings, rays, 1.0, dataclasses.replace(config, data_loss_type='robustnerf'))


def test_rawnerf_loss_clips_and_reweights():
    config = configs.Config(data_loss_type='rawnerf')
    rgb = torch.tensor([[2.0, 0.5, 0.1]], requires_grad=True)
    gt = torch.tensor([[0.5, 0.25, 0.2]])
    rays = utils.Rays(*(torch.ones(1, 1),) * 9)
    loss, _ = train_utils.compute_data_loss(
        utils.Batch(rays=rays, rgb=gt), [{'rgb': rgb}], rays, 1.0, config)
    clip = torch.tensor([1.0, 0.5, 0.1])
    expected = (((clip - gt[0]) / (1e-3 + clip)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # The scale is a constant (stop-gradient) and the clipped channel gets no gradient.
    expected_grad = 2 * (clip - gt[0]) / (1e-3 + clip) ** 2 / 3
    expected_grad[0] = 0
    torch.testing.assert_close(rgb.grad[0], expected_grad)


def test_interlevel_loss_by_hand_and_no_gradient_to_the_nerf_level():
    config = configs.Config(interlevel_loss_mult=2.0)
    w_nerf = torch.tensor([[0.5, 0.5]], requires_grad=True)
    w_prop = torch.tensor([[0.25]], requires_grad=True)
    history = [{'sdist': torch.tensor([[0.0, 1.0]]), 'weights': w_prop},
               {'sdist': torch.tensor([[0.0, 0.5, 1.0]]), 'weights': w_nerf}]
    loss = train_utils.interlevel_loss(history, config)
    # Each NeRF bin (w .5) lies in the one proposal bin (w .25): (.5 - .25)^2 / .5 = .125 each.
    torch.testing.assert_close(loss, torch.tensor(2.0 * 0.125), rtol=1e-6, atol=0)
    loss.backward()
    assert w_nerf.grad is None and w_prop.grad is not None


def test_distortion_loss_by_hand():
    config = configs.Config(distortion_loss_mult=0.01)
    history = [{'sdist': torch.tensor([[0.0, 0.5, 1.0]]), 'weights': torch.tensor([[0.5, 0.5]])}]
    # Between bins: 2 * .5 * .5 * |.75 - .25| = .25; within: (.25 * .5 + .25 * .5) / 3.
    expected = 0.01 * (0.25 + 0.25 / 3)
    torch.testing.assert_close(
        train_utils.distortion_loss(history, config), torch.tensor(expected))


def test_orientation_and_predicted_normal_losses_by_hand():
    config = configs.Config(orientation_loss_mult=1.0, orientation_coarse_loss_mult=0.5,
                            predicted_normal_loss_mult=2.0, predicted_normal_coarse_loss_mult=0.0)
    model = types.SimpleNamespace(num_levels=2)
    rays = dataclasses.replace(random_rays(n=1), viewdirs=torch.tensor([[0.0, 0.0, 1.0]]))
    # Two samples: a normal facing away from the camera (n.v = -1) and one facing it.
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    normals_pred = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    level = {'weights': torch.tensor([[0.3, 0.7]]), 'normals': normals,
             'normals_pred': normals_pred}
    history = [level, level]
    # Orientation loss per level: .3 * 1 (only the back-facing normal counts).
    torch.testing.assert_close(
        train_utils.orientation_loss(rays, model, history,
                                     dataclasses.replace(config,
                                                         orientation_loss_target='normals')),
        torch.tensor(0.5 * 0.3 + 1.0 * 0.3))
    # Predicted-normal loss per level: .3 * (1 - 1) + .7 * (1 - 0) = .7; only the final counts.
    torch.testing.assert_close(
        train_utils.predicted_normal_loss(model, history, config), torch.tensor(2.0 * 0.7))


def test_clip_gradients_clips_each_mlp_by_its_own_norm():
    model = models.Model(config=parse())
    for p in model.NerfMLP_0.parameters():
        p.grad = torch.full_like(p, 10.0)
    for p in model.PropMLP_0.parameters():
        p.grad = torch.full_like(p, 1e-8)
    prop_before = [p.grad.clone() for p in model.PropMLP_0.parameters()]
    config = configs.Config(grad_max_norm=1e-3)
    train_utils.clip_gradients(model, config)
    nerf_norm = torch.cat([p.grad.flatten() for p in model.NerfMLP_0.parameters()]).norm()
    torch.testing.assert_close(nerf_norm, torch.tensor(1e-3))
    # The proposal MLP's small gradient is left alone (a joint clip would have scaled it).
    for p, g in zip(model.PropMLP_0.parameters(), prop_before):
        torch.testing.assert_close(p.grad, g)
    # Every gradient entry of the NeRF MLP is scaled by the same factor.
    grads = torch.cat([p.grad.flatten() for p in model.NerfMLP_0.parameters()])
    assert torch.allclose(grads, grads[0])

    # Clipping by value happens first, then by norm.
    for p in model.NerfMLP_0.parameters():
        p.grad = torch.full_like(p, -10.0)
    train_utils.clip_gradients(model, configs.Config(grad_max_val=0.5, grad_max_norm=0.))
    assert all(torch.all(p.grad == -0.5) for p in model.NerfMLP_0.parameters())


def test_optimizer_is_adam_with_the_multinerf_schedule():
    config = configs.Config(lr_init=1e-2, lr_final=1e-4, max_steps=100, lr_delay_steps=10,
                            lr_delay_mult=0.1, adam_eps=1e-6)
    model = torch.nn.Linear(2, 1)
    state, lr_fn = train_utils.create_optimizer(config, model)
    assert float(lr_fn(0)) == pytest.approx(1e-3)  # The warm-up starts at lr_init * lr_delay_mult.
    assert float(lr_fn(100)) == pytest.approx(1e-4)
    # Past the warm-up, half-way: the geometric mean of lr_init and lr_final.
    assert float(lr_fn(50)) == pytest.approx(1e-3, rel=1e-5)
    group = state.optimizer.param_groups[0]
    assert group['betas'] == (0.9, 0.999) and group['eps'] == 1e-6
    # First Adam update: -lr * g / (|g| + eps).
    before = model.weight.detach().clone()
    model.weight.grad = torch.tensor([[2.0, -1e-6]])
    model.bias.grad = torch.zeros(1)
    state.optimizer.step()
    expected = before - 1e-3 * model.weight.grad / (model.weight.grad.abs() + 1e-6)
    torch.testing.assert_close(model.weight.detach(), expected)


def _setup(bindings=(), seed=0):
    config = parse(bindings)
    model, state, render_eval_fn, train_step, lr_fn = train_utils.setup_model(
        config, torch.Generator().manual_seed(seed))
    return config, model, state, render_eval_fn, train_step


def _synthetic_batch(n=64):
    """Rays whose colour is a smooth function of the view direction."""
    rays = random_rays(n=n, seed=3)
    rgb = 0.5 + 0.4 * rays.viewdirs
    return utils.Batch(rays=rays, rgb=rgb)


def test_train_steps_reduce_the_loss_and_report_multinerf_stats():
    config, model, state, _, train_step = _setup([
        'Config.lr_init = 1e-2', 'Config.lr_final = 1e-3', 'Config.max_steps = 40',
        'Config.lr_delay_steps = 0', 'Config.weight_decay_mults = {"NerfMLP_0": 1e-6}'])
    batch = _synthetic_batch()
    rng = torch.Generator().manual_seed(0)
    losses = []
    for step in range(40):
        state, stats, rng = train_step(rng, state, batch, None, step / 39, compute_stats=step == 39)
        losses.append(stats['loss'].item())
    assert state.step == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert set(stats['losses']) == {'data', 'interlevel', 'distortion', 'weight'}
    assert stats['psnrs'].shape == (3,) and stats['psnr'] == stats['psnrs'][-1]
    torch.testing.assert_close(stats['psnr'], -10 * torch.log10(stats['mses'][-1]))
    for key in ['weight_l2s', 'grad_norms', 'grad_maxes', 'opt_update_norms', 'opt_update_maxes']:
        assert {'NerfMLP_0', 'PropMLP_0', 'NerfMLP_0/Dense_0', 'PropMLP_0/Dense_2/bias'} <= set(
            stats[key]), key
    assert stats['opt_update_norms']['PropMLP_0'] > 0 and stats['opt_update_norms']['NerfMLP_0'] > 0


def test_train_step_grad_stats_are_taken_before_clipping():
    config, model, state, _, train_step = _setup(['Config.grad_max_norm = 1e-9'])
    _, stats, _ = train_step(torch.Generator().manual_seed(0), state, _synthetic_batch(), None, 0.5,
                             compute_stats=True)
    assert stats['grad_norms']['NerfMLP_0'] > 1e-6
    grads = torch.cat([p.grad.flatten() for p in model.NerfMLP_0.parameters()])
    torch.testing.assert_close(grads.norm(), torch.tensor(1e-9), rtol=1e-4, atol=0)
    torch.testing.assert_close(
        stats['grad_norms']['NerfMLP_0'],
        torch.sqrt(sum(stats['grad_norms'][f'NerfMLP_0/Dense_{i}'] ** 2 for i in range(6))))


def test_setup_model_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    _, model_a, *_ = _setup(seed=7)
    assert torch.equal(torch.rand(1), expected_draw)
    gin.clear_config()
    _, model_b, *_ = _setup(seed=7)
    gin.clear_config()
    _, model_c, *_ = _setup(seed=8)
    wa, wb, wc = (m.NerfMLP_0.pts_layers[0].weight for m in (model_a, model_b, model_c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_train_step_casts_rays_from_pixels():
    config, model, state, _, _ = _setup(['Config.cast_rays_in_train_step = True'])
    train_step = train_utils.create_train_step(model, config)
    n = 16
    g = torch.Generator().manual_seed(0)
    pixels = utils.Pixels(
        pix_x_int=torch.randint(0, 8, (n,), generator=g),
        pix_y_int=torch.randint(0, 6, (n,), generator=g),
        lossmult=torch.ones(n, 1), near=torch.full((n, 1), 0.2), far=torch.full((n, 1), 1e6),
        cam_idx=torch.randint(0, 2, (n, 1), generator=g))
    camtoworlds = torch.eye(4)[:3].expand(2, 3, 4).clone()
    camtoworlds[1, :, 3] = torch.tensor([0.1, 0.0, 0.0])
    cameras = (camera_utils.get_pixtocam(5.0, 8, 6), camtoworlds, None, None)
    batch = utils.Batch(rays=pixels, rgb=torch.rand(n, 3, generator=g))
    _, stats, _ = train_step(torch.Generator().manual_seed(0), state, batch, cameras, 0.5)
    assert torch.isfinite(stats['loss'])


def test_render_fn_renders_a_whole_image_deterministically():
    config, model, _, render_eval_fn, _ = _setup(['Config.render_chunk_size = 10'])
    rays = random_rays(n=24).map(lambda r: r.reshape((4, 6) + r.shape[1:]))
    render_fn = functools.partial(render_eval_fn, 1.0)
    a = models.render_image(render_fn, rays, None, config, verbose=False)
    b = models.render_image(render_fn, rays, torch.Generator(), config, verbose=False)
    assert a['rgb'].shape == (4, 6, 3) and not a['rgb'].requires_grad
    torch.testing.assert_close(a['rgb'], b['rgb'], rtol=0, atol=0)


def test_train_state_round_trips_through_state_dict():
    config, model, state, _, train_step = _setup()
    train_step(torch.Generator().manual_seed(0), state, _synthetic_batch(), None, 0.1)
    saved = state.state_dict()
    gin.clear_config()
    _, _, other, _, _ = _setup(seed=1)
    other.load_state_dict(saved)
    assert other.step == 1
    for p, q in zip(other.model.parameters(), model.parameters()):
        assert torch.equal(p, q)
    assert other.optimizer.state_dict()['state'].keys() == saved['optimizer']['state'].keys()


@pytest.mark.parametrize('lossmult', ['ones', 'varied'])
def test_grad_accum_steps_give_the_one_shot_update(lossmult):
    """Micro-batches add up to the whole batch's gradient, losses and statistics (deterministic)."""
    bindings = ['Config.randomized = False', 'Config.grad_max_norm = 0.',
                'Config.weight_decay_mults = {"NerfMLP_0": 1e-3}', 'Config.data_coarse_loss_mult = 0.1']
    batch = _synthetic_batch(n=64)
    if lossmult == 'varied':  # multiscale-style per-ray weights: data terms weigh by their share
        weights = torch.linspace(0.25, 4.0, 64)[:, None]
        batch = dataclasses.replace(batch, rays=dataclasses.replace(batch.rays, lossmult=weights))
    results = []
    for steps in (1, 4):
        gin.clear_config()
        _, model, state, _, train_step = _setup(bindings + [f'Config.grad_accum_steps = {steps}'])
        _, stats, _ = train_step(None, state, batch, None, 0.5, compute_stats=True)
        grads = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
        results.append((stats, grads, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (one, g_one, p_one), (acc, g_acc, p_acc) = results
    assert (g_acc - g_one).norm() <= 1e-6 * g_one.norm()
    torch.testing.assert_close(p_acc, p_one, rtol=0, atol=1e-7)
    for key in ('loss', 'mses', 'psnrs', 'psnr'):
        torch.testing.assert_close(acc[key], one[key], rtol=1e-6, atol=0)
    assert set(acc['losses']) == set(one['losses']) == {'data', 'interlevel', 'distortion', 'weight'}
    for key in one['losses']:
        torch.testing.assert_close(acc['losses'][key], one['losses'][key], rtol=1e-6, atol=1e-12)
    for key in ('grad_norms', 'weight_l2s'):
        for path in ('NerfMLP_0', 'PropMLP_0'):
            torch.testing.assert_close(acc[key][path], one[key][path], rtol=1e-6, atol=0)
