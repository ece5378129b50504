"""Exact resume: a training run killed (SIGKILL) between two checkpoints and started again with the
same command writes, at the next checkpoint, bit for bit the parameters, Adam moments and random
states of an uninterrupted run from the same seeds."""

import os
import subprocess
import sys

import pytest
import torch

from common import checkpoints
from mipnerf.internal import datasets, utils
from tests.conftest import assert_trees_identical, kill_once
from tests.mipnerf.test_train_eval import REPO, TINY

SAVE_EVERY = 10
# The kill lands after checkpoint SAVE_EVERY and before 2 * SAVE_EVERY: a window of SAVE_EVERY
# steps (tens of milliseconds each here), against a poll of a millisecond.
BINDINGS = TINY + [f"Config.save_every = {SAVE_EVERY}", f"Config.max_steps = {2 * SAVE_EVERY}",
                   "Config.print_every = 5"]


def train_command(scene, run_dir):
    """The training command line of one run folder."""
    return [sys.executable, "-m", "mipnerf.train", "--gin_file=configs/demo.gin", f"--data_dir={scene}",
            f"--train_dir={run_dir}", "--render_every=0", *[f"--gin_param={b}" for b in BINDINGS]]


def start(scene, run_dir):
    """Starts training in run_dir; one thread each, as two runs share the machine."""
    return subprocess.Popen(train_command(scene, run_dir), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def finish(process):
    """Waits for a training process; asserts it succeeded and returns its stdout."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return out


def kill_after_first_checkpoint(process, run_dir):
    """kill_once as soon as checkpoint SAVE_EVERY is in run_dir; -> the checkpoints left."""
    kill_once(process, lambda: os.path.exists(checkpoints.checkpoint_path(run_dir, SAVE_EVERY)), 60)
    return [os.path.basename(p) for p in checkpoints.list_checkpoints(run_dir)]


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("batching", ["all_images", "single_image"])
def test_the_batch_of_a_step_depends_on_the_seed_and_step_alone(scene, batching, on_device, monkeypatch):
    # on_device: the device path (no prefetch thread), run on the CPU where its values can be read.
    monkeypatch.setattr(datasets, "data_on_device", lambda *args: on_device)
    config = utils.Config(batch_size=64, batching=batching)

    def batches(first_step, count, seed=7):
        dataset = datasets.get_dataset("train", scene, config, seed=seed, first_step=first_step)
        try:
            return [next(dataset)["pixels"] for _ in range(count)]
        finally:
            dataset.close()

    from_start = batches(1, 4)
    assert all(torch.equal(a, b) for a, b in zip(batches(3, 2), from_start[2:]))
    assert not torch.equal(from_start[2], from_start[3])
    assert not torch.equal(batches(3, 1, seed=8)[0], from_start[2])


def test_a_run_killed_between_checkpoints_resumes_bit_identically(scene, tmp_path):
    reference_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = start(scene, reference_dir)
    killed = start(scene, killed_dir)
    left = kill_after_first_checkpoint(killed, killed_dir)
    # The kill landed between the two checkpoints (a slower poll would fail here, not pass).
    assert left == [f"checkpoint_{SAVE_EVERY:08d}.pt"]
    resumed = start(scene, killed_dir)
    assert f"resuming from {checkpoints.checkpoint_path(killed_dir, SAVE_EVERY)}" in finish(resumed)
    finish(reference)

    last = 2 * SAVE_EVERY
    expected = checkpoints.load_checkpoint(checkpoints.checkpoint_path(reference_dir, last))
    actual = checkpoints.load_checkpoint(checkpoints.checkpoint_path(killed_dir, last))
    assert actual["step"] == expected["step"] == last
    assert_trees_identical(actual["model"], expected["model"], "model")
    assert_trees_identical(actual["optimizer"], expected["optimizer"], "optimizer")
    assert_trees_identical(actual["rng"], expected["rng"], "rng")
    assert_trees_identical(actual["global_rng"], expected["global_rng"], "global_rng")
