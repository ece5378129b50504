"""Exact resume: a training run killed (SIGKILL) between two checkpoints and started again with the same
command reaches the next checkpoint with every parameter and Adam moment bit-identical to an
uninterrupted run's."""

import os
import subprocess
import sys

from common import checkpoints
from tests.conftest import assert_trees_identical, kill_once
from tests.mipnerf360.test_train import REPO, TINY

EVERY = 4  # steps between checkpoints; the kill lands in the EVERY steps after the first one


def command(scene, run_dir):
    """The training command of the run in run_dir: 2 * EVERY steps, a checkpoint every EVERY."""
    bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run_dir}'",
                       f"Config.checkpoint_every = {EVERY}", f"Config.max_steps = {2 * EVERY}",
                       "Config.print_every = 1000"]  # no per-step parameter statistics: faster steps
    return [sys.executable, "-m", "mipnerf360.train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"] + [
        f"--gin_bindings={b}" for b in bindings]


def run_to_end(scene, run_dir):
    """Runs the command to its end; its stdout."""
    result = subprocess.run(command(scene, run_dir), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def kill_after_first_checkpoint(scene, run_dir):
    """Starts the command and kills it (kill_once) as soon as its first checkpoint is on disk."""
    process = subprocess.Popen(command(scene, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    kill_once(process, lambda: os.path.exists(checkpoints.checkpoint_path(str(run_dir), EVERY)))


def test_a_run_killed_between_checkpoints_resumes_bit_identically(scene, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(scene, reference)
    kill_after_first_checkpoint(scene, killed)
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(killed)] == [f"checkpoint_{EVERY:08d}.pt"]

    out = run_to_end(scene, killed)
    assert f"resuming from {checkpoints.checkpoint_path(str(killed), EVERY)} at step {EVERY}" in out
    expected = checkpoints.load_checkpoint(checkpoints.checkpoint_path(str(reference), 2 * EVERY))
    resumed = checkpoints.load_checkpoint(checkpoints.checkpoint_path(str(killed), 2 * EVERY))
    assert resumed["state"]["step"] == 2 * EVERY
    assert_trees_identical(resumed["state"]["model"], expected["state"]["model"], "model")
    assert_trees_identical(resumed["state"]["optimizer"], expected["state"]["optimizer"], "optimizer")
