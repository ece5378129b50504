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
