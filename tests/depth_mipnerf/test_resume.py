"""Exact resume: a training run killed (SIGKILL) between two checkpoints and restarted with the same
command reaches the next checkpoint with the parameters, Adam moments and LR schedule of an
uninterrupted run from the same seed, bit for bit (CPU)."""

import os
import subprocess
import sys

from common import checkpoints
from tests.conftest import assert_trees_identical, kill_once
from tests.depth_mipnerf.conftest import REPO

SAVE_EVERY = 10
# Far beyond the steps compared: the LR schedule depends on max_steps, so every run shares it.
MAX_STEPS = 60
TINY = ["train.batch_size = 256", "nerf.num_samples = 16", "nerf.num_fine_samples = 16",
        f"optimizer.max_steps = {MAX_STEPS}", f"Config.save_every = {SAVE_EVERY}",
        "Config.checkpoint_keep = 100"]


def start_training(scene, run_dir):
    """A depth_mipnerf.train process on the CPU (one thread) training demo.gin + TINY in run_dir."""
    command = [sys.executable, "-m", "depth_mipnerf.train", "--device", "cpu", "--gin_configs=configs/demo.gin",
               f"--gin_bindings=Config.data_dir = '{scene}'", f"--gin_bindings=Config.checkpoint_dir = '{run_dir}'",
               *[f"--gin_bindings={b}" for b in TINY]]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_once_saved(process, run_dir, step):
    """kill_once as soon as run_dir holds the checkpoint of `step`; -> its output."""
    return kill_once(process, lambda: os.path.exists(checkpoints.checkpoint_path(run_dir, step)), 60)


def test_a_run_killed_between_checkpoints_resumes_bit_identically(scene, tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    uninterrupted = start_training(scene, reference)
    victim = start_training(scene, resumed)
    kill_once_saved(victim, resumed, SAVE_EVERY)
    # Killed between the checkpoints of steps 10 and 20 (a step takes tens of ms here).
    assert checkpoints.latest_checkpoint(resumed) == checkpoints.checkpoint_path(resumed, SAVE_EVERY)

    output = kill_once_saved(start_training(scene, resumed), resumed, 2 * SAVE_EVERY)
    assert f"resuming from {checkpoints.checkpoint_path(resumed, SAVE_EVERY)}" in output
    kill_once_saved(uninterrupted, reference, 2 * SAVE_EVERY)

    expected = checkpoints.load_checkpoint(checkpoints.checkpoint_path(reference, 2 * SAVE_EVERY))
    got = checkpoints.load_checkpoint(checkpoints.checkpoint_path(resumed, 2 * SAVE_EVERY))
    assert got["step"] == expected["step"] == 2 * SAVE_EVERY
    for key in ("model", "optimizer", "scheduler"):
        assert_trees_identical(got[key], expected[key], key)
