"""Session fixtures of the paper-part tests: a 32x32 object360 scene, demo.gin's NeRF trained on it
once with half its rays (1200 steps of 512 rays, 24.7 dB held out), and the sampling ablation
(interest regions vs random) on the same trials (4 test views x 2 perturbed starts). The slow
tests train demo.gin as configured (1024 rays, 25.1 dB) and run its 8 views x 2 starts."""

import dataclasses
import pathlib
import subprocess
import sys

import gin
import numpy as np
import pytest
import torch

REPO = pathlib.Path(__file__).parents[2]
DEMO_GIN = REPO / "inerf" / "configs" / "demo.gin"
SRN_CONF = REPO / "inerf" / "conf" / "exp" / "srn.conf"


def demo_config(scene, ckpt_dir, *bindings):
    """demo.gin for `scene` with checkpoints in ckpt_dir (+ bindings): a utils.Config."""
    from inerf import utils

    gin.clear_config()
    try:
        return utils.parse_config([str(DEMO_GIN)], [
            f"Config.data_dir = '{scene}'", f"Config.ckpt_dir = '{ckpt_dir}'",
            "Config.model_name = 'object360'", f"Config.output_dir = '{ckpt_dir}/out'", *bindings])
    finally:
        gin.clear_config()


@pytest.fixture(scope="session")
def tiny_conf():
    """srn.conf with a small encoder and MLP (HOCON text), so that 101 pose steps take seconds on a CPU."""
    return f"""
include required("{SRN_CONF}")
model {{
    encoder {{ backbone = resnet18, pretrained = False, num_layers = 1 }}
    mlp_coarse {{ n_blocks = 3, d_hidden = 16, combine_layer = 2 }}
    mlp_fine {{ n_blocks = 3, d_hidden = 16, combine_layer = 2 }}
}}
renderer {{ n_coarse = 8, n_fine = 4, n_fine_depth = 2 }}
"""


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """object360 at 32x32: 40 training views on a spiral, 8 test views at 30 degrees elevation."""
    out = tmp_path_factory.mktemp("inerf_scene") / "object360"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "object360", "--res", "32x32",
                    "--views", "40", "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    return str(out)


# What `make test` runs: half of demo.gin's rays and half of its test views (about half the time).
TEST_BINDINGS = ("Config.N_rand = 512", "Config.n_test_images = 4")


def train_demo(scene, ckpt_dir, *bindings):
    """demo.gin (+ bindings) trained on scene: (config, train_nerf metrics)."""
    from inerf import train_nerf

    config = demo_config(scene, ckpt_dir, *bindings)
    torch.manual_seed(0)
    return config, train_nerf.train(config)


@pytest.fixture(scope="session")
def trained(scene, tmp_path_factory):
    """demo.gin's NeRF with TEST_BINDINGS: (config, train_nerf metrics)."""
    return train_demo(scene, tmp_path_factory.mktemp("inerf_ckpt"), *TEST_BINDINGS)


@pytest.fixture(scope="session")
def trained_full(scene, tmp_path_factory):
    """demo.gin's NeRF as configured (the README's table; slow tests only)."""
    return train_demo(scene, tmp_path_factory.mktemp("inerf_ckpt_full"))


def run_ablation(config, n_test_images):
    """{strategy: trials} of interest-region and random sampling from the same start poses."""
    from inerf import nerf_helpers, run

    config = dataclasses.replace(config, n_test_images=n_test_images)
    render_kwargs = nerf_helpers.load_nerf(config)
    images, poses, hwf, i_test, near, far = run.load_observations(config)
    out = {}
    for strategy in ("interest_regions", "random"):
        cfg = dataclasses.replace(config, sampling_strategy=strategy)
        torch.manual_seed(cfg.seed)
        out[strategy] = run.run_trials(cfg, render_kwargs, images, poses, hwf,
                                       i_test[:cfg.n_test_images], near, far,
                                       np.random.default_rng(cfg.seed))
    return config, out


@pytest.fixture(scope="session")
def ablation(trained):
    """The ablation on the test NeRF: (config, {strategy: trials})."""
    return run_ablation(trained[0], n_test_images=trained[0].n_test_images)


@pytest.fixture(scope="session")
def ablation_full(trained_full):
    """demo.gin's ablation as configured, on its NeRF: (config, {strategy: trials})."""
    return run_ablation(trained_full[0], n_test_images=trained_full[0].n_test_images)
