"""torch.compile (inductor, on the CPU) of the NeRF and proposal MLPs gives eager's outputs and
parameter gradients."""

import copy

import pytest
import torch

from depth_mipnerf.models.mip_nerf import MipNerf


@pytest.mark.slow
def test_compiled_mlps_match_eager():
    torch.manual_seed(0)
    model = MipNerf(num_samples=8, num_levels=2, num_fine_samples=8, max_deg_point=4, mlp_net_depth=6,
                    mlp_net_width=16, mlp_net_width_condition=8, prop_mlp=True, prop_net_depth=2,
                    prop_net_width=8, num_glo_embeddings=2, num_glo_features=2, mlp_normals=True)
    x = torch.randn(16, 8, 24)  # [rays, samples, IPE features of 4 scales]
    views, glo = torch.randn(16, 27), torch.randn(16, 2)
    for name, inputs in (('mlp', (x, views, glo)), ('prop_mlp', (x,))):
        eager = getattr(model, name)
        compiled = torch.compile(copy.deepcopy(eager), backend='inductor', dynamic=False)
        outs = [m(*inputs) for m in (eager, compiled)]
        for out_eager, out_compiled in zip(*[o if isinstance(o, tuple) else (o,) for o in outs]):
            torch.testing.assert_close(out_compiled, out_eager, rtol=1e-5, atol=1e-5)
        for m, out in zip((eager, compiled), outs):
            sum((o**2).sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
        for (param_name, p), q in zip(eager.named_parameters(), compiled.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5, msg=f'{name}.{param_name}')
