"""mipnerf.internal.mip: behaviour the golden cases do not pin down (random sampling, gradients, identities)."""

import pytest
import torch

from mipnerf.internal import mip


def _rays(batch=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    origins = torch.randn(batch, 3, generator=gen)
    directions = torch.randn(batch, 3, generator=gen)
    radii = 0.01 + 0.01 * torch.rand(batch, 1, generator=gen)
    return origins, directions, radii


def test_pos_enc_is_sin_and_cos_of_scaled_inputs():
    x = torch.randn(4, 3, dtype=torch.float64)
    enc = mip.pos_enc(x, 1, 3, append_identity=True)
    scaled = torch.cat([2 * x, 4 * x], dim=-1)
    torch.testing.assert_close(enc, torch.cat([x, torch.sin(scaled), torch.cos(scaled)], dim=-1))


def test_integrated_pos_enc_zero_variance_is_pos_enc_and_full_matches_diag():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 6, 3, generator=gen, dtype=torch.float64)
    var = torch.rand(4, 6, 3, generator=gen, dtype=torch.float64)
    zero = torch.zeros_like(var)
    torch.testing.assert_close(
        mip.integrated_pos_enc((mean, zero), 0, 5), mip.pos_enc(mean, 0, 5, append_identity=False)
    )
    # A full covariance whose off-diagonal terms vanish gives the diagonal result.
    torch.testing.assert_close(
        mip.integrated_pos_enc((mean, torch.diag_embed(var)), 0, 5, diag=False),
        mip.integrated_pos_enc((mean, var), 0, 5, diag=True),
    )
    # Large variance damps the features of fine scales towards 0.
    enc = mip.integrated_pos_enc((mean, torch.full_like(var, 10.0)), 0, 5)
    assert enc[..., 6:15].abs().max() < 1e-8


def test_expected_sin_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([0.3, 2.0, -1.0], dtype=torch.float64)
    var = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    z = x + var.sqrt() * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    mean, variance = mip.expected_sin(x, var)
    torch.testing.assert_close(mean, torch.sin(z).mean(0), atol=5e-3, rtol=0)
    torch.testing.assert_close(variance, torch.sin(z).var(0), atol=5e-3, rtol=0)


def test_lift_gaussian_full_cov_has_t_var_along_d_and_r_var_across():
    d = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)  # |d| = 3
    t_mean = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    t_var = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    r_var = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    mean, cov = mip.lift_gaussian(d, t_mean, t_var, r_var, diag=False)
    torch.testing.assert_close(mean, t_mean[..., None] * d[:, None])
    across = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)  # perpendicular to d
    torch.testing.assert_close(cov @ d[0], (t_var * 9)[..., None] * d[0])
    torch.testing.assert_close(cov @ across, r_var[..., None] * across)
    _, cov_diag = mip.lift_gaussian(d, t_mean, t_var, r_var, diag=True)
    torch.testing.assert_close(cov_diag, torch.diagonal(cov, dim1=-2, dim2=-1))


def test_stable_and_raw_frustum_moments_agree_in_float64():
    d = torch.tensor([[0.3, -0.4, 1.2]], dtype=torch.float64)
    t = torch.linspace(2.0, 6.0, 9, dtype=torch.float64)[None]
    radius = torch.tensor([[0.02]], dtype=torch.float64)
    stable = mip.conical_frustum_to_gaussian(d, t[:, :-1], t[:, 1:], radius, False, stable=True)
    raw = mip.conical_frustum_to_gaussian(d, t[:, :-1], t[:, 1:], radius, False, stable=False)
    for a, b in zip(stable, raw):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_cast_rays_rejects_unknown_shape():
    origins, directions, radii = _rays()
    with pytest.raises(ValueError, match="ray_shape"):
        mip.cast_rays(torch.rand(5, 4), origins, directions, radii, "sphere")


@pytest.mark.parametrize("lindisp", [False, True])
def test_sample_along_rays_randomized_stays_in_strata(lindisp):
    origins, directions, radii = _rays()
    near, far = torch.full((5, 1), 2.0), torch.full((5, 1), 6.0)
    args = (origins, directions, radii, 16, near, far)

    def sample(key, randomized):
        return mip.sample_along_rays(key, *args, randomized, lindisp, "cone")

    grid, _ = sample(None, False)
    t_vals, (means, covs) = sample(torch.Generator().manual_seed(3), True)
    again, _ = sample(torch.Generator().manual_seed(3), True)
    torch.testing.assert_close(t_vals, again)
    assert t_vals.shape == (5, 17) and means.shape == (5, 16, 3) and covs.shape == (5, 16, 3)
    mids = 0.5 * (grid[:, 1:] + grid[:, :-1])
    lower = torch.cat([grid[:, :1], mids], -1)
    upper = torch.cat([mids, grid[:, -1:]], -1)
    assert ((t_vals >= lower) & (t_vals <= upper)).all()
    assert not torch.equal(t_vals, grid)
    if lindisp:  # evenly spaced in disparity
        torch.testing.assert_close(
            1 / grid, (1 / near) + (1 / far - 1 / near) * torch.linspace(0, 1, 17)
        )


def test_resample_along_rays_randomized_and_stop_grad():
    origins, directions, radii = _rays()
    t_vals = torch.linspace(2.0, 6.0, 9).expand(5, 9)
    weights = torch.rand(5, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)

    def resample(key, randomized, stop_grad):
        return mip.resample_along_rays(
            key, origins, directions, radii, t_vals, weights, randomized, "cone", stop_grad, 0.01
        )

    new_t, (means, covs) = resample(torch.Generator().manual_seed(0), True, True)
    assert new_t.shape == (5, 9) and means.shape == (5, 8, 3)
    assert ((new_t >= 2.0) & (new_t <= 6.0)).all() and (new_t[:, 1:] >= new_t[:, :-1]).all()
    assert not new_t.requires_grad
    torch.testing.assert_close(new_t, resample(torch.Generator().manual_seed(0), True, True)[0])
    new_t, _ = resample(None, False, False)
    (grad,) = torch.autograd.grad(new_t.sum(), weights)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_volumetric_rendering_empty_ray_depth_is_near_with_finite_gradients():
    t_vals = torch.linspace(2.0, 6.0, 5).expand(2, 5)
    rgb = torch.rand(2, 4, 3)
    density = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 50.0, 0.0, 0.0]])[..., None]
    density.requires_grad_(True)
    dirs = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    comp_rgb, distance, acc, weights = mip.volumetric_rendering(rgb, density, t_vals, dirs, True)
    assert acc[0] == 0 and distance[0] == 2.0  # empty ray: the near bound, as in the original
    torch.testing.assert_close(distance[1], torch.tensor(3.5))  # opaque second segment, mid 3.5
    torch.testing.assert_close(comp_rgb[0], torch.ones(3))  # white background shows through
    torch.testing.assert_close(comp_rgb[1], rgb[1, 1], atol=1e-6, rtol=0)
    (grad,) = torch.autograd.grad(distance.sum() + comp_rgb.sum(), density)
    assert torch.isfinite(grad).all()
    # |dirs| scales the segment lengths: density 0.1 over length 1 * 2.
    _, _, acc, _ = mip.volumetric_rendering(
        rgb[:1], torch.full((1, 4, 1), 0.1), t_vals[:1], dirs[:1], False
    )
    torch.testing.assert_close(acc, 1 - torch.exp(torch.tensor([-0.8])))


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_full_covariance_ipe_is_float32_exact_under_tf32_flags(device):
    """The basis projection of integrated_pos_enc(diag=False) is math.matmul (exact float32), so
    TF32 (10-bit mantissas: an error of ~0.1 in y = 2^7 x at |x| ~ 2) cannot reach it."""
    gen = torch.Generator().manual_seed(0)
    mean = 4 * torch.rand(64, 8, 3, generator=gen, dtype=torch.float64) - 2
    a = torch.randn(64, 8, 3, 3, generator=gen, dtype=torch.float64)
    cov = 1e-4 * a @ a.transpose(-1, -2)  # with off-diagonal terms, which the encoding ignores
    # Float64 reference: the basis columns are 2^l e_i, so y = 2^l x_i and var = 4^l cov_ii.
    scales = 2.0 ** torch.arange(0, 8, dtype=torch.float64)
    y = (mean[..., None, :] * scales[:, None]).flatten(-2)
    var = (torch.diagonal(cov, dim1=-2, dim2=-1)[..., None, :] * scales[:, None] ** 2).flatten(-2)
    expected = torch.exp(-0.5 * torch.cat([var, var], -1)) * torch.sin(torch.cat([y, y + torch.pi / 2], -1))

    flags = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    try:
        enc = mip.integrated_pos_enc((mean.float().to(device), cov.float().to(device)), 0, 8, diag=False)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = flags[0]
        torch.set_float32_matmul_precision(flags[1])
    # float32 rounding: of the inputs (|y| < 256: 1.5e-5) and of y + pi / 2 and sin (~3e-5).
    torch.testing.assert_close(enc.double().cpu(), expected, rtol=0, atol=1e-4)
