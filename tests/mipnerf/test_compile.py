"""torch.compile of mip-NeRF's MLP (inductor, on the CPU): the same outputs and parameter gradients
as eager, with and without the view-direction branch."""

import gin
import pytest
import torch

from mipnerf.internal import models

TINY = ["MLP.net_depth = 4", "MLP.net_width = 32", "MLP.net_width_condition = 16", "MLP.skip_layer = 2"]


@pytest.mark.parametrize("condition_dim", [27, 0], ids=["viewdirs", "no_viewdirs"])
def test_compiled_mlp_matches_eager(condition_dim):
    gin.clear_config()
    gin.parse_config(TINY)
    torch.manual_seed(0)
    mlp = models.MLP(input_dim=24, condition_dim=condition_dim)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, 24, generator=g)
    condition = torch.randn(8, condition_dim, generator=g) if condition_dim else None
    compiled = torch.compile(mlp, dynamic=False)
    outputs = {}
    for name, fn in [("eager", mlp), ("compiled", compiled)]:
        mlp.zero_grad(set_to_none=True)
        raw_rgb, raw_density = fn(x, condition)
        (raw_rgb.square().sum() + torch.nn.functional.softplus(raw_density).sum()).backward()
        outputs[name] = ((raw_rgb, raw_density), [p.grad.clone() for p in mlp.parameters()])
    (eager, eager_grads), (comp, comp_grads) = outputs["eager"], outputs["compiled"]
    for c, e in zip(comp, eager):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-5)
    assert len(eager_grads) == len(list(mlp.parameters())) > 8
    for gc, ge in zip(comp_grads, eager_grads):
        torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-5)
    gin.clear_config()
