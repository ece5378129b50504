"""depth_mipnerf.utils.metrics.ssim against the fork's own utils/metrics.ssim.

Reference values: AlexSheldrick/mipnerf_pl@depth-mipnerf (e12007d) utils/metrics.py, run outside the
project (torch 2.13 CPU) on the images below: numpy RandomState(0); a = rand(1, 3, 24, 32),
b = clip(a + 0.1 randn(1, 3, 24, 32), 0, 1), then c, d = rand(2, 3, 16, 16) each, all float32;
`ssim(x, y, 11, 'mean')` and the map of `ssim(a, b, 11, 'none')` at [0, 1, 0, 0] and [0, 2, 12, 16].
"""

import json
import pathlib
import re

import gin
import numpy as np
import pytest
import torch

from common import metrics as common_metrics
from depth_mipnerf import eval as dm_eval
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.utils import metrics


@pytest.fixture(scope="module")
def images():
    rs = np.random.RandomState(0)
    a = rs.rand(1, 3, 24, 32).astype(np.float32)
    b = np.clip(a + 0.1 * rs.randn(1, 3, 24, 32), 0, 1).astype(np.float32)
    c = rs.rand(2, 3, 16, 16).astype(np.float32)
    d = rs.rand(2, 3, 16, 16).astype(np.float32)
    return [torch.from_numpy(x) for x in (a, b, c, d)]


def test_ssim_matches_the_forks(images):
    a, b, c, d = images
    assert float(metrics.ssim(a, b, 11, 'mean')) == pytest.approx(0.9567263722419739, abs=2e-7)
    assert float(metrics.ssim(c, d, 11, 'mean')) == pytest.approx(0.24534136056900024, abs=2e-7)
    ssim_map = metrics.ssim(a, b, 11, 'none')
    assert ssim_map.shape == a.shape
    # A corner (where the zero padding enters the statistics) and an inner pixel.
    assert float(ssim_map[0, 1, 0, 0]) == pytest.approx(0.9846943020820618, abs=2e-7)
    assert float(ssim_map[0, 2, 12, 16]) == pytest.approx(0.9755524396896362, abs=2e-7)
    assert float(metrics.ssim(a, b, 11, 'sum')) == pytest.approx(float(ssim_map.sum()), rel=1e-6)


def test_forks_ssim_differs_from_mipnerfs(images):
    """The two variants score the same pair differently (zero padding over the whole image against
    'valid' filtering), which is why eval.py reports both."""
    a, b = images[:2]
    mipnerf = float(common_metrics.ssim(a[0].permute(1, 2, 0), b[0].permute(1, 2, 0)))
    assert abs(mipnerf - float(metrics.ssim(a, b, 11, 'mean'))) > 1e-3


def test_bad_input_is_named(images):
    a, b = images[:2]
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        metrics.ssim(a[0], b[0], 11)
    with pytest.raises(ValueError, match="reduction"):
        metrics.ssim(a, b, 11, 'max')


def test_protocol_defaults_match_the_readme_table():
    """The `protocol` block eval writes at lego.gin equals the README's "Evaluation protocol" table."""
    readme = (pathlib.Path(__file__).parents[2] / "depth_mipnerf" / "README.md").read_text()
    section = readme.split("## Evaluation protocol")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([\w.]+)` \| `(.+?)` \|", section, re.M)
    assert len(rows) == 8
    gin.clear_config()
    try:
        _, sections = config_lib.parse(["configs/lego.gin"], [])
    finally:
        gin.clear_config()
    protocol = dm_eval.protocol(sections, "test")
    for field, value in rows:
        assert protocol[field] == json.loads(value.replace("\\|", "|")), field
