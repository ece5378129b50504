"""Interest points, interest regions and the three pixel samplers (paper section IV-C)."""

import numpy as np
import pytest

from inerf import run, utils


@pytest.fixture(scope="module")
def textured():
    """A 48x64 uint8 image: flat grey with a checkered patch (corners only there)."""
    img = np.full((48, 64, 3), 128, np.uint8)
    tile = (np.indices((16, 24)).sum(0) // 4 % 2 * 255).astype(np.uint8)
    img[16:32, 30:54] = tile[..., None]
    return img


@pytest.mark.parametrize("detector", ["sift", "orb"])
def test_interest_points_lie_on_the_texture_sorted_and_unique(textured, detector):
    poi = utils.find_POI(textured, detector=detector)
    assert len(poi) > 3 and poi.dtype.kind == "i"
    assert len(np.unique(poi, axis=0)) == len(poi)
    assert np.array_equal(poi, poi[np.lexsort((poi[:, 1], poi[:, 0]))])
    assert np.all((poi[:, 0] >= 26) & (poi[:, 0] <= 57) & (poi[:, 1] >= 12) & (poi[:, 1] <= 35))


def test_interest_regions_are_the_dilated_points():
    poi = np.array([[10, 20]])
    region = utils.interest_regions(poi, 40, 50, kernel_size=5, dil_iter=3)
    # Three 5x5 dilations grow one pixel into a 13x13 square.
    assert len(region) == 13 * 13
    assert region[:, 0].min() == 4 and region[:, 0].max() == 16
    assert region[:, 1].min() == 14 and region[:, 1].max() == 26


def test_samplers_draw_from_their_pools(textured):
    rng = np.random.default_rng(0)
    rand = run.PixelSampler("random", textured).sample(rng, 500)
    assert len(np.unique(rand, axis=0)) == 500
    regions = run.PixelSampler("interest_regions", textured)
    batch = regions.sample(rng, 100)
    pool = {tuple(p) for p in regions.regions}
    assert all(tuple(p) in pool for p in batch)
    points = run.PixelSampler("interest_points", textured)
    batch = points.sample(rng, len(points.poi) + 50)
    assert {tuple(p) for p in points.poi} <= {tuple(p) for p in batch}
    assert len(np.unique(batch, axis=0)) == len(batch)


def test_a_batch_larger_than_the_pool_takes_the_pool(textured):
    sampler = run.PixelSampler("interest_regions", textured)
    batch = sampler.sample(np.random.default_rng(0), 10 ** 6)
    assert len(batch) == len(sampler.regions)


def test_unknown_strategy_and_textureless_images_are_clear_errors():
    flat = np.full((32, 32, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="sampling_strategy"):
        run.PixelSampler("center", flat)
    with pytest.raises(ValueError, match="no sift interest points"):
        run.PixelSampler("interest_regions", flat)
