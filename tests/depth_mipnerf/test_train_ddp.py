"""depth_mipnerf.train under torchrun (two gloo ranks on the CPU) and its stop on a non-finite loss."""

import os
import re
import subprocess
import sys

import gin
import pytest
import torch

from common import checkpoints
from depth_mipnerf import train
from depth_mipnerf.models import loss as loss_lib
from depth_mipnerf.models import nerf_system
from tests.depth_mipnerf.conftest import REPO

TINY = ["train.batch_size = 64", "nerf.num_samples = 8", "nerf.num_fine_samples = 8",
        "nerf.mlp.net_depth = 2", "nerf.mlp.net_width = 16", "nerf.mlp.prop_net_depth = 1",
        "nerf.mlp.prop_net_width = 8"]
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _flags(scene, run_dir, *bindings):
    return ["--device", "cpu", "--gin_configs=configs/demo.gin", f"--gin_bindings=Config.data_dir='{scene}'",
            f"--gin_bindings=Config.checkpoint_dir='{run_dir}'", *[f"--gin_bindings={b}" for b in TINY + list(bindings)]]


def _torchrun(scene, run_dir, *bindings):
    """`torchrun --standalone --nproc_per_node=2 -m depth_mipnerf.train` on the CPU (gloo)."""
    # No visible GPU: two ranks on one GPU would fail, and the test is about gloo.
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "depth_mipnerf.train", *_flags(scene, run_dir, *bindings)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def _steps(run_dir):
    return [int(os.path.basename(p)[11:19]) for p in checkpoints.list_checkpoints(run_dir)]


def test_torchrun_two_ranks_train_one_model(scene, tmp_path):
    run = tmp_path / "run"
    result = _torchrun(scene, run, "optimizer.max_steps = 4", "Config.save_every = 2", "Config.print_every = 1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "64 rays per step in each of 2 process(es)" in result.stdout
    # Rank 0 alone writes: one checkpoint set, one TensorBoard file.
    assert _steps(run) == [2, 4]
    assert len([f for f in os.listdir(run) if f.startswith("events.out.tfevents")]) == 1
    digests = dict(re.findall(r"rank (\d): weights ([0-9a-f]{16})", result.stdout))
    saved = torch.load(checkpoints.latest_checkpoint(run), weights_only=True)
    assert digests == {"0": train.weights_digest(saved["model"]), "1": train.weights_digest(saved["model"])}
    # The unwrapped model was saved: eval's loader reads it.
    assert nerf_system.load_run(str(run))[3] == 4


def test_torchrun_nan_stops_both_ranks_at_the_step(scene, tmp_path):
    run = tmp_path / "run"
    # Adam moves every weight by ~lr: step 2's forward overflows to NaN.
    result = _torchrun(scene, run, "optimizer.max_steps = 4", "Config.save_every = 1",
                       "optimizer.lr_init = 1e30", "optimizer.lr_final = 1e30")
    assert result.returncode != 0
    assert result.stderr.count("error: the loss became NaN at step 2;") == 2, result.stderr[-3000:]
    assert _steps(run) == [1]
    saved = torch.load(checkpoints.latest_checkpoint(run), weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_nan_loss_names_the_step_and_the_run_resumes_from_the_last_good_checkpoint(
        scene, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    combine, calls = loss_lib.MSELoss.combine, []

    def nan_at_third_step(self, pieces, counts=None):
        losses = combine(self, pieces, counts)
        # Call 1 is the start-up memory probe; then train_step combines twice per step (for the
        # backward, then for the logged losses): step 3 is calls 6 and 7.
        calls.append(1)
        if len(calls) in (6, 7):
            losses["total"] = losses["total"] * float("nan")  # reaches the weights too
        return losses

    monkeypatch.setattr(loss_lib.MSELoss, "combine", nan_at_third_step)
    # Checked at the steps that log or save (2, 4, 6): step 3 is named at step 4, before its
    # checkpoint, and step 2's checkpoint stays the newest.
    with pytest.raises(SystemExit):
        train.main(_flags(scene, run, "optimizer.max_steps = 6", "Config.save_every = 2"))
    assert "error: the loss became NaN at step 3;" in capsys.readouterr().err
    assert _steps(run) == [2]
    monkeypatch.setattr(loss_lib.MSELoss, "combine", combine)
    gin.clear_config()
    # A shorter max_steps changes config.gin: --overwrite_config replaces it.
    train.main(_flags(scene, run, "optimizer.max_steps = 4", "Config.save_every = 2") + ["--overwrite_config"])
    assert "resuming from" in capsys.readouterr().out and _steps(run) == [2, 4]


def test_check_finite_names_the_first_bad_step():
    train.check_finite(torch.tensor([1.0, 2.0]), range(6, 8))
    with pytest.raises(train.NonFiniteLossError, match="infinite at step 7"):
        train.check_finite(torch.tensor([1.0, float("inf"), float("nan")]), range(6, 9))
    with pytest.raises(train.NonFiniteLossError, match="NaN at step 6"):
        train.check_finite(torch.tensor([float("nan"), float("inf")]), range(6, 8))
