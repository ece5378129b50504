"""Colormaps, mattes, percentiles and the visualization suite."""

import pytest
import torch

from mipnerf360.internal import utils, vis

EPS = torch.finfo(torch.float32).eps


def test_turbo_matches_the_published_table_ends():
    # First, middle and last entries of Google's turbo table (as in matplotlib).
    x = torch.tensor([0.0, 0.5, 1.0])
    expected = torch.tensor([[0.18995, 0.07176, 0.23217],
                             [0.64362, 0.98999, 0.23356],
                             [0.47960, 0.01583, 0.01055]])
    torch.testing.assert_close(vis.turbo(x), expected, atol=1.5 / 255, rtol=0)


def test_gray_quantizes_like_a_256_entry_table():
    x = torch.tensor([0.0, 0.5, 1 / 256 - 1e-4, 1.0, -1.0, 2.0])
    expected = torch.tensor([0.0, 128 / 255, 0.0, 1.0, 0.0, 1.0])
    torch.testing.assert_close(vis.gray(x), expected[:, None].expand(6, 3))


def test_matte_checkerboard():
    img = torch.full((16, 16, 3), 0.3)
    torch.testing.assert_close(vis.matte(img, torch.ones(16, 16)), img)
    bg = vis.matte(img, torch.zeros(16, 16))
    assert bg[0, 0, 0] == 0.8 and bg[7, 7, 0] == 0.8 and bg[15, 15, 0] == 0.8
    assert bg[0, 8, 0] == 1.0 and bg[8, 0, 0] == 1.0
    half = vis.matte(img, torch.full((16, 16), 0.5))
    torch.testing.assert_close(half[0, 0], torch.full((3,), 0.3 * 0.5 + 0.8 * 0.5))


def test_weighted_percentile_ignores_zero_weights():
    x = torch.tensor([10.0, 1.0, 5.0, 3.0])
    w = torch.tensor([0.0, 1.0, 1.0, 1.0])
    lo, mid, hi = vis.weighted_percentile(x, w, [0, 50, 100])
    # Cumulative weights of the sorted values [1, 3, 5, 10] are [1, 2, 3, 3].
    assert hi == 5.0 and lo == 1.0
    torch.testing.assert_close(mid, torch.tensor(1.0 + 0.5 * 2.0))


def test_weighted_percentile_with_fewer_weights_than_values():
    # The depth triplet passes [H, W, 3] values with [H, W] weights; the weights index is clamped.
    x = torch.tensor([[[3.0, 1.0, 2.0]]])
    lo, hi = vis.weighted_percentile(x, torch.ones(1, 1), [0, 100])
    assert (lo, hi) == (1.0, 3.0)


def test_visualize_cmap_fixed_and_automatic_range():
    value = torch.linspace(1, 2, 12).reshape(3, 4)
    ones = torch.ones(3, 4)
    fixed = vis.visualize_cmap(value, ones, vis.gray, lo=1.5, hi=2.5)
    torch.testing.assert_close(fixed, vis.gray(torch.clamp(value - 1.5, 0, 1)))
    auto = vis.visualize_cmap(value, ones, vis.gray, percentile=100)
    torch.testing.assert_close(auto, vis.gray((value - 1 + EPS) / (1 + 2 * EPS)))
    # A curve is applied to lo and hi too: log spacing of 1..e maps to a linear ramp.
    curved = vis.visualize_cmap(torch.exp(value - 1), ones, vis.gray, lo=1.0001,
                                hi=torch.e, curve_fn=torch.log)
    torch.testing.assert_close(curved, vis.gray((value - 1 - 1e-4) / (1 - 1e-4)).clamp(0, 1))


def test_visualize_cmap_modulus_nan_and_matte():
    value = torch.tensor([[0.25, 1.25], [float('nan'), 2.75]])
    out = vis.visualize_cmap(value, torch.ones(2, 2), vis.gray, modulus=1.0)
    torch.testing.assert_close(out[0, 0], out[0, 1])
    torch.testing.assert_close(out[1, 1], vis.gray(torch.tensor(0.75)))
    torch.testing.assert_close(out[1, 0], torch.zeros(3))  # NaN: matplotlib's black.
    clipped = vis.visualize_cmap(value, torch.ones(2, 2), vis.gray, lo=0.5, hi=1.5,
                                 matte_background=False)
    torch.testing.assert_close(clipped[1, 0], torch.zeros(3))  # NaN shows as the low end.
    matted = vis.visualize_cmap(value, torch.zeros(2, 2), vis.gray, lo=0.5, hi=1.5)
    torch.testing.assert_close(matted, torch.full((2, 2, 3), 0.8))


def test_visualize_cmap_rgb_input_checks_channels():
    with pytest.raises(ValueError, match='3 channels'):
        vis.visualize_cmap(torch.rand(2, 2, 2), torch.ones(2, 2), None)
    rgb = vis.visualize_cmap(torch.rand(2, 2, 3), torch.ones(2, 2), None)
    assert rgb.shape == (2, 2, 3)


def test_visualize_coord_mod_wraps_cells():
    coords = torch.tensor([[[-1.0, 0.0, 1.0], [1.0, 2.0, 3.0]]])
    out = vis.visualize_coord_mod(coords, torch.ones(1, 2))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]]))


def test_visualize_rays_single_interval():
    # One ray, one level, one red interval covering [0.25, 0.5] with weight 1.
    dist = [torch.tensor([[0.25, 0.5]])]
    weights = [torch.tensor([[1.0]])]
    rgbs = [torch.tensor([[[1.0, 0.0, 0.0]]])]
    img, alpha = vis.visualize_rays(dist, (0, 1), weights, rgbs, resolution=8)
    # resolution // (rays * levels + 1) = 4 copies of the row, then the blank row is dropped.
    assert img.shape == (4, 8, 3) and alpha.shape == (4, 8)
    expected_alpha = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0.])
    torch.testing.assert_close(alpha, expected_alpha.expand(4, 8))
    red = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(img[:, 2], red.expand(4, 3))
    torch.testing.assert_close(img[:, 0], torch.full((4, 3), 0.8))


def test_visualize_rays_bands_accumulate_and_renormalize():
    dist = [torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]), torch.tensor([[0.0, 1.0]] * 2)]
    weights = [torch.tensor([[0.2, 0.3], [0.1, 0.1]]), torch.tensor([[0.5], [0.25]])]
    rgbs = [torch.rand(2, 2, 3), torch.rand(2, 1, 3)]
    img, alpha = vis.visualize_rays(dist, (0, 1), weights, rgbs, resolution=10)
    rep = 10 // (2 * 2 + 1)
    assert img.shape == (2 * (2 * rep + 1) - 1, 10, 3)
    # Ray 0: rep rows of level 0, rep rows of level 1, a blank row; then ray 1.
    torch.testing.assert_close(alpha[0, :5], torch.full((5,), 0.2))
    torch.testing.assert_close(alpha[rep, :], torch.full((10,), 0.5))
    torch.testing.assert_close(alpha[2 * rep], torch.zeros(10))
    torch.testing.assert_close(alpha[2 * rep + 1, 5:], torch.full((5,), 0.1))
    _, acc_alpha = vis.visualize_rays(dist, (0, 1), weights, rgbs, accumulate=True,
                                      resolution=10)
    torch.testing.assert_close(acc_alpha[0, 5:], torch.full((5,), 0.5))
    _, norm_alpha = vis.visualize_rays(dist, (0, 1), weights, rgbs, renormalize=True,
                                       resolution=10)
    assert norm_alpha.max() == 1.0
    torch.testing.assert_close(norm_alpha, alpha / 0.5)


def _rendering(h=6, w=5, num_rays=2, samples=(5, 5, 3)):
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=gen)
    rendering = {
        'rgb': rand(h, w, 3), 'acc': rand(h, w),
        'distance_mean': rand(h, w) + 1, 'distance_median': rand(h, w) + 1,
        'distance_percentile_5': rand(h, w) + 0.5, 'distance_percentile_95': rand(h, w) + 2,
        'ray_sdist': [torch.sort(rand(num_rays, n + 1), dim=-1).values for n in samples],
        'ray_weights': [rand(num_rays, n) / n for n in samples],
        'ray_rgbs': [rand(num_rays, n, 3) * 1.2 for n in samples],
        'normals': rand(h, w, 3) * 2 - 1, 'normals_pred': rand(h, w, 3) * 2 - 1,
        'roughness': rand(h, w, 1), 'rgb_cc': rand(h, w, 3),
    }
    rays = utils.Rays(*(rand(h, w, k) for k in (3, 3, 3, 1, 2, 1, 1, 1, 1)))
    return rendering, rays


def test_visualize_suite_outputs():
    rendering, rays = _rendering()
    rendering['distance_mean'][0, 0] = float('nan')  # A ray that hit nothing.
    out = vis.visualize_suite(rendering, rays)
    assert set(out) == {'color', 'acc', 'color_matte', 'depth_mean', 'depth_median',
                        'depth_triplet', 'coords_mod', 'ray_colors', 'ray_weights',
                        'color_corrected', 'normals', 'normals_pred', 'roughness'}
    for key in ['color_matte', 'depth_mean', 'depth_median', 'depth_triplet', 'normals']:
        assert out[key].shape == (6, 5, 3)
        assert ((out[key] >= 0) & (out[key] <= 1)).all(), key
    assert out['acc'][0, 0] == 0 and out['acc'][0, 1] == rendering['acc'][0, 1]
    torch.testing.assert_close(out['color_corrected'], rendering['rgb_cc'])
    assert out['ray_colors'].shape == out['ray_weights'].shape
    assert out['ray_colors'].shape[1] == 2048
    torch.testing.assert_close(out['normals'], vis.matte(rendering['normals'] / 2 + 0.5, out['acc']))


def test_visualize_suite_depth_near_is_the_top_of_turbo():
    rendering, rays = _rendering()
    rendering['acc'] = torch.ones(6, 5)
    out = vis.visualize_suite(rendering, rays)['depth_mean'].reshape(-1, 3)
    dist = rendering['distance_mean'].reshape(-1)
    top, bottom = vis.turbo(torch.tensor(1.0)), vis.turbo(torch.tensor(0.0))
    near, far = out[dist.argmin()], out[dist.argmax()]
    assert (near - top).norm() < 0.05 and (far - bottom).norm() < 0.05
