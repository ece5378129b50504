"""Model behaviour the golden cases do not cover: proposal MLP, GLO embeddings, depth-guided
sampling, gin-selected depth losses and their fix flags, the learning-rate schedule, the configs."""

import gin
import numpy as np
import pytest
import torch

from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets.datasets import Rays
from depth_mipnerf.models import mip_nerf, nerf_system
from depth_mipnerf.models.loss import MSELoss
from depth_mipnerf.models.mip_nerf import MipNerf
from depth_mipnerf.utils.lr_schedule import MipLRDecay

SMALL = dict(num_samples=16, num_levels=3, num_fine_samples=8, max_deg_point=6, mlp_net_depth=2,
             mlp_net_width=16, mlp_net_width_condition=8, prop_net_depth=2, prop_net_width=8, mlp_normals=False)


def _rays(n=32, depth=3.0, cam_idx=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    ones = torch.ones(n, 1)
    return Rays(origins=torch.zeros(n, 3), directions=directions, viewdirs=directions, radii=0.01 * ones,
                lossmult=ones, near=2 * ones, far=6 * ones, depth=depth * ones, normal=torch.zeros(n, 3),
                mask=ones == 0, depth_vars=0 * ones, cam_idx=cam_idx * ones)


def test_proposal_mlp_is_density_only_and_feeds_only_the_envelope():
    torch.manual_seed(0)
    model = MipNerf(prop_mlp=True, num_glo_features=0, **SMALL)
    names = {n.split('.')[1] for n, _ in model.named_parameters() if n.startswith('prop_mlp.')}
    assert names == {'layers', 'density_layer'}
    assert len(model.prop_mlp.layers) == 2 and model.prop_mlp.density_layer.out_features == 1
    out = model(_rays(), randomized=True, white_bkgd=True)
    assert out['weights'].shape == (32, 8) and out['envelope_loss'].shape == (32, 8)
    out['rgb_fine'].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.prop_mlp.parameters())
    model.zero_grad()
    out = model(_rays(), randomized=True, white_bkgd=True)
    out['envelope_loss'].sum().backward()
    assert any(p.grad is not None and p.grad.any() for p in model.prop_mlp.parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.mlp.parameters())


@pytest.mark.parametrize('encode_glo', [False, True])
def test_glo_embeddings_train_per_camera_and_are_zero_at_eval(encode_glo):
    torch.manual_seed(0)
    model = MipNerf(prop_mlp=True, num_glo_embeddings=3, num_glo_features=4, encode_glo=encode_glo, **SMALL)
    torch.nn.init.normal_(model.glo_vecs.weight, std=1.0)
    torch.manual_seed(1)
    rgb_cam0 = model(_rays(cam_idx=0), False, True, zero_glo=False)['rgb_fine']
    rgb_cam2 = model(_rays(cam_idx=2), False, True, zero_glo=False)['rgb_fine']
    assert not torch.allclose(rgb_cam0, rgb_cam2)
    with torch.no_grad():
        model.glo_vecs.weight[2] = 0
    rgb_zero_code = model(_rays(cam_idx=2), False, True, zero_glo=False)['rgb_fine']
    rgb_eval = model(_rays(cam_idx=1), False, True, zero_glo=True)['rgb_fine']
    torch.testing.assert_close(rgb_eval, rgb_zero_code)
    model.zero_grad()
    model(_rays(cam_idx=1), True, True, zero_glo=False)['rgb_fine'].sum().backward()
    assert model.glo_vecs.weight.grad[1].abs().sum() > 0 and not model.glo_vecs.weight.grad[[0, 2]].any()


def test_no_viewdirs_without_glo_renders():
    model = MipNerf(prop_mlp=True, use_viewdirs=False, num_glo_features=0, **SMALL)
    assert model(_rays(), False, True)['rgb_fine'].shape == (32, 3)


def test_depth_guided_sampling_puts_a_quarter_of_the_samples_at_the_depth():
    torch.manual_seed(0)
    model = MipNerf(prop_mlp=False, num_levels=1, depth_sampling=True, num_glo_features=0,
                    **{k: v for k, v in SMALL.items() if k != 'num_levels'})
    rays = _rays(n=64, depth=3.0)
    rays = rays._replace(depth=torch.where(torch.arange(64)[:, None] < 32, rays.depth, 0.))
    t = model(rays, randomized=True, white_bkgd=True)['t_samples']
    assert t.shape == (64, 17) and (t.diff(dim=-1) >= 0).all()
    s = float(torch.exp(-model.depth_network.variance.detach()))
    near_depth = ((t[:32] - 3.0).abs() < 4 * s).sum(-1)
    assert (near_depth >= 4).all()  # 16 // 4 samples drawn from N(depth, s)
    assert ((t[32:] >= 2) & (t[32:] <= 6)).all()  # no depth: uniform in [near, far]


def _weights_at(t, depth, spread):
    """Weights of a Gaussian ray termination at `depth` with std `spread`, on fenceposts t."""
    mids = 0.5 * (t[..., 1:] + t[..., :-1])
    w = torch.exp(-0.5 * ((mids - depth) / spread) ** 2)
    return 0.95 * w / w.sum(-1, keepdim=True)


@pytest.mark.parametrize('kind', ['cdf', 'urf', 'cdf_test', 'ds_nerf'])
def test_depth_losses_prefer_weights_at_the_depth(kind):
    t = torch.linspace(2, 6, 129).expand(8, 129)
    rays = _rays(n=8, depth=3.5)
    model = MipNerf(depth_loss=kind, num_glo_features=0, urf_fix_sigma=True, **SMALL)
    eps = 0.15
    sharp = sum(model.depth_losses(rays, t, _weights_at(t, 3.5, 0.02), eps))
    wrong = sum(model.depth_losses(rays, t, _weights_at(t, 4.5, 0.02), eps))
    assert torch.isfinite(sharp).all() and float(sharp) < float(wrong)


def test_depth_loss_none_and_fix_flags():
    t = torch.linspace(2, 6, 129).expand(8, 129)
    rays, w = _rays(n=8, depth=3.5), _weights_at(t, 3.6, 0.1)
    zero = MipNerf(depth_loss='none', num_glo_features=0, **SMALL).depth_losses(rays, t, w, 0.2)
    assert float(sum(zero)) == 0
    code = mip_nerf.lossfun_depth_weight_CDF(rays, t, w, 0.2)
    write_up = mip_nerf.lossfun_depth_weight_CDF(rays, t, w, 0.2, sigma_from_eps=True)
    same_eps = mip_nerf.lossfun_depth_weight_CDF(rays, t, w, 0.03, sigma_from_eps=True)
    assert not torch.allclose(code[1], write_up[1])
    torch.testing.assert_close(code, same_eps)
    beta = mip_nerf.lossfun_depth_weight_CDF(rays, t, w, 0.2, beta=0.06)
    assert float(beta[1]) < float(code[1])  # the bounds move apart: fewer violations
    with pytest.raises(ValueError, match='depth_loss must be one of'):
        MipNerf(depth_loss='l1', **SMALL)


def test_l2_depth_fix_flag_divides_by_acc():
    hp = {'loss.lambda_depth': 1., 'loss.lambda_normal': 0., 'loss.lambda_distortion': 0.,
          'loss.lambda_orientation': 0., 'loss.coarse_loss_mult': 0.1, 'loss.lambda_empty_loss': 0.,
          'loss.lambda_near_loss': 0., 'loss.lambda_prop_loss': 0., 'nerf.mlp.prop_mlp': True,
          'nerf.mlp.mlp_normals': False}
    n = 4
    results = {'rgb_fine': torch.zeros(n, 3), 'depth': torch.full((n,), 1.5), 'acc': torch.full((n,), 0.5),
               'weights': torch.zeros(n, 8), 'density_normals': torch.zeros(n, 8, 3),
               'distortion': torch.zeros(n), 'near_loss': torch.zeros(1), 'empty_loss': torch.zeros(1),
               'envelope_loss': torch.zeros(n, 8)}
    targets = {'rgb': torch.zeros(n, 3), 'depth': torch.full((n,), 3.), 'normal': torch.zeros(n, 3),
               'dirs': torch.zeros(n, 3), 'dmask': torch.zeros(n, dtype=torch.bool)}
    fork = MSELoss(hp)(results, targets)
    fixed = MSELoss({**hp, 'loss.depth_divide_acc': True})(results, targets)
    assert float(fork['depth']) == pytest.approx(2.25) and float(fixed['depth']) == 0
    assert torch.isfinite(fork['total']).all()  # no GT normals: the 0/0 normal terms stay out


def test_urf_fix_flag():
    t = torch.linspace(2, 6, 129).expand(8, 129)
    rays, at_depth, away = _rays(n=8, depth=3.5), _weights_at(t, 3.5, 0.05), _weights_at(t, 4.5, 0.05)
    near = lambda w, fix: float(mip_nerf.lossfun_depth_weight(rays, t, w, 0.15, fix_sigma=fix)[1])  # noqa: E731
    # As the fork: the (eps/3)^2 "std" makes the target vanish, so weights at the depth cost more
    # than no weight near it at all; with the fix the window's Gaussian is the target.
    assert near(at_depth, False) > near(away, False)
    assert near(at_depth, True) < near(away, True)


def test_fix_resample_count_flag():
    """Without stop_resample_grad the fork resamples as many intervals as the level before (16 at
    every level here); nerf.fix_resample_count draws num_fine_samples (8) at the last level."""
    rays = _rays()
    for fix, last_level_samples in ((False, 16), (True, 8)):
        torch.manual_seed(0)
        model = MipNerf(stop_resample_grad=False, fix_resample_count=fix, num_glo_features=0, **SMALL)
        out = model(rays, False, True)
        assert out['t_samples'].shape == (32, last_level_samples + 1)
        assert out['weights'].shape == (32, last_level_samples)


def test_fix_ray_shape_flag():
    """The fork casts cones whatever ray_shape says; nerf.fix_ray_shape casts the cylinders asked for."""
    rays = _rays()
    renders = {}
    for ray_shape, fix in (('cone', False), ('cylinder', False), ('cylinder', True)):
        torch.manual_seed(0)
        model = MipNerf(ray_shape=ray_shape, fix_ray_shape=fix, num_glo_features=0, **SMALL)
        renders[ray_shape, fix] = model(rays, False, True)['rgb_fine']
    torch.testing.assert_close(renders['cylinder', False], renders['cone', False], rtol=0, atol=0)
    assert not torch.allclose(renders['cylinder', True], renders['cone', False])
    with pytest.raises(ValueError, match="ray_shape must be 'cone' or 'cylinder'"):
        MipNerf(ray_shape='sphere', **SMALL)


def test_lr_schedule_warm_up_and_log_linear_decay():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
    sched = MipLRDecay(opt, 3e-3, 2e-5, 1000, 100, 0.01)
    lrs = []
    for _ in range(1001):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(3e-5) and lrs[1000] == pytest.approx(2e-5)
    assert lrs[100] == pytest.approx(np.exp(np.log(3e-3) * 0.9 + np.log(2e-5) * 0.1))
    assert np.all(np.diff(lrs[100:]) < 0) and np.all(np.diff(lrs[:60]) > 0)


@pytest.mark.parametrize('name, checks', [
    ('lego', {('train', 'num_images'): 8, ('optimizer', 'lr_init'): 3e-3, ('loss', 'lambda_near_loss'): 0.1,
              ('nerf', 'num_levels'): 3, ('nerf.mlp', 'prop_mlp'): True, ('train', 'batch_size'): 8192}),
    ('lego_bkup', {('train', 'num_images'): 3, ('nerf', 'num_samples'): 128, ('loss', 'lambda_prop_loss'): 0.05}),
    ('scannet', {('nerf.mlp', 'num_glo_embeddings'): 18, ('nerf', 'use_viewdirs'): False,
                 ('loss', 'lambda_distortion'): 1e-4, ('optimizer', 'max_steps'): 150000}),
    ('matterport', {('loss', 'lambda_near_loss'): 0.05, ('nerf', 'deg_view'): 2}),
    ('blender', {('train', 'num_images'): None, ('optimizer', 'lr_init'): 3e-3}),
])
def test_configs_carry_the_forks_values_and_build(name, checks):
    gin.clear_config()
    config, sections = config_lib.parse([f'configs/{name}.gin'], [])
    for (section, key), value in checks.items():
        assert getattr(sections[section], key) == value, (name, section, key)
    model = nerf_system.build_model(sections)
    assert len(model.mlp.layers) == sections['nerf.mlp'].net_depth
    assert model.use_prop_mlp and len(model.prop_mlp.layers) == 4 and model.prop_mlp.layers[0][0].out_features == 256
    assert config_lib.hparams(config, sections)['loss.lambda_near_loss'] == sections['loss'].lambda_near_loss
    gin.clear_config()


def test_convert_lightning_checkpoint(tmp_path):
    from depth_mipnerf.scripts import convert_lightning_checkpoint as convert

    gin.clear_config()
    config, sections = config_lib.parse(['configs/demo.gin'], ["nerf.mlp.num_glo_features = 2",
                                                               "nerf.mlp.num_glo_embeddings = 3"])
    torch.manual_seed(3)
    model = nerf_system.build_model(sections).eval()
    flat = config_lib.hparams(config, sections)
    hparams = {('data_path' if k == 'data_dir' else k): v for k, v in flat.items() if k != 'checkpoint_dir'}
    hparams.update({'out_dir': 'OUT/new', 'opts': [], 'train.num_images': 'None'})
    torch.save({'state_dict': {f'mip_nerf.{k}': v for k, v in model.state_dict().items()},
                'hyper_parameters': hparams, 'global_step': 7}, tmp_path / 'last.ckpt')
    gin.clear_config()
    path, skipped = convert.convert(str(tmp_path / 'last.ckpt'), str(tmp_path / 'run'))
    assert sorted(skipped) == ['opts', 'out_dir'] and path.endswith('checkpoint_00000007.pt')
    _, loaded_sections, loaded, step = nerf_system.load_run(str(tmp_path / 'run'))
    assert step == 7 and loaded_sections['nerf.mlp'].num_glo_features == 2
    assert loaded_sections['train'].num_images is None and loaded_sections['nerf'].num_samples == 32
    rays = _rays()
    torch.testing.assert_close(loaded(rays, False, True)['rgb_fine'], model(rays, False, True)['rgb_fine'])
    gin.clear_config()
