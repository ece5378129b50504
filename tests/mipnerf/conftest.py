"""Fixtures shared by test_train_eval.py and test_claim.py: one multi-scale synthetic scene, and
demo.gin trained on it with and without integrated positional encoding, each scored by eval."""

import pathlib
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import torch

from common import dist

REPO = pathlib.Path(__file__).parents[2]


def train_and_eval(scene, run_dir, bindings):
    """Trains demo.gin (+ bindings) on scene in this process, then `eval --scale 4`."""
    from mipnerf import eval as mip_eval
    from mipnerf import train

    gin.clear_config()
    config = train.parse_config(["configs/demo.gin"], bindings)
    torch.manual_seed(train.TORCH_SEED)
    np.random.seed(train.NUMPY_SEED)
    info = dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), is_main=True)
    start = time.time()
    train.train(config, str(run_dir), scene, info)
    train_seconds = time.time() - start
    gin.clear_config()
    eval_dir = run_dir / "eval"
    metrics = mip_eval.evaluate(str(run_dir), scene, str(eval_dir), scale=4, device="cpu")
    return {"run_dir": str(run_dir), "eval_dir": str(eval_dir), "scene": scene,
            "metrics": metrics, "train_seconds": train_seconds}


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """A multi-scale (64, 32, 16, 8 px) object360 scene: 40 training and 8 test views."""
    root = tmp_path_factory.mktemp("mipnerf_scene")
    raw, out = root / "object360", root / "object360_multiscale"
    for args in (["data_tools.synth", "--scene", "object360", "--res", "64x64", "--out", str(raw)],
                 ["mipnerf.scripts.convert_blender_data", "--blender_dir", str(raw),
                  "--out_dir", str(out)]):
        subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True, cwd=REPO)
    return str(out)


@pytest.fixture(scope="session")
def ipe_run(scene, tmp_path_factory):
    """demo.gin (mip-NeRF) trained and evaluated at 4 scales."""
    return train_and_eval(scene, tmp_path_factory.mktemp("mipnerf_ipe"), [])


@pytest.fixture(scope="session")
def noipe_run(scene, tmp_path_factory):
    """demo.gin with disable_integration (the paper's "w/o IPE" ablation), same steps and seeds."""
    return train_and_eval(scene, tmp_path_factory.mktemp("mipnerf_noipe"),
                          ["MipNerfModel.disable_integration = True"])
