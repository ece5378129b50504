"""mipnerf360.internal.ref_utils beyond the golden cases: spherical harmonics, attenuation, gradients."""

import numpy as np
import pytest
import scipy.special
import torch

from mipnerf360.internal import ref_utils


def _unit_directions(n, seed, dtype=torch.float64):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x / torch.linalg.norm(x, dim=-1, keepdim=True)


def test_reflect_keeps_length_and_the_normal_component():
    v, n = _unit_directions(100, 0) * 2.5, _unit_directions(100, 1)
    u = ref_utils.reflect(v, n)
    torch.testing.assert_close(torch.linalg.norm(u, dim=-1), torch.linalg.norm(v, dim=-1))
    torch.testing.assert_close((u * n).sum(-1), (v * n).sum(-1))
    torch.testing.assert_close(ref_utils.reflect(u, n), v)


def test_l2_normalize_is_unit_length_and_finite_at_zero():
    x = torch.cat(
        [torch.randn(5, 3, generator=torch.Generator().manual_seed(2)), torch.zeros(1, 3)]
    )
    x.requires_grad_()
    y = ref_utils.l2_normalize(x)
    torch.testing.assert_close(torch.linalg.norm(y[:5], dim=-1), torch.ones(5))
    assert torch.equal(y[5].detach(), torch.zeros(3))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.all(torch.isfinite(grad))


def test_compute_weighted_mae_in_degrees():
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    normals_gt = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    weights = torch.tensor([1.0, 1.0, 2.0])
    # Angles 0, 90 and (clipped) 180 degrees, weighted 1, 1, 2.
    mae = ref_utils.compute_weighted_mae(weights, normals, normals_gt)
    torch.testing.assert_close(mae, torch.tensor((0 + 90 + 2 * 180) / 4), rtol=1e-3, atol=0)


def test_ml_array_lists_degrees_in_powers_of_two():
    ml = ref_utils.get_ml_array(3)
    np.testing.assert_array_equal(
        ml, [[0, 1, 0, 1, 2, 0, 1, 2, 3, 4], [1, 1, 2, 2, 2, 4, 4, 4, 4, 4]]
    )


@pytest.mark.parametrize("deg_view", [1, 3, 5])
def test_dir_enc_is_the_spherical_harmonics(deg_view):
    xyz = _unit_directions(64, 3)
    de = ref_utils.generate_dir_enc_fn(deg_view)(xyz).numpy()
    m, l = ref_utils.get_ml_array(deg_view)
    theta = np.arccos(xyz[:, 2:3].numpy())
    phi = np.arctan2(xyz[:, 1:2].numpy(), xyz[:, 0:1].numpy())
    sph = scipy.special.sph_harm_y(l, m, theta, phi)  # Condon-Shortley phase, as the encoding.
    n = len(m)
    np.testing.assert_allclose(de[:, :n], sph.real, atol=1e-9)
    np.testing.assert_allclose(de[:, n:], sph.imag, atol=1e-9)


def test_ide_attenuates_each_degree_by_its_vmf_factor():
    xyz = _unit_directions(16, 4)
    kappa_inv = torch.rand(16, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ide = ref_utils.generate_ide_fn(4)(xyz, kappa_inv)
    de = ref_utils.generate_dir_enc_fn(4)(xyz)
    l = torch.from_numpy(ref_utils.get_ml_array(4)[1]).double()
    attenuation = torch.exp(-0.5 * l * (l + 1) * kappa_inv).repeat(1, 2)
    torch.testing.assert_close(ide, de * attenuation)


def test_ide_gradients_are_finite_and_deg_view_is_capped():
    xyz = _unit_directions(8, 6, dtype=torch.float32).requires_grad_()
    kappa_inv = torch.full((8, 1), 0.1, requires_grad=True)
    ide = ref_utils.generate_ide_fn(5)(xyz, kappa_inv)
    grads = torch.autograd.grad(ide.sum(), (xyz, kappa_inv))
    assert all(torch.all(torch.isfinite(g)) for g in grads)
    with pytest.raises(ValueError, match="at most 5"):
        ref_utils.generate_ide_fn(6)
