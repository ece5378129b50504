"""Nothing of a MINE run is lost to a crash: periodic checkpoints, exact resume after SIGKILL, a fallback for a
damaged checkpoint_latest.pth, a stop before a non-finite checkpoint, params.yaml kept, errors named by rank."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from common import dist
from mine import train
from mine.visualizations.image_to_video import load_params
from tests.conftest import assert_trees_identical, folder_digest
from tests.mine.conftest import REPO, SMALL_CONFIG, small_config

LLFF = REPO / "mine/configs/params_llff.yaml"
VIEWS = 8  # 4 steps per epoch at batch 2
CPU = dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), is_main=True)


@pytest.fixture(scope="module")
def small_root(forward_root, tmp_path_factory):
    """The forward scene with its first VIEWS images only (NeRFDataset skips COLMAP images without a file)."""
    root = tmp_path_factory.mktemp("mine_small") / "data"
    scene = root / "forward"
    shutil.copytree(forward_root / "forward" / "sparse", scene / "sparse")
    for folder in ("images", "images_val"):
        (scene / folder).mkdir()
        for name in sorted(os.listdir(forward_root / "forward" / folder))[:VIEWS]:
            shutil.copy(forward_root / "forward" / folder / name, scene / folder / name)
    return root


def _command(root, workspace, version):
    extra = {**SMALL_CONFIG, "data.training_set_path": str(root), "training.epochs": 1,
             "training.checkpoint_every": 2}
    return [sys.executable, "-m", "mine.train", "--config_path", str(LLFF), "--workspace", str(workspace),
            "--version", version, "--extra_config", json.dumps(extra)]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(small_root, tmp_path_factory):
    """The run folder of one uninterrupted subprocess run (4 steps, checkpoints at steps 2 and 4)."""
    workspace = tmp_path_factory.mktemp("mine_uninterrupted")
    subprocess.run(_command(small_root, workspace, "run"), check=True, capture_output=True, cwd=REPO, env=_env(),
                   timeout=300)
    return workspace / "run"


def test_sigkill_between_checkpoints_resumes_bit_identically(small_root, uninterrupted, tmp_path):
    command = _command(small_root, tmp_path, "run")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                               env=_env())
    try:
        for line in process.stdout:
            if "Latest checkpoint saved" in line:  # step 2; the next save is two steps away
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    latest = tmp_path / "run" / "checkpoint_latest.pth"
    assert _state(latest)["global_step"] == 2
    subprocess.run(command, check=True, capture_output=True, cwd=REPO, env=_env(), timeout=300)
    resumed, reference = _state(latest), _state(uninterrupted / "checkpoint_latest.pth")
    assert resumed["global_step"] == reference["global_step"] == 4
    assert_trees_identical(resumed, reference)


def test_checkpoints_every_n_steps_keep_the_previous_one(uninterrupted):
    latest, previous = _state(uninterrupted / "checkpoint_latest.pth"), _state(uninterrupted / "checkpoint_previous.pth")
    assert (latest["global_step"], latest["epoch"], latest["step_in_epoch"]) == (4, 1, 0)
    assert (previous["global_step"], previous["epoch"], previous["step_in_epoch"]) == (4, 0, 4)


def test_truncated_checkpoint_latest_falls_back_to_the_previous_one(small_root, uninterrupted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    good = (run / "checkpoint_previous.pth").read_bytes()
    truncated = (run / "checkpoint_latest.pth").read_bytes()[:50_000]
    (run / "checkpoint_latest.pth").write_bytes(truncated)
    config = small_config(small_root, **{"training.epochs": 1, "training.checkpoint_every": 2})
    task = train.train(config, str(tmp_path), "run", CPU)  # resumes at epoch 1, step 4: nothing left to train
    assert task.restored["global_step"] == 4 and task.global_step == 4
    assert (run / "checkpoint_latest.pth.unreadable").read_bytes() == truncated  # kept, never deleted
    assert (run / "checkpoint_previous.pth").read_bytes() == good
    assert_trees_identical(_state(run / "checkpoint_latest.pth")["decoder"], _state(uninterrupted /
                                                                                  "checkpoint_latest.pth")["decoder"])


def test_a_non_finite_loss_stops_before_saving_and_keeps_the_last_checkpoint(small_root, tmp_path):
    config = small_config(small_root, **{"training.epochs": 1, "training.checkpoint_every": 1,
                                         "lr.backbone_lr": 1e30, "lr.decoder_lr": 1e30})
    with pytest.raises(FloatingPointError, match=r"loss is nan at global step 2; .*last good checkpoint .*kept"):
        train.train(config, str(tmp_path), "run", CPU)
    state = _state(tmp_path / "run" / "checkpoint_latest.pth")
    assert state["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in state["decoder"].values() if v.is_floating_point())
    assert not (tmp_path / "run" / "checkpoint_previous.pth").exists()


def test_a_restart_with_another_config_keeps_params_yaml(small_root, uninterrupted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    before = folder_digest(run)
    config = small_config(small_root, **{"training.epochs": 1, "training.checkpoint_every": 2,
                                         "mpi.num_bins_coarse": 8})
    with pytest.raises(ValueError, match="--overwrite_params"):
        train.train(config, str(tmp_path), "run", CPU)
    assert folder_digest(run) == before
    assert load_params(str(run / "checkpoint_latest.pth"))["mpi.num_bins_coarse"] == 4
    # More epochs is a resume, not another config: params.yaml then records them.
    config = small_config(small_root, **{"training.epochs": 2, "training.checkpoint_every": 100})
    assert train.train(config, str(tmp_path), "run", CPU).global_step == 8
    assert yaml.safe_load((run / "params.yaml").read_text())["training.epochs"] == 2


def test_the_failing_rank_error_comes_first(small_root, tmp_path):
    result = subprocess.run(
        ["bash", str(REPO / "mine/start_training.sh"), "MASTER_PORT=29731", f"WORKSPACE={tmp_path}", "DATASET=llff",
         "VERSION=run", 'EXTRA_CONFIG={"mpi.num_plaens": 4}'],
        capture_output=True, text=True, cwd=REPO, env={**_env(), "PYTHON": sys.executable}, timeout=300)
    assert result.returncode != 0
    line = "rank 0: ValueError: --extra_config: unknown config key(s) 'mpi.num_plaens'"
    assert line in result.stderr, result.stderr
    assert result.stderr.index(line) < result.stderr.index("Traceback")
    assert not (tmp_path / "run").exists()
