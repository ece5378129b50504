"""mipnerf360.internal.coord beyond the golden cases: Jacobians, invariants, gradients."""

import pytest
import torch

from mipnerf360.internal import coord, geopoly


def _random_covariances(generator, shape, dim=3, dtype=torch.float32):
    """Symmetric positive definite matrices: [*shape, dim, dim]."""
    a = torch.randn(*shape, dim, dim, generator=generator, dtype=dtype)
    return a @ a.transpose(-1, -2) + 0.1 * torch.eye(dim, dtype=dtype)


def test_contract_is_the_identity_inside_the_unit_ball_and_bounded_by_two_outside():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g)
    x_in = x / torch.linalg.norm(x, dim=-1, keepdim=True) * torch.rand(500, 1, generator=g)
    assert torch.equal(coord.contract(x_in), x_in)
    x_out = x * 10.0 ** torch.linspace(0.1, 6, 500)[:, None]
    x_out = x_out[torch.linalg.norm(x_out, dim=-1) > 1]
    z = coord.contract(x_out)
    z_norm = torch.linalg.norm(z, dim=-1)
    assert torch.all(z_norm > 1) and torch.all(z_norm <= 2)
    # The radius maps to 2 - 1/|x| along an unchanged direction.
    x_norm = torch.linalg.norm(x_out, dim=-1)
    torch.testing.assert_close(z_norm, 2 - 1 / x_norm)
    torch.testing.assert_close(z / z_norm[:, None], x_out / x_norm[:, None])


def test_inv_contract_inverts_contract():
    g = torch.Generator().manual_seed(1)
    x = (
        torch.randn(1000, 3, generator=g, dtype=torch.float64)
        * 10.0 ** torch.linspace(-3, 3, 1000)[:, None]
    )
    torch.testing.assert_close(coord.inv_contract(coord.contract(x)), x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fn", [coord.contract, coord.inv_contract])
def test_contract_gradients_are_finite_at_the_origin(fn):
    x = torch.tensor(
        [[0.0, 0.0, 0.0], [1e-30, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, -1.5, 0.2]], requires_grad=True
    )
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    assert torch.all(torch.isfinite(grad))
    torch.testing.assert_close(grad[:2], torch.ones(2, 3))


def test_track_linearize_contract_equals_jacobian_sandwich():
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(4, 5, 3, generator=g, dtype=torch.float64) * 3
    cov = _random_covariances(g, (4, 5), dtype=torch.float64)
    fn_mean, fn_cov = coord.track_linearize(coord.contract, mean, cov)
    torch.testing.assert_close(fn_mean, coord.contract(mean))
    for i in range(4):
        for j in range(5):
            jac = torch.autograd.functional.jacobian(coord.contract, mean[i, j])
            torch.testing.assert_close(fn_cov[i, j], jac @ cov[i, j] @ jac.T)


def test_track_linearize_of_an_affine_map_changing_dimension():
    g = torch.Generator().manual_seed(3)
    a_mat = torch.randn(5, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    mean = torch.randn(7, 3, generator=g, dtype=torch.float64)
    cov = _random_covariances(g, (7,), dtype=torch.float64)
    fn_mean, fn_cov = coord.track_linearize(lambda x: x @ a_mat.T + b, mean, cov)
    torch.testing.assert_close(fn_mean, mean @ a_mat.T + b)
    torch.testing.assert_close(fn_cov, a_mat @ cov @ a_mat.T)


def test_track_linearize_rejects_diagonal_covariances():
    with pytest.raises(ValueError, match="non-diagonal"):
        coord.track_linearize(coord.contract, torch.zeros(4, 3), torch.ones(4, 3))


def test_track_linearize_gradients_are_finite_and_match_float64_finite_differences():
    g = torch.Generator().manual_seed(4)
    mean = (torch.randn(3, 3, generator=g, dtype=torch.float64) * 2).requires_grad_()
    cov = _random_covariances(g, (3,), dtype=torch.float64).requires_grad_()

    def loss_terms(mean, cov):
        fn_mean, fn_cov = coord.track_linearize(coord.contract, mean, cov)
        return fn_mean, fn_cov

    assert torch.autograd.gradcheck(loss_terms, (mean, cov))
    # Second order too (density-gradient normals differentiate through the warp).
    assert torch.autograd.gradgradcheck(loss_terms, (mean, cov))
    origin = torch.zeros(2, 3, requires_grad=True)
    fn_mean, fn_cov = coord.track_linearize(coord.contract, origin, torch.eye(3).expand(2, 3, 3))
    (grad,) = torch.autograd.grad(fn_mean.sum() + fn_cov.sum(), origin)
    assert torch.all(torch.isfinite(grad))


@pytest.mark.parametrize(
    "fn", [None, "piecewise", torch.reciprocal, torch.log, torch.sqrt, torch.exp, torch.square]
)
def test_construct_ray_warps_maps_near_far_to_zero_one_and_inverts(fn):
    g = torch.Generator().manual_seed(5)
    t_near = torch.exp(torch.randn(50, 1, generator=g, dtype=torch.float64)) * 0.3
    t_far = t_near + torch.exp(torch.randn(50, 1, generator=g, dtype=torch.float64)) * 0.3
    t_to_s, s_to_t = coord.construct_ray_warps(fn, t_near, t_far)
    torch.testing.assert_close(t_to_s(t_near), torch.zeros_like(t_near), atol=1e-10, rtol=0)
    torch.testing.assert_close(t_to_s(t_far), torch.ones_like(t_far))
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    t = s_to_t(s)
    assert torch.all(t >= t_near - 1e-12) and torch.all(t <= t_far + 1e-12)
    torch.testing.assert_close(t_to_s(t), s.expand_as(t))


def test_construct_ray_warps_reciprocal_closed_form():
    t_near, t_far = torch.tensor([0.2]), torch.tensor([1e6])
    t_to_s, _ = coord.construct_ray_warps(torch.reciprocal, t_near, t_far)
    t = torch.tensor([0.2, 0.5, 1.0, 10.0, 1e6])
    torch.testing.assert_close(t_to_s(t), (1 / t - 1 / t_near) / (1 / t_far - 1 / t_near))


def test_integrated_pos_enc_with_zero_variance_is_pos_enc():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(10, 3, generator=g, dtype=torch.float64) * 4 - 2
    ipe = coord.integrated_pos_enc(x, torch.zeros_like(x), 0, 6)
    torch.testing.assert_close(ipe, coord.pos_enc(x, 0, 6, append_identity=False))
    # Huge variance washes every feature out.
    assert torch.all(coord.integrated_pos_enc(x, torch.full_like(x, 1e4), 0, 6).abs() < 1e-12)


def test_expected_sin_matches_monte_carlo():
    g = torch.Generator().manual_seed(7)
    mean, var = (
        torch.tensor([0.3, 2.0, -1.0], dtype=torch.float64),
        torch.tensor([0.1, 1.0, 4.0], dtype=torch.float64),
    )
    samples = mean + var.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        coord.expected_sin(mean, var), torch.sin(samples).mean(0), atol=5e-3, rtol=0
    )


def test_lift_and_diagonalize_gives_projected_means_and_variances():
    g = torch.Generator().manual_seed(8)
    basis = torch.from_numpy(geopoly.generate_basis("icosahedron", 2).T.copy())
    mean = torch.randn(6, 3, generator=g, dtype=torch.float64)
    cov = _random_covariances(g, (6,), dtype=torch.float64)
    fn_mean, fn_cov_diag = coord.lift_and_diagonalize(mean, cov, basis)
    torch.testing.assert_close(fn_mean, mean @ basis)
    torch.testing.assert_close(fn_cov_diag, torch.diagonal(basis.T @ cov @ basis, dim1=-2, dim2=-1))


def test_pos_enc_shapes():
    x = torch.zeros(2, 7, 3)
    assert coord.pos_enc(x, 0, 4).shape == (2, 7, 3 + 2 * 3 * 4)
    assert coord.pos_enc(x, 2, 4, append_identity=False).shape == (2, 7, 2 * 3 * 2)
    assert coord.integrated_pos_enc(x, x, 0, 16).shape == (2, 7, 2 * 3 * 16)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_integrated_pos_enc_stacked_is_integrated_pos_enc_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    # Means up to 2 (contracted), so the top degrees exercise safe_sin's range reduction.
    mean = (4 * torch.rand(5, 7, 21, generator=g) - 2).to(dtype)
    var = (0.01 * torch.rand(5, 7, 21, generator=g)).to(dtype)
    for min_deg, max_deg in [(0, 12), (2, 5)]:
        expected = coord.integrated_pos_enc(mean, var, min_deg, max_deg)
        got = coord.integrated_pos_enc_stacked(mean, var, min_deg, max_deg)
        assert got.shape == expected.shape
        assert torch.equal(got, expected)
