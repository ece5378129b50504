"""mipnerf360.internal.image beyond the golden cases: inverses, gradients, numpy path, colour correction."""

import numpy as np
import pytest
import torch

from common import metrics
from mipnerf360.internal import image


def test_psnr_mse_and_ssim_dssim_conversions_invert_each_other():
    psnr = torch.linspace(5, 50, 10, dtype=torch.float64)
    torch.testing.assert_close(image.mse_to_psnr(image.psnr_to_mse(psnr)), psnr)
    torch.testing.assert_close(image.psnr_to_mse(torch.tensor(20.0)), torch.tensor(0.01))
    ssim = torch.linspace(-1, 1, 10)
    torch.testing.assert_close(image.dssim_to_ssim(image.ssim_to_dssim(ssim)), ssim)


def test_srgb_curves_invert_each_other_with_finite_gradients():
    x = torch.linspace(0, 1, 1001, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(
        image.linear_to_srgb(image.srgb_to_linear(x)), x, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        image.srgb_to_linear(image.linear_to_srgb(x)), x, rtol=1e-5, atol=1e-5
    )
    for fn in (image.linear_to_srgb, image.srgb_to_linear):
        (grad,) = torch.autograd.grad(fn(x).sum(), x)
        assert torch.all(torch.isfinite(grad)) and torch.all(grad > 0)


@pytest.mark.parametrize("fn", [image.linear_to_srgb, image.srgb_to_linear])
def test_srgb_curves_take_numpy_with_xnp(fn):
    x = np.linspace(0, 1, 101, dtype=np.float32)
    out = fn(x, xnp=np)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, fn(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_downsample_averages_blocks_and_rejects_uneven_factors():
    img = torch.arange(4 * 6 * 2, dtype=torch.float32).reshape(4, 6, 2)
    out = image.downsample(img, 2)
    assert out.shape == (2, 3, 2)
    torch.testing.assert_close(out[0, 0], img[:2, :2].mean((0, 1)))
    np.testing.assert_allclose(image.downsample(img.numpy(), 2), out.numpy())
    with pytest.raises(ValueError, match="evenly divide"):
        image.downsample(img, 4)


def test_color_correct_recovers_a_quadratic_colour_transform():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(32, 24, 3, generator=g, dtype=torch.float64) * 0.8 + 0.1
    # ref is a quadratic polynomial of img's channels, inside [0, 1]: exactly what the fit models.
    ref = 0.05 + 0.6 * img + 0.2 * img**2 + 0.1 * img * img[..., [1, 2, 0]]
    corrected = image.color_correct(img, ref)
    assert corrected.shape == img.shape
    torch.testing.assert_close(corrected, ref, rtol=0, atol=1e-9)
    # Clipped reference pixels are left out of the fit instead of skewing it.
    ref_clipped = ref.clone()
    ref_clipped[:4] = 1.0
    torch.testing.assert_close(
        image.color_correct(img, ref_clipped)[4:], ref[4:], rtol=0, atol=1e-9
    )
    with pytest.raises(ValueError, match="channels must match"):
        image.color_correct(img, ref[..., :2])


def test_metric_harness_reports_psnr_and_multinerf_ssim():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(20, 24, 3, generator=g)
    pred = torch.clamp(gt + 0.05 * torch.randn(20, 24, 3, generator=g), 0, 1)
    out = image.MetricHarness()(pred, gt, name_fn=lambda s: "test_" + s)
    assert set(out) == {"test_psnr", "test_ssim"} and all(
        isinstance(v, float) for v in out.values()
    )
    assert out["test_psnr"] == pytest.approx(
        float(-10 * torch.log10(torch.mean((pred - gt) ** 2))), rel=1e-5
    )
    assert out["test_ssim"] == pytest.approx(float(metrics.ssim(pred, gt)))
    assert image.MetricHarness()(gt, gt)["ssim"] == pytest.approx(1.0)
