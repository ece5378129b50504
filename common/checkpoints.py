"""Checkpoints: atomic save, weights-only load, resume from the newest readable file.

A training run holds its folder's lock (lock_run_dir) for the whole run: a second run in the same
folder refuses to start. Nothing here deletes or writes over a file it did not write: unreadable
checkpoints are renamed aside (<name>.unreadable), never pruned, and when every checkpoint of a
folder is unreadable, restoring refuses until the user moves them or asks to start afresh.
"""

import errno
import logging
import os
import random
import re

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # Windows: lock_run_dir records the pid but cannot exclude a second run.
    fcntl = None

_NAME = re.compile(r"^checkpoint_(\d+)\.pt$")
# save_atomic's temp files of step checkpoints: .checkpoint_<step>.pt.<pid>.tmp
_TEMP_NAME = re.compile(r"^\.checkpoint_\d+\.pt\.(\d+)\.tmp$")
LOCK_NAME = ".lock"
UNREADABLE_SUFFIX = ".unreadable"


def _describe(error):
    """`Type: first line of the message` of an exception, at most 200 characters."""
    # Without terminal colour codes (torch's weights-only message has some).
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


class UnreadableCheckpointsError(RuntimeError):
    """Checkpoints exist in a run folder but none of them can be read."""

    def __init__(self, run_dir, failures, afresh_flag=None):
        """failures: [(path, exception)]; afresh_flag: the setting that starts afresh, for the message."""
        self.run_dir = run_dir
        self.paths = [path for path, _ in failures]
        listed = "; ".join(f"{path} ({_describe(e)})" for path, e in failures)
        how = f", or rerun with {afresh_flag}, which renames them to <name>{UNREADABLE_SUFFIX}" if afresh_flag else ""
        super().__init__(
            f"no checkpoint in {run_dir} is readable, nothing was changed: {listed}. To start afresh, "
            f"move them out of {run_dir}{how}; to resume, replace them with readable copies.")


class RunDirLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""

    def __init__(self, run_dir, pid):
        self.run_dir = run_dir
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{run_dir} is in use by {holder} (lock {os.path.join(run_dir, LOCK_NAME)}): one run per "
            f"folder. Wait for it or stop it (kill {pid or '<pid>'}), or train in another folder.")


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


def _step_of(path):
    """The step in a checkpoint_{step:08d}.pt path."""
    return int(_NAME.match(os.path.basename(path)).group(1))


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

    Pruning removes only checkpoints of steps below `step`, so a file of a higher step (not this
    run's: restore_latest sets unreadable ones aside) is never deleted. Temp files of saves killed
    mid-write by processes that are gone are removed.

    Args:
        run_dir: directory of the run, created if missing.
        step: training step, names the file.
        state: dict of tensors, primitives and nested dicts/lists (state_dicts, RNG state).
        keep: number of this run's checkpoints (steps up to `step`) left after the save; None keeps all.

    Returns:
        The path written.
    """
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be None or at least 1, got {keep}")
    os.makedirs(run_dir, exist_ok=True)
    remove_stale_temp_files(run_dir)
    path = checkpoint_path(run_dir, step)
    save_atomic(path, state)
    if keep is not None:
        older = [p for p in list_checkpoints(run_dir) if _step_of(p) < step]
        for old in older[:max(len(older) - (keep - 1), 0)]:
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


def _pid_alive(pid):
    """Whether a process `pid` exists on this machine."""
    # Assumed alive on Windows, where os.kill(pid, 0) would terminate the process.
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # It exists, under another user.
        pass
    return True


def remove_stale_temp_files(run_dir, locked=False):
    """Removes .checkpoint_<step>.pt.<pid>.tmp files left by saves killed mid-write; their paths.

    A temp file is stale when its pid is not a live process, or, with `locked` (run_dir's lock is
    held by this process, so no other process of a run saves there), when its pid is not ours.
    """
    if not os.path.isdir(run_dir):
        return []
    removed = []
    for name in sorted(os.listdir(run_dir)):
        match = _TEMP_NAME.match(name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or (not locked and _pid_alive(pid)):
            continue
        path = os.path.join(run_dir, name)
        try:
            os.remove(path)
        except FileNotFoundError:  # Removed meanwhile by another process.
            continue
        removed.append(path)
    if removed:
        logging.warning("Removed %d temp file(s) of checkpoint saves killed mid-write: %s",
                        len(removed), ", ".join(removed))
    return removed


def load_checkpoint(path, map_location="cpu"):
    """Loads a checkpoint written by save_checkpoint (weights-only unpickling: no code runs)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _set_aside(path):
    """Renames an unreadable checkpoint to <path>.unreadable (.1, .2, ... if taken); the new path."""
    target, n = path + UNREADABLE_SUFFIX, 0
    # os.rename would replace an existing target: pick a free name, so no earlier one is lost.
    while os.path.lexists(target):
        n += 1
        target = f"{path}{UNREADABLE_SUFFIX}.{n}"
    os.rename(path, target)
    return target


def _report_unreadable(failures, set_aside):
    """Warns about each unreadable (path, error); with set_aside, renames it out of the way first."""
    for path, error in failures:
        if set_aside:
            try:
                moved = _set_aside(path)
            except FileNotFoundError:  # Set aside meanwhile by another process.
                continue
            action = f"renamed to {moved}"
        else:
            action = "skipped"
        logging.warning("Checkpoint %s is unreadable (%s); %s.", path, _describe(error), action)


def restore_latest(run_dir, map_location="cpu", start_afresh=False, set_aside=False, afresh_flag=None):
    """Loads the newest readable checkpoint of run_dir.

    Every way a file can fail to load (truncated, corrupt, foreign, refused by the weights-only
    unpickler) counts as unreadable, except MemoryError (and KeyboardInterrupt), which propagate.
    Unreadable files newer than the one restored are skipped with a warning naming them; with
    `set_aside` (a trainer holding the run's lock) they are first renamed to <name>.unreadable, so
    later resumes and pruning see readable checkpoints only. A file removed between the listing and
    the load (pruned by a live run) is passed over.

    Args:
        run_dir: the run's folder.
        map_location: torch.load's map_location.
        start_afresh: when checkpoints exist but none is readable, return (None, None) (renaming
            them aside with `set_aside`) instead of raising.
        set_aside: rename unreadable checkpoints to <name>.unreadable (never deleted).
        afresh_flag: the caller's setting that sets start_afresh, named in the error.

    Returns:
        (state, path), or (None, None) when run_dir holds no checkpoint (or, with start_afresh,
        no readable one).

    Raises:
        UnreadableCheckpointsError: checkpoints exist, none is readable and not start_afresh;
            nothing on disk was changed.
    """
    failures = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path, map_location)
        except FileNotFoundError:
            continue
        except MemoryError:
            raise
        except Exception as e:  # Whatever a foreign or damaged file raises, it is unreadable.
            failures.append((path, e))
            continue
        _report_unreadable(failures, set_aside)
        return state, path
    if failures and not start_afresh:
        raise UnreadableCheckpointsError(run_dir, failures, afresh_flag)
    _report_unreadable(failures, set_aside)
    return None, None


class RunDirLock:
    """The lock of a run folder, held by this process until release() (or the with block's end)."""

    def __init__(self, run_dir, fd, created):
        """created: lock_run_dir made run_dir, so release() removes it if the run left it empty."""
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self._fd = fd
        self._created = created

    def release(self):
        """Removes the lock file and unlocks it (idempotent)."""
        if self._fd is None:
            return
        # Removed while still locked: a process that opened the old file notices (lock_run_dir).
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # Closing the only descriptor drops the flock.
        self._fd = None
        if self._created:  # A run that failed before writing anything (e.g. missing data) leaves no folder.
            try:
                os.rmdir(self.run_dir)
            except OSError:  # Not empty: the run wrote something.
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def _read_pid(fd):
    """The pid written in an open lock file, or None."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def lock_run_dir(run_dir):
    """Takes run_dir's lock (fcntl.flock on run_dir/.lock, which holds our pid) for a training run.

    The lock lives as long as this process holds it: a lock file left by a killed process does not
    block. Stale temp files of killed saves are removed once the lock is ours. A run_dir made here
    is removed on release if the run left it empty.

    Returns:
        A RunDirLock (a context manager) to hold for the whole run.

    Raises:
        RunDirLockedError: a live process holds it; nothing was changed.
    """
    created = not os.path.isdir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirLockedError(run_dir, pid) from None
            raise
        # The previous holder may have removed the file between our open and flock: retry on the new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    remove_stale_temp_files(run_dir, locked=True)
    return RunDirLock(run_dir, fd, created)


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
