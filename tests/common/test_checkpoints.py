"""Tests for common/checkpoints.py: exact resume, corrupt-file fallback, rotation, atomicity, and
nothing lost under crashes and bad files (unreadable checkpoints, killed saves, a second run)."""

import hashlib
import logging
import os
import random
import signal
import subprocess
import sys

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


def test_restore_latest_of_a_missing_or_empty_folder(tmp_path):
    assert checkpoints.restore_latest(tmp_path / "missing") == (None, None)
    assert checkpoints.restore_latest(tmp_path) == (None, None)
    assert checkpoints.latest_checkpoint(tmp_path) is None


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


# Files torch.load(weights_only=True) fails on, each with another exception type.
BAD_FILES = {
    "empty": b"",  # EOFError
    "stop_opcode": b".",  # IndexError: pop from empty list
    "text": b"hello world",  # KeyError
    "random_bytes": bytes(random.Random(2).randrange(256) for _ in range(29)),
    "foreign_zip": b"PK\x05\x06" + bytes(18),  # RuntimeError: an empty zip archive
}


def folder_digest(folder):
    """{relative path: sha256 of the bytes (None for a folder)} of everything under folder."""
    digest = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            digest[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                digest[os.path.relpath(os.path.join(root, name), folder)] = hashlib.sha256(f.read()).hexdigest()
    return digest


def write_unreadable(folder, steps, data=b"."):
    """checkpoint_<step>.pt files holding `data` (unreadable) in folder."""
    os.makedirs(folder, exist_ok=True)
    for step in steps:
        with open(checkpoints.checkpoint_path(folder, step), "wb") as f:
            f.write(data)


def test_all_unreadable_refuses_naming_the_files_and_changes_nothing(tmp_path):
    write_unreadable(tmp_path, [20], BAD_FILES["stop_opcode"])
    write_unreadable(tmp_path, [40], BAD_FILES["text"])
    before = folder_digest(tmp_path)
    for set_aside in (False, True):
        with pytest.raises(checkpoints.UnreadableCheckpointsError) as error:
            checkpoints.restore_latest(tmp_path, set_aside=set_aside, afresh_flag="--start_afresh")
        message = str(error.value)
        assert "checkpoint_00000020.pt" in message and "checkpoint_00000040.pt" in message
        assert "--start_afresh" in message and "move them out of" in message
        assert isinstance(error.value, RuntimeError)
        assert error.value.paths == [checkpoints.checkpoint_path(tmp_path, s) for s in (40, 20)]
        assert folder_digest(tmp_path) == before


def test_start_afresh_sets_unreadable_files_aside_and_never_writes_over_them(tmp_path, caplog):
    write_unreadable(tmp_path, [20, 40])
    (tmp_path / "checkpoint_00000020.pt.unreadable").write_bytes(b"set aside earlier")
    with caplog.at_level(logging.WARNING):
        assert checkpoints.restore_latest(tmp_path, start_afresh=True, set_aside=True) == (None, None)
    assert "checkpoint_00000040.pt.unreadable" in caplog.text
    for step in (20, 40, 60):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step}, keep=1)
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint_00000020.pt.unreadable", "checkpoint_00000020.pt.unreadable.1",
        "checkpoint_00000040.pt.unreadable", "checkpoint_00000060.pt"]
    assert (tmp_path / "checkpoint_00000020.pt.unreadable").read_bytes() == b"set aside earlier"
    assert (tmp_path / "checkpoint_00000020.pt.unreadable.1").read_bytes() == b"."


def test_unreadable_newer_checkpoints_are_set_aside_and_good_ones_never_pruned(tmp_path, caplog):
    for step in (10, 20):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step})
    write_unreadable(tmp_path, [30, 40, 50])
    with caplog.at_level(logging.WARNING):
        state, path = checkpoints.restore_latest(tmp_path, set_aside=True)
    assert state["step"] == 20 and path == checkpoints.checkpoint_path(tmp_path, 20)
    for step in (30, 40, 50):
        assert f"checkpoint_{step:08d}.pt.unreadable" in caplog.text
        assert (tmp_path / f"checkpoint_{step:08d}.pt.unreadable").read_bytes() == b"."
    for step in (21, 22, 23, 24):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step}, keep=3)
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(tmp_path)] == [
        "checkpoint_00000022.pt", "checkpoint_00000023.pt", "checkpoint_00000024.pt"]
    assert checkpoints.restore_latest(tmp_path)[0]["step"] == 24


def test_pruning_never_deletes_checkpoints_newer_than_the_one_written(tmp_path):
    write_unreadable(tmp_path, [30, 40, 50])
    for step in (1, 2, 3):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step}, keep=2)
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(tmp_path)] == [
        f"checkpoint_{s:08d}.pt" for s in (2, 3, 30, 40, 50)]


def test_restore_without_set_aside_skips_and_renames_nothing(tmp_path, caplog):
    checkpoints.save_checkpoint(tmp_path, 1, {"step": 1})
    write_unreadable(tmp_path, [2])
    before = folder_digest(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert checkpoints.restore_latest(tmp_path)[0]["step"] == 1
    assert "checkpoint_00000002.pt is unreadable" in caplog.text
    assert folder_digest(tmp_path) == before


@pytest.mark.parametrize("kind", sorted(BAD_FILES) + ["weights_only_refused", "folder"])
def test_every_way_a_file_fails_to_load_counts_as_unreadable(tmp_path, kind):
    checkpoints.save_checkpoint(tmp_path, 1, {"step": 1})
    newest = checkpoints.checkpoint_path(tmp_path, 2)
    if kind == "weights_only_refused":
        torch.save({"obj": ArbitraryObject()}, newest)
    elif kind == "folder":
        os.mkdir(newest)
    else:
        write_unreadable(tmp_path, [2], BAD_FILES[kind])
    state, path = checkpoints.restore_latest(tmp_path, set_aside=True)
    assert state["step"] == 1
    assert os.path.exists(newest + ".unreadable") and not os.path.exists(newest)


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_memory_error_and_interrupt_are_not_unreadable(tmp_path, monkeypatch, error):
    checkpoints.save_checkpoint(tmp_path, 1, {"step": 1})
    checkpoints.save_checkpoint(tmp_path, 2, {"step": 2})

    def failing_load(*args, **kwargs):
        raise error()

    monkeypatch.setattr(torch, "load", failing_load)
    with pytest.raises(error):
        checkpoints.restore_latest(tmp_path, set_aside=True)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_00000001.pt", "checkpoint_00000002.pt"]


def dead_pid():
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_saves_remove_temp_files_of_dead_processes_only(tmp_path, caplog):
    dead = tmp_path / f".checkpoint_00000004.pt.{dead_pid()}.tmp"
    live = tmp_path / f".checkpoint_00000004.pt.{os.getppid()}.tmp"
    other = tmp_path / ".notes.txt.123.tmp"  # not a checkpoint's temp file: not ours to remove
    for path in (dead, live, other):
        path.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING):
        checkpoints.save_checkpoint(tmp_path, 5, {"step": 5})
    assert str(dead) in caplog.text
    assert sorted(os.listdir(tmp_path)) == sorted(["checkpoint_00000005.pt", live.name, other.name])


def test_taking_the_lock_removes_every_foreign_temp_file(tmp_path, caplog):
    temps = [tmp_path / f".checkpoint_00000004.pt.{pid}.tmp" for pid in (dead_pid(), os.getppid())]
    for path in temps:
        path.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING), checkpoints.lock_run_dir(tmp_path):
        assert os.listdir(tmp_path) == [".lock"]
    assert all(str(path) in caplog.text for path in temps)


HOLD_LOCK = """
import sys, time
from common import checkpoints
lock = checkpoints.lock_run_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_beside_a_live_one_refuses_and_a_dead_ones_lock_does_not_block(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE,
                              text=True, cwd=os.path.dirname(os.path.dirname(checkpoints.__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert (run / ".lock").read_text().strip() == str(holder.pid)
        before = folder_digest(run)
        with pytest.raises(checkpoints.RunDirLockedError) as error:
            checkpoints.lock_run_dir(run)
        assert str(run) in str(error.value) and str(holder.pid) in str(error.value)
        assert folder_digest(run) == before
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9: the lock file stays behind
        holder.wait()
    assert (run / ".lock").exists()
    with checkpoints.lock_run_dir(run) as lock:
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(checkpoints.RunDirLockedError):
            checkpoints.lock_run_dir(run)  # a second lock in this process refuses too
    assert not (run / ".lock").exists()
    lock.release()  # idempotent
    checkpoints.lock_run_dir(run).release()


def test_a_run_folder_made_by_the_lock_goes_when_the_run_left_it_empty(tmp_path):
    with checkpoints.lock_run_dir(tmp_path / "failed"):  # e.g. the data was missing: nothing written
        assert (tmp_path / "failed").is_dir()
    with checkpoints.lock_run_dir(tmp_path / "ran"):
        checkpoints.save_checkpoint(tmp_path / "ran", 1, {"step": 1})
    (tmp_path / "mine").mkdir()
    with checkpoints.lock_run_dir(tmp_path / "mine"):
        pass
    assert sorted(os.listdir(tmp_path)) == ["mine", "ran"]
    assert os.listdir(tmp_path / "ran") == ["checkpoint_00000001.pt"]
