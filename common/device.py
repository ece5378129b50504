"""Device choice and the opt-in GPU speed-ups: TF32, bf16 autocast, torch.compile."""

import contextlib
import time

import torch


def _available(device_type):
    """Whether torch can run on `device_type` ("cpu", "cuda", "mps") on this machine."""
    if device_type == "cuda":
        return torch.cuda.is_available()
    if device_type == "mps":
        return torch.backends.mps.is_available()
    return device_type == "cpu"


def pick_device(prefer="cuda"):
    """The `prefer` device ("cuda", "cuda:1", "mps", "cpu") when it is available, else the CPU."""
    device = torch.device(prefer)
    return device if _available(device.type) else torch.device("cpu")


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
    """torch.device(name), or ValueError naming `setting` when that device cannot be used here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f'{setting}={name!r} is not a device name ({error})') from None
    if not _available(device.type):
        raise ValueError(f'{setting}={name!r}: no {device.type} device on this machine')
    if device.type == 'cuda' and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f'{setting}={name!r}: this machine has {torch.cuda.device_count()} CUDA devices')
    return device
