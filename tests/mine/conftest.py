"""Shared fixtures of tests/mine: one synthetic `forward` LLFF scene and one short training run on it.

The run (`trained_run`) is the CPU training configuration below; mine-B's eval / video / demo tests reuse
its checkpoint instead of training again.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch

from common import dist

REPO = pathlib.Path(__file__).parents[2]

# One intra-op thread: on a busy 2-core machine a second OpenMP thread spins and makes steps ~5x slower.
torch.set_num_threads(1)

# Smallest configuration MINE runs at: 128x128 (multiple of 128), batch 2 (BatchNorm of the 1x1 bottleneck
# needs two values per channel), ResNet-18, 4 planes, a 4-frequency disparity encoding.
SMALL_CONFIG = {
    "data.img_h": 128,
    "data.img_w": 128,
    "data.img_pre_downsample_ratio": 1,
    "data.per_gpu_batch_size": 2,
    "data.visible_point_count": 64,
    "model.imagenet_pretrained": False,
    "model.num_layers": 18,
    "model.pos_encoding_multires": 4,
    "mpi.num_bins_coarse": 4,
    "lr.decay_steps": "1000",
    "training.eval_interval": 100000,
}
TRAIN_EPOCHS = 5  # 20 views / batch 2 = 10 steps per epoch -> 50 steps (target L1 falls to 0.86x, PSNR 20.02 dB)


def small_config(root, **overrides):
    """The merged params dict of params_llff.yaml + SMALL_CONFIG for the LLFF root `root`."""
    from mine import train

    extra = {**SMALL_CONFIG, "data.training_set_path": str(root), **overrides}
    return train.load_config(str(REPO / "mine/configs/params_llff.yaml"), json.dumps(extra))


@pytest.fixture(scope="session")
def forward_root(tmp_path_factory):
    """LLFF root holding one synthetic `forward` scene (128x128, 20 views) with an `images_val` copy."""
    root = tmp_path_factory.mktemp("mine_llff")
    scene = root / "forward"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "forward", "--res", "128x128",
                    "--views", "20", "--out", str(scene)], check=True, capture_output=True, cwd=REPO)
    shutil.copytree(scene / "images", scene / "images_val")
    for extra in ("images_2", "images_4"):
        shutil.rmtree(scene / extra, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def trained_run(forward_root, tmp_path_factory):
    """SMALL_CONFIG trained TRAIN_EPOCHS - 1 epochs, then resumed from checkpoint_latest.pth for the last one.

    Returns {run_dir, checkpoint, config, root, resumed_task} (the task of the resumed run).
    """
    from mine import train

    workspace = tmp_path_factory.mktemp("mine_ws")
    info = dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), is_main=True)
    train.train(small_config(forward_root, **{"training.epochs": TRAIN_EPOCHS - 1}), str(workspace), "run", info)
    config = small_config(forward_root, **{"training.epochs": TRAIN_EPOCHS})
    task = train.train(config, str(workspace), "run", info)
    run_dir = workspace / "run"
    return {"run_dir": run_dir, "checkpoint": run_dir / "checkpoint_latest.pth", "config": config,
            "root": forward_root, "resumed_task": task}
