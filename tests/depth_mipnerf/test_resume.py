"""Exact resume: a training run killed (SIGKILL) between two checkpoints and restarted with the same
command reaches the next checkpoint with the parameters, Adam moments and LR schedule of an
uninterrupted run from the same seed, bit for bit (CPU)."""

import os
import signal
import subprocess
import sys
import time

import torch

from common import checkpoints
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


def kill_once_saved(process, run_dir, step, timeout=60):
    """SIGKILLs `process` as soon as run_dir holds the checkpoint of `step`; returns its output."""
    path = checkpoints.checkpoint_path(run_dir, step)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {path}; the run said:\n{process.communicate()[0].decode()}")
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    return process.communicate()[0].decode()


def assert_identical(a, b, where="checkpoint"):
    """Nested dicts / lists of tensors and numbers equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


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
        assert_identical(got[key], expected[key], key)
