"""Device choice and the opt-in GPU speed-ups: TF32, bf16 autocast, torch.compile."""

import contextlib
import ctypes
import functools
import time

import torch


def _available(device_type):
    """Whether torch can run on `device_type` ("cpu", "cuda", "mps") on this machine."""
    if device_type == "cuda":
        return torch.cuda.is_available()
    if device_type == "mps":
        return torch.backends.mps.is_available()
    return device_type == "cpu"


@functools.cache
def keep_freed_memory():
    """Has glibc's malloc serve every allocation from its heap and keep what is freed there.

    By default glibc maps each block over 128 KiB to fresh pages and returns them on free, so every
    [rays x samples x width] activation of a CPU step is zero-filled by the kernel again, page by page:
    half of a mipnerf render's time on one core. XLA reuses its buffers, so the JAX originals never
    pay this. Numbers do not change; the process keeps its peak memory until it exits. Returns
    whether the settings were taken (False where the C library is not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters of <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def _chosen(device):
    """device, after keep_freed_memory() where it is the CPU (the CPU speed-up of every entry point)."""
    if device.type == "cpu":
        keep_freed_memory()
    return device


def pick_device(prefer="cuda"):
    """The `prefer` device ("cuda", "cuda:1", "mps", "cpu") when it is available, else the CPU
    (then with keep_freed_memory())."""
    device = torch.device(prefer)
    return _chosen(device if _available(device.type) else torch.device("cpu"))


def setup_tf32(enabled):
    """Lets float32 matmuls and cuDNN convolutions use TF32 tensor cores (Ampere and later)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def autocast(device, enabled=True, dtype=torch.bfloat16, on_cpu=False):
    """Mixed-precision context for `device`; a no-op when disabled or on the CPU unless `on_cpu`.

    CPU autocast is opt-in because bf16 matmuls on most CPUs are slower than float32 ones.
    """
    device = torch.device(device)
    if not enabled or (device.type == "cpu" and not on_cpu):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def maybe_compile(module_or_fn, enabled, **compile_kwargs):
    """torch.compile(module_or_fn) when enabled, else module_or_fn unchanged (opt-in: slower on CPU)."""
    return torch.compile(module_or_fn, **compile_kwargs) if enabled else module_or_fn


def timed(fn, steps, device):
    """Seconds per call of fn() over `steps` calls, after one warm-up call; waits for CUDA work."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def resolve_device(name, setting='device'):
    """torch.device(name), or ValueError naming `setting` when that device cannot be used here
    (a CPU device comes with keep_freed_memory())."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f'{setting}={name!r} is not a device name ({error})') from None
    if not _available(device.type):
        raise ValueError(f'{setting}={name!r}: no {device.type} device on this machine')
    if device.type == 'cuda' and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f'{setting}={name!r}: this machine has {torch.cuda.device_count()} CUDA devices')
    return _chosen(device)
