"""torch.compile (inductor, on the CPU) of the package's MLPs: nerf-pytorch's NeRF and pixelNeRF's
ResnetFC give the eager outputs and parameter gradients."""

import copy

import pytest
import torch

from inerf.nerf_helpers import NeRF
from inerf.src.model.resnetfc import ResnetFC


def compiled_matches_eager(module, *inputs, **kwargs):
    """Asserts outputs and parameter gradients of torch.compile(module) equal eager within 1e-5."""
    compiled_module = copy.deepcopy(module)
    compiled = torch.compile(compiled_module)
    results = []
    for mod, params in ((module, module.parameters()), (compiled, compiled_module.parameters())):
        out = mod(*inputs, **kwargs)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad for p in params]))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for compiled_grad, eager_grad in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(compiled_grad, eager_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_nerf_mlp_compiles_to_the_eager_values():
    torch.manual_seed(0)
    model = NeRF(D=3, W=32, input_ch=21, input_ch_views=9, skips=(1,), use_viewdirs=True)
    compiled_matches_eager(model, torch.randn(64, 30))


@pytest.mark.slow
def test_resnetfc_compiles_to_the_eager_values():
    """2 source views per object combined by the mean at block 1 (combine_inner_dims=(2, 8))."""
    torch.manual_seed(0)
    model = ResnetFC(d_in=9, d_out=4, n_blocks=2, d_latent=16, d_hidden=32, combine_layer=1)
    compiled_matches_eager(model, torch.randn(2 * 2 * 8, 16 + 9), combine_inner_dims=(2, 8))
