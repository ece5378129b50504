"""mipnerf.internal.math: behaviour the golden cases do not pin down (random draws, gradients, scalars)."""

import math as pymath

import pytest
import torch

from common import metrics
from mipnerf.internal import math


def test_safe_sin_cos_reduce_only_huge_arguments_and_keep_gradient():
    x = torch.tensor([-1e4, -3.0, 0.5, 314.0, 315.0, 1e5], dtype=torch.float64, requires_grad=True)
    t = 100 * pymath.pi
    expected = torch.where(x.abs() < t, x, torch.remainder(x, t))
    torch.testing.assert_close(math.safe_sin(x), torch.sin(expected))
    torch.testing.assert_close(math.safe_cos(x), torch.cos(expected))
    (grad,) = torch.autograd.grad(math.safe_sin(x).sum(), x)
    torch.testing.assert_close(grad, torch.cos(expected))


def test_psnr_mse_round_trip_and_avg_error_elementwise():
    mse = torch.tensor([1e-4, 1e-2, 0.5])
    psnr = math.mse_to_psnr(mse)
    torch.testing.assert_close(psnr, torch.tensor([40.0, 20.0, 10 * pymath.log10(2)]))
    torch.testing.assert_close(math.psnr_to_mse(psnr), mse)
    ssim = torch.tensor([0.99, 0.9, 0.5])
    lpips = torch.tensor([0.01, 0.1, 0.4])
    avg = math.compute_avg_error(psnr, ssim, lpips)
    expected = (mse * torch.sqrt(1 - ssim) * lpips) ** (1 / 3)
    torch.testing.assert_close(avg, expected)
    assert math.compute_avg_error(30.0, 0.95, 0.05).shape == ()


def test_compute_ssim_map_averages_to_ssim_and_identity_is_one():
    gen = torch.Generator().manual_seed(0)
    img0 = torch.rand(2, 20, 16, 3, generator=gen)
    img1 = (img0 + 0.1 * torch.randn(2, 20, 16, 3, generator=gen)).clamp(0, 1)
    ssim_map = math.compute_ssim(img0, img1, 1.0, return_map=True)
    assert ssim_map.shape == (2, 10, 6, 3)
    ssim = math.compute_ssim(img0, img1, 1.0)
    torch.testing.assert_close(ssim, ssim_map.mean(dim=(-3, -2, -1)))
    torch.testing.assert_close(ssim, metrics.ssim(img0, img1))
    torch.testing.assert_close(math.compute_ssim(img0, img0, 1.0), torch.ones(2))
    assert (ssim < 1).all()


def test_srgb_curves_invert_each_other_with_finite_gradients():
    linear = torch.linspace(0, 1, 101, dtype=torch.float64, requires_grad=True)
    srgb = math.linear_to_srgb(linear)
    torch.testing.assert_close(math.srgb_to_linear(srgb), linear, atol=1e-6, rtol=0)
    (grad,) = torch.autograd.grad(srgb.sum(), linear)
    assert torch.isfinite(grad).all()
    srgb_in = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    (grad,) = torch.autograd.grad(math.srgb_to_linear(srgb_in).sum(), srgb_in)
    assert torch.isfinite(grad).all()


def test_learning_rate_decay_scalar_steps():
    kwargs = dict(
        lr_init=5e-4, lr_final=5e-6, max_steps=1000, lr_delay_steps=100, lr_delay_mult=0.01
    )
    assert math.learning_rate_decay(0, **kwargs).item() == pytest.approx(5e-6)
    assert math.learning_rate_decay(100, **kwargs).item() == pytest.approx(5e-4 * 10 ** (-0.2))
    assert math.learning_rate_decay(500, 5e-4, 5e-6, 1000).item() == pytest.approx(5e-5)
    # Past max_steps the rate stays at lr_final.
    assert math.learning_rate_decay(5000, 5e-4, 5e-6, 1000).item() == pytest.approx(5e-6)


def _pdf_inputs():
    bins = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 5.0, 6.0]])
    weights = torch.tensor([[0.0, 3.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    return bins, weights


def test_sorted_piecewise_constant_pdf_random_draws_follow_the_pdf():
    bins, weights = _pdf_inputs()
    n = 2000
    draw = lambda seed: math.sorted_piecewise_constant_pdf(  # noqa: E731
        torch.Generator().manual_seed(seed), bins, weights, n, True
    )
    samples = draw(1)
    torch.testing.assert_close(samples, draw(1))
    assert not torch.equal(samples, draw(2))
    assert samples.shape == (2, n)
    assert (samples[:, 1:] >= samples[:, :-1]).all()
    # Row 0: no mass in [0, 1) or [3, 4]; 3/4 of it in [1, 2).
    assert ((samples[0] >= 1) & (samples[0] <= 3)).all()
    assert ((samples[0] < 2).float().mean() - 0.75).abs() < 0.01
    # Row 1: equal weights, so each quarter of the samples lies in one bin.
    counts = torch.histogram(samples[1], bins=bins[1]).hist
    torch.testing.assert_close(counts, torch.full((4,), n / 4))


def test_sorted_piecewise_constant_pdf_zero_weights_are_uniform_and_finite():
    bins = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    samples = math.sorted_piecewise_constant_pdf(None, bins, torch.zeros(1, 3), 5, False)
    assert torch.isfinite(samples).all()
    # Zero weights are padded equally: the CDF is uniform over bins, not over t.
    u = torch.linspace(0, 1 - torch.finfo(torch.float32).eps, 5)
    expected = torch.tensor([0.0, 0.75, 1.5, 2.0 + 0.25 * 2, 2.0 + (u[4] * 3 - 2) * 2])
    torch.testing.assert_close(samples[0], expected)
