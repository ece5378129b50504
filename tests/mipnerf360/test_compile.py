"""torch.compile of mipnerf360's MLPs: the same outputs and parameter gradients as eager."""

import os

import gin
import pytest
import torch

from mipnerf360.internal import configs, models

CONFIG_DIR = os.path.join(os.path.dirname(configs.__file__), '..', 'configs')
TINY = ['PropMLP.net_depth = 2', 'PropMLP.net_width = 16', 'NerfMLP.net_depth = 2',
        'NerfMLP.net_width = 32', 'NerfMLP.bottleneck_width = 16', 'NerfMLP.net_width_viewdirs = 16',
        'NerfMLP.max_deg_point = 4', 'PropMLP.max_deg_point = 4']


def gaussians(n_rays=8, n_samples=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_rays, n_samples, 3, generator=g)
    a = 0.05 * torch.randn(n_rays, n_samples, 3, 3, generator=g)
    covs = a @ a.transpose(-1, -2) + 1e-4 * torch.eye(3)
    viewdirs = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=-1)
    return (means, covs), viewdirs


@pytest.mark.slow
@pytest.mark.parametrize('mlp_name', ['NerfMLP', 'PropMLP'])
def test_compiled_mlp_matches_eager(mlp_name):
    gin.clear_config()
    gin.parse_config_files_and_bindings([os.path.join(CONFIG_DIR, '360.gin')], TINY)
    torch.manual_seed(0)
    mlp = getattr(models, mlp_name)()
    inputs, viewdirs = gaussians()
    compiled = torch.compile(mlp, dynamic=False)
    outputs = {}
    for name, fn in [('eager', mlp), ('compiled', compiled)]:
        mlp.zero_grad(set_to_none=True)
        out = fn(None, inputs, viewdirs=viewdirs)
        (out['density'].sum() + out['rgb'].square().sum()).backward()
        outputs[name] = (out, [p.grad.clone() for p in mlp.parameters()])
    (eager, eager_grads), (comp, comp_grads) = outputs['eager'], outputs['compiled']
    for key in ('density', 'rgb'):
        torch.testing.assert_close(comp[key], eager[key], rtol=1e-5, atol=1e-5)
    for ge, gc in zip(eager_grads, comp_grads):
        torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-5)
    gin.clear_config()


def _warped_gaussians(n=4096, seed=0, dtype=torch.float32):
    """Means spread over the contracted space (|x| up to ~10) and small covariances: [n, 3], [n, 3, 3]."""
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    a = 0.05 * torch.randn(n, 3, 3, generator=g, dtype=torch.float64)
    return means.to(dtype), (a @ a.transpose(-1, -2)).to(dtype)


def _basis():
    import numpy as np

    from mipnerf360.internal import geopoly
    return torch.tensor(np.ascontiguousarray(geopoly.generate_basis('icosahedron', 2).T))


@pytest.mark.slow
def test_compiled_encoding_matches_eager_as_closely_as_float32_allows():
    from mipnerf360.internal import coord
    means, covs = _warped_gaussians()
    basis = _basis()
    with torch.no_grad():
        exact = models.encode_gaussians(means.double(), covs.double(), basis, coord.contract, 0, 12)
        eager = models.encode_gaussians(means, covs, basis.float(), coord.contract, 0, 12)
        compiled = models.encode_gaussians_compiled(means, covs, basis.float(), coord.contract, 0, 12)
        # Unwarped, at leading shape [8, 512]: the IPE alone is eager's to a few ulp.
        lifted = models.encode_gaussians(means[:, None], covs[:, None], basis.float(), None, 2, 6)
        lifted_c = models.encode_gaussians_compiled(
            means[:, None], covs[:, None], basis.float(), None, 2, 6)
    assert compiled.shape == eager.shape == (4096, 504)
    assert lifted_c.shape == lifted.shape == (4096, 1, 168)
    torch.testing.assert_close(lifted_c, lifted, rtol=0, atol=1e-6)
    # At degree 11 a 1-ulp change of a projected mean moves the phase by ~2e-4: compiled and
    # eager differ by that much, and are equally far from the float64 encoding.
    err_eager = (eager.double() - exact).abs().max().item()
    err_compiled = (compiled.double() - exact).abs().max().item()
    assert err_eager < 2e-3 and err_compiled < 1.5 * err_eager
    torch.testing.assert_close(compiled, eager, rtol=0, atol=2 * err_eager)
    # Below degree 8 the phases are well conditioned: the two agree to 1e-5.
    low = torch.cat([torch.arange(k * 252, k * 252 + 8 * 21) for k in range(2)])
    torch.testing.assert_close(compiled[:, low], eager[:, low], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_model_with_compiled_elementwise_matches_eager():
    """A tiny 360.gin model, Config.compile_elementwise on and off: renderings and gradients (encoding and resampling compiled)."""
    from mipnerf360.internal import utils
    gin.clear_config()
    outputs = {}
    for flag in (False, True):
        gin.clear_config()
        gin.parse_config_files_and_bindings(
            [os.path.join(CONFIG_DIR, '360.gin')],
            TINY + [f'Config.compile_elementwise = {flag}'])
        config = configs.Config()
        torch.manual_seed(0)
        model = models.Model(config=config)
        assert model.NerfMLP_0.compile_elementwise is flag
        g = torch.Generator().manual_seed(1)
        n = 64
        origins = torch.randn(n, 3, generator=g)
        directions = torch.nn.functional.normalize(-origins + 0.1 * torch.randn(n, 3, generator=g), dim=-1)
        ones = torch.ones(n, 1)
        rays = utils.Rays(origins=origins, directions=directions, viewdirs=directions,
                          radii=0.002 * ones, imageplane=torch.zeros(n, 2), lossmult=ones,
                          near=0.2 * ones, far=1e6 * ones, cam_idx=torch.zeros(n, 1, dtype=torch.int64))
        renderings, _ = model(torch.Generator().manual_seed(2), rays, 0.5, compute_extras=False)
        renderings[-1]['rgb'].square().sum().backward()
        outputs[flag] = ([r['rgb'].detach() for r in renderings],
                         {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    (rgb_e, grads_e), (rgb_c, grads_c) = outputs[False], outputs[True]
    for a, b in zip(rgb_c, rgb_e):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert grads_c.keys() == grads_e.keys()
    for k in grads_e:
        torch.testing.assert_close(grads_c[k], grads_e[k], rtol=1e-3, atol=1e-4, msg=k)
    gin.clear_config()


@pytest.mark.slow
@pytest.mark.parametrize('seed', [None, 3])
def test_compiled_resampling_matches_eager(seed):
    """Config.compile_elementwise's max_dilate_weights and sample_intervals: eager's intervals
    within float32 round-off, deterministic and with a generator (drawing the same jitter)."""
    from mipnerf360.internal import stepfun
    g = torch.Generator().manual_seed(0)
    t = torch.sort(torch.rand(256, 65, generator=g), dim=-1).values
    t[:, 0], t[:, -1] = 0, 1
    w = torch.softmax(3 * torch.randn(256, 64, generator=g), dim=-1)
    results = []
    for dilate, sample in [(stepfun.max_dilate_weights, stepfun.sample_intervals),
                           models._compiled_resampling()]:
        rng = None if seed is None else torch.Generator().manual_seed(seed)
        sd, wd = dilate(t, w, 0.0125, domain=(0., 1.), renormalize=True)
        sd, wd = sd[..., 1:-1], wd[..., 1:-1]
        logits = torch.where(sd[..., 1:] > sd[..., :-1], 0.5 * torch.log(wd), -torch.inf)
        first = sample(rng, sd, logits, 32, single_jitter=True, domain=(0., 1.))
        second = sample(rng, sd, logits, 32, single_jitter=True, domain=(0., 1.))
        results.append((sd, wd, first, second))
    for e, c in zip(*results):
        torch.testing.assert_close(c, e, rtol=0, atol=1e-5)
    if seed is not None:  # The generator advanced: the second draw differs from the first.
        assert not torch.equal(results[1][2], results[1][3])
