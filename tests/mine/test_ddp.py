"""start_training.sh with two CPU ranks (torchrun + gloo): the run folder and identical replica weights."""

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import torch

from tests.mine.conftest import REPO, SMALL_CONFIG


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _eight_view_root(forward_root, root):
    """root/forward with the COLMAP model and 8 of the 20 images (the LLFF loader skips images without a file)."""
    scene = root / "forward"
    shutil.copytree(forward_root / "forward" / "sparse", scene / "sparse")
    for folder in ("images", "images_val"):
        (scene / folder).mkdir(parents=True)
        for image in sorted((forward_root / "forward" / folder).iterdir())[:8]:
            shutil.copy(image, scene / folder)
    return root


def test_two_cpu_ranks_hold_identical_weights(forward_root, tmp_path):
    root = _eight_view_root(forward_root, tmp_path / "llff")
    extra = {**SMALL_CONFIG, "data.training_set_path": str(root), "training.epochs": 1}
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", str(REPO / "mine/start_training.sh"), "MASTER_ADDR=localhost", f"MASTER_PORT={_free_port()}",
         "N_NODES=1", "GPUS_PER_NODE=2", "NODE_RANK=0", f"WORKSPACE={tmp_path}", "DATASET=llff", "VERSION=ddp",
         f"EXTRA_CONFIG={json.dumps(extra)}"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    log = (run_dir / "training.log").read_text()
    checksums = ast.literal_eval(re.search(r"Replica parameter checksums \(one per rank\): (\[.*\])", log).group(1))
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert "'world_size': 2" in log
    # 8 views, 2 ranks, batch 2: 2 steps per rank.
    state = torch.load(run_dir / "checkpoint_latest.pth", weights_only=True)
    assert state["global_step"] == 2 and {"backbone", "decoder", "optimizer"} <= state.keys()
    assert (run_dir / "params.yaml").exists()
