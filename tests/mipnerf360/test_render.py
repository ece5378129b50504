"""mipnerf360.internal.render: behaviour the golden cases do not pin down (gradients, edge cases)."""

import pytest
import torch

from mipnerf360.internal import render


def _rays(n_rays=5, n_samples=6, seed=0):
    """Random rays with sorted positive distances: directions [R, 3], tdist [R, S+1], radii [R, 1]."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_rays, 3, generator=g)
    tdist = torch.sort(0.5 + 3 * torch.rand(n_rays, n_samples + 1, generator=g), dim=-1).values
    radii = 0.01 + 0.01 * torch.rand(n_rays, 1, generator=g)
    return directions, tdist, radii


@pytest.mark.parametrize("ray_shape", ["cone", "cylinder"])
def test_diag_covariance_is_the_diagonal_of_the_full_one(ray_shape):
    directions, tdist, radii = _rays()
    origins = torch.randn(directions.shape)
    means_full, covs_full = render.cast_rays(tdist, origins, directions, radii, ray_shape, diag=False)
    means_diag, covs_diag = render.cast_rays(tdist, origins, directions, radii, ray_shape, diag=True)
    torch.testing.assert_close(means_full, means_diag)
    torch.testing.assert_close(torch.diagonal(covs_full, dim1=-2, dim2=-1), covs_diag)
    # A covariance is symmetric positive definite.
    torch.testing.assert_close(covs_full, covs_full.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(covs_full) > 0).all()


def test_stable_frustum_moments_match_the_raw_formulas():
    directions, tdist, radii = _rays()
    d, t0, t1 = directions.double(), tdist[..., :-1].double(), tdist[..., 1:].double()
    stable = render.conical_frustum_to_gaussian(d, t0, t1, radii.double(), diag=False, stable=True)
    raw = render.conical_frustum_to_gaussian(d, t0, t1, radii.double(), diag=False, stable=False)
    for a, b in zip(stable, raw):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_cast_rays_rejects_unknown_shapes():
    directions, tdist, radii = _rays()
    with pytest.raises(ValueError, match="cone"):
        render.cast_rays(tdist, torch.zeros_like(directions), directions, radii, "sphere")


def test_lift_gaussian_zero_direction_has_finite_covariance():
    d = torch.zeros(2, 3)
    t = torch.ones(2, 4)
    mean, cov = render.lift_gaussian(d, t, t, t, diag=False)
    assert torch.isfinite(cov).all() and torch.isfinite(mean).all()


def test_alpha_weights_gradients_are_finite_with_an_opaque_background():
    directions, tdist, _ = _rays()
    density = torch.rand(tdist.shape[0], tdist.shape[1] - 1, requires_grad=True)
    weights, alpha, trans = render.compute_alpha_weights(density, tdist, directions, opaque_background=True)
    # The last interval absorbs everything that reaches it.
    torch.testing.assert_close(alpha[..., -1], torch.ones_like(alpha[..., -1]))
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[0]))
    (grad,) = torch.autograd.grad(weights[..., :-1].sum() + trans.sum(), density)
    assert torch.isfinite(grad).all()


def test_alpha_weights_scale_intervals_by_the_direction_norm():
    directions, tdist, _ = _rays()
    density = torch.rand(tdist.shape[0], tdist.shape[1] - 1)
    unit = render.compute_alpha_weights(density, tdist, directions / directions.norm(dim=-1, keepdim=True))
    # Doubling |d| is the same as doubling every interval, or every density.
    scaled = render.compute_alpha_weights(density, tdist, 2 * directions / directions.norm(dim=-1, keepdim=True))
    doubled = render.compute_alpha_weights(2 * density, tdist, directions / directions.norm(dim=-1, keepdim=True))
    for a, b, c in zip(unit, scaled, doubled):
        torch.testing.assert_close(b, c)
    assert not torch.allclose(unit[0], scaled[0])


def test_volumetric_rendering_composites_extras_and_handles_empty_rays():
    _, tdist, _ = _rays(n_rays=3)
    weights = torch.rand(3, tdist.shape[-1] - 1) / tdist.shape[-1]
    weights[0] = 0  # An empty ray, beyond distance 1.
    tdist[0] = torch.linspace(2, 4, tdist.shape[-1])
    rgbs = torch.rand(3, weights.shape[-1], 3)
    normals = torch.randn(3, weights.shape[-1], 3)
    bg = torch.tensor([0.2, 0.4, 0.6])
    t_far = torch.full((3, 1), 10.0)
    out = render.volumetric_rendering(
        rgbs, weights, tdist, bg, t_far, compute_extras=True, extras={"normals": normals, "skip": None}
    )
    torch.testing.assert_close(out["normals"], (weights[..., None] * normals).sum(-2))
    assert "skip" not in out
    # An empty ray shows the background; its log-space mean distance exp(0) = 1 is clipped to its
    # near end; all its weight
    # lies on the added interval [tdist[-1], t_far], so its median is that interval's middle.
    torch.testing.assert_close(out["rgb"][0], bg)
    torch.testing.assert_close(out["distance_mean"][0], tdist[0, 0])
    torch.testing.assert_close(out["distance_median"][0], (tdist[0, -1] + t_far[0, 0]) / 2)
    assert set(render.volumetric_rendering(rgbs, weights, tdist, bg, t_far, False)) == {"rgb"}


def test_render_keeps_float64():
    directions, tdist, radii = _rays()
    means, covs = render.cast_rays(tdist.double(), directions.double(), directions.double(), radii.double(), "cone")
    assert means.dtype == covs.dtype == torch.float64
