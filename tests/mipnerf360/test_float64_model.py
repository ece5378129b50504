"""A float64 Model (model.double()) computes in float64 throughout, as multinerf under
jax_enable_x64: the conditioning checks of the whole-step golden cases rely on it."""

import numpy as np
import torch

from mipnerf360.internal import coord, geopoly, models


def test_float64_mlp_projects_with_the_exact_basis(monkeypatch):
    mlp = models.NerfMLP(net_depth=1, net_width=8, bottleneck_width=4, net_width_viewdirs=4,
                         max_deg_point=2, disable_density_normals=True).double()
    seen = []
    lift = coord.lift_and_diagonalize
    monkeypatch.setattr(coord, 'lift_and_diagonalize',
                        lambda m, c, basis: seen.append(basis) or lift(m, c, basis))
    g = torch.Generator().manual_seed(0)
    means = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    covs = torch.eye(3, dtype=torch.float64).expand(2, 3, 3, 3) * 0.1
    out = mlp(None, (means, covs), viewdirs=torch.randn(2, 3, generator=g, dtype=torch.float64))
    exact = geopoly.generate_basis('icosahedron', 2).T
    assert seen[0].dtype == torch.float64
    np.testing.assert_array_equal(seen[0].numpy(), exact)
    assert out['density'].dtype == torch.float64 and out['rgb'].dtype == torch.float64

    # A float32 MLP keeps the float32-rounded buffer, as multinerf without x64.
    seen.clear()
    mlp.float()(None, (means.float(), covs.float()), viewdirs=torch.ones(2, 3))
    assert seen[0].dtype == torch.float32
    np.testing.assert_array_equal(seen[0].numpy(), exact.astype(np.float32))
