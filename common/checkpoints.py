"""Checkpoints: atomic save, weights-only load, resume from the newest readable file."""

import logging
import os
import pickle
import random
import re

import numpy as np
import torch

_NAME = re.compile(r"^checkpoint_(\d+)\.pt$")

# What a truncated, half-written or foreign file raises from torch.load.
_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError)


def checkpoint_path(run_dir, step):
    """Path of the checkpoint of `step`: run_dir/checkpoint_{step:08d}.pt."""
    return os.path.join(run_dir, f"checkpoint_{step:08d}.pt")


def list_checkpoints(run_dir):
    """Checkpoint paths in run_dir, oldest step first ([] if the directory is missing)."""
    if not os.path.isdir(run_dir):
        return []
    steps = sorted(int(m.group(1)) for m in map(_NAME.match, os.listdir(run_dir)) if m)
    return [checkpoint_path(run_dir, step) for step in steps]


def latest_checkpoint(run_dir):
    """Path of the checkpoint with the highest step, or None."""
    paths = list_checkpoints(run_dir)
    return paths[-1] if paths else None


def _fsync_dir(path):
    """Makes a rename inside directory `path` durable."""
    # Windows cannot open a directory for fsync.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir, step, state, keep=3):
    """Writes `state` to run_dir/checkpoint_{step:08d}.pt atomically; keeps the newest `keep`.

    Args:
        run_dir: directory of the run, created if missing.
        step: training step, names the file.
        state: dict of tensors, primitives and nested dicts/lists (state_dicts, RNG state).
        keep: number of checkpoints left on disk after the save; None keeps all.

    Returns:
        The path written.
    """
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be None or at least 1, got {keep}")
    os.makedirs(run_dir, exist_ok=True)
    path = checkpoint_path(run_dir, step)
    save_atomic(path, state)
    if keep is not None:
        for old in list_checkpoints(run_dir)[:-keep]:
            os.remove(old)
    return path


def save_atomic(path, state):
    """torch.save(state) to path atomically: a reader sees the old file or the whole new one.

    For the fixed file names of the originals (MINE's checkpoint_latest.pth, pixelNeRF's
    pixel_nerf_latest); save_checkpoint names files by step and prunes old ones.
    """
    folder = os.path.dirname(path) or "."
    # The temp file sits in the same directory because os.replace is atomic only within one
    # file system; its name never matches list_checkpoints, so a crash mid-write is ignored.
    tmp_path = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp_path, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_dir(folder)
    return path


def load_checkpoint(path, map_location="cpu"):
    """Loads a checkpoint written by save_checkpoint (weights-only unpickling: no code runs)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def restore_latest(run_dir, map_location="cpu"):
    """Loads the newest readable checkpoint of run_dir.

    Unreadable files (truncated, corrupt) are skipped with a warning naming them.

    Returns:
        (state, path), or (None, None) when no checkpoint can be read.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return load_checkpoint(path, map_location), path
        except _UNREADABLE as e:
            logging.warning(
                "Checkpoint %s is unreadable (%s: %s); trying the previous one.",
                path, type(e).__name__, e,
            )
    return None, None


def capture_rng_state():
    """State of the torch (CPU, CUDA), numpy and python global RNGs, loadable weights-only."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        # Keys widened from uint32 to int64: older torch versions cannot save uint32 tensors.
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached_gaussian,
        },
        "python": {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    """Sets the torch, CUDA, numpy and python global RNGs from a capture_rng_state() dict."""
    # .cpu(): the generators take CPU byte tensors even if the checkpoint was mapped to a GPU.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np_state = state["numpy"]
    keys = np_state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    py_state = state["python"]
    internal = tuple(py_state["internal"].tolist())
    random.setstate((py_state["version"], internal, py_state["gauss_next"]))
