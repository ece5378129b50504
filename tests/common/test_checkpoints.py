"""Tests for common/checkpoints.py: exact resume, corrupt-file fallback, rotation, atomicity."""

import logging
import os
import random

import numpy as np
import pytest
import torch

from common import checkpoints

NUM_STEPS = 10
SAVE_STEP = 5  # odd, so numpy's and python's cached second gaussian is pending at the save

_data_gen = torch.Generator().manual_seed(123)
INPUTS = torch.randn(64, 4, generator=_data_gen)
TARGETS = torch.randn(64, 1, generator=_data_gen)


def make_training(seed):
    """A fresh model, Adam and LambdaLR, initialised from `seed` (as a new process would)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.2), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.8**step)
    return model, optimizer, scheduler


def train(model, optimizer, scheduler, num_steps):
    """Per-step losses [num_steps] of minibatches drawn with the torch, numpy and python RNGs."""
    losses = []
    for _ in range(num_steps):
        index = torch.randint(0, len(INPUTS), (8,))
        target_noise = 0.1 * float(np.random.standard_normal())
        input_scale = 1.0 + 0.1 * random.gauss(0.0, 1.0)
        loss = torch.mean((model(INPUTS[index] * input_scale) - TARGETS[index] - target_noise) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def training_state(model, optimizer, scheduler, step):
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "rng": checkpoints.capture_rng_state(),
    }


def resume(run_dir, restore_rng=True):
    """Continues a stopped run from its newest checkpoint in new objects; losses [remaining]."""
    model, optimizer, scheduler = make_training(seed=999)
    state, _ = checkpoints.restore_latest(run_dir)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        checkpoints.restore_rng_state(state["rng"])
    return train(model, optimizer, scheduler, NUM_STEPS - state["step"])


def test_resume_reproduces_uninterrupted_losses(tmp_path):
    uninterrupted = train(*make_training(seed=0), NUM_STEPS)

    model, optimizer, scheduler = make_training(seed=0)
    first_half = train(model, optimizer, scheduler, SAVE_STEP)
    checkpoints.save_checkpoint(tmp_path, SAVE_STEP, training_state(model, optimizer, scheduler, SAVE_STEP))
    del model, optimizer, scheduler

    resumed = torch.cat([first_half, resume(tmp_path)])
    assert torch.equal(resumed, uninterrupted)
    # The RNG state is what makes it exact: without it the second half differs.
    assert not torch.equal(resume(tmp_path, restore_rng=False), uninterrupted[SAVE_STEP:])


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    random.gauss(0.0, 1.0)  # and in python's
    path = checkpoints.save_checkpoint(tmp_path, 0, {"rng": checkpoints.capture_rng_state()})
    expected = (torch.rand(3), np.random.standard_normal(3), [random.gauss(0.0, 1.0) for _ in range(3)])

    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    checkpoints.restore_rng_state(checkpoints.load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.standard_normal(3), expected[1])
    assert [random.gauss(0.0, 1.0) for _ in range(3)] == expected[2]


def test_truncated_newest_checkpoint_falls_back_with_warning(tmp_path, caplog):
    for step in (1, 2, 3):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((256,), float(step))})
    newest = checkpoints.latest_checkpoint(tmp_path)
    assert newest == checkpoints.checkpoint_path(tmp_path, 3)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)

    with caplog.at_level(logging.WARNING):
        state, path = checkpoints.restore_latest(tmp_path)
    assert path == checkpoints.checkpoint_path(tmp_path, 2)
    assert state["step"] == 2
    assert torch.equal(state["w"], torch.full((256,), 2.0))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "checkpoint_00000003.pt" in warnings[0].getMessage()


def test_restore_latest_without_readable_checkpoint(tmp_path, caplog):
    assert checkpoints.restore_latest(tmp_path / "missing") == (None, None)
    assert checkpoints.latest_checkpoint(tmp_path) is None
    path = checkpoints.save_checkpoint(tmp_path, 7, {"step": 7})
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        assert checkpoints.restore_latest(tmp_path) == (None, None)
    assert "checkpoint_00000007.pt" in caplog.text


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_keep_leaves_newest_k_and_no_temp_files(tmp_path, keep):
    for step in (8, 9, 10, 11, 12):  # 9 -> 10 checks steps sort as numbers
        checkpoints.save_checkpoint(tmp_path, step, {"step": step}, keep=keep)
    expected = [f"checkpoint_{step:08d}.pt" for step in (8, 9, 10, 11, 12)[-keep:]]
    assert sorted(os.listdir(tmp_path)) == expected
    assert checkpoints.load_checkpoint(checkpoints.latest_checkpoint(tmp_path))["step"] == 12


def test_keep_none_keeps_all_and_bad_keep_raises(tmp_path):
    for step in range(4):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step}, keep=None)
    assert len(checkpoints.list_checkpoints(tmp_path)) == 4
    with pytest.raises(ValueError):
        checkpoints.save_checkpoint(tmp_path, 5, {"step": 5}, keep=0)


def test_failed_save_leaves_no_file(tmp_path):
    checkpoints.save_checkpoint(tmp_path, 1, {"step": 1})
    with pytest.raises(Exception):
        checkpoints.save_checkpoint(tmp_path, 2, {"not_picklable": lambda: None})
    assert os.listdir(tmp_path) == ["checkpoint_00000001.pt"]


def test_load_is_weights_only(tmp_path):
    path = os.path.join(tmp_path, "checkpoint_00000001.pt")
    torch.save({"obj": ArbitraryObject()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        checkpoints.load_checkpoint(path)


class ArbitraryObject:
    pass


def test_save_atomic_replaces_a_fixed_name_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    checkpoints.save_atomic(str(path), {"step": 1})
    checkpoints.save_atomic(str(path), {"step": 2, "w": torch.ones(2)})
    assert os.listdir(tmp_path) == ["checkpoint_latest.pth"]
    assert checkpoints.load_checkpoint(str(path))["step"] == 2
    with pytest.raises(Exception):
        checkpoints.save_atomic(str(path), {"bad": lambda: None})  # not picklable
    assert os.listdir(tmp_path) == ["checkpoint_latest.pth"]
    assert checkpoints.load_checkpoint(str(path))["step"] == 2
