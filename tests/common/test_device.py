"""Tests for common/device.py: device choice, CPU autocast opt-in, TF32 switch, opt-in compile."""

import pytest
import torch

from common import device


def test_pick_device_falls_back_to_cpu():
    assert device.pick_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    assert device.pick_device() == expected
    if not torch.backends.mps.is_available():
        assert device.pick_device("mps") == torch.device("cpu")


def test_autocast_is_noop_on_cpu_unless_requested():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with device.autocast(torch.device("cpu"), enabled=True):
        assert (a @ b).dtype == torch.float32
    with device.autocast("cpu", enabled=True, on_cpu=True):
        assert (a @ b).dtype == torch.bfloat16
    with device.autocast("cpu", enabled=False, on_cpu=True):
        assert (a @ b).dtype == torch.float32


def test_setup_tf32_toggles_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        device.setup_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        device.setup_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_maybe_compile_disabled_returns_input():
    module = torch.nn.Linear(2, 2)
    assert device.maybe_compile(module, enabled=False) is module


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch._dynamo's import
def test_maybe_compile_enabled_wraps():
    module = torch.nn.Linear(2, 2)
    compiled = device.maybe_compile(module, enabled=True)  # compiles lazily, on the first call
    assert compiled is not module and compiled._orig_mod is module


def test_timed_warms_up_once_then_averages_over_the_steps():
    calls = []
    seconds = device.timed(lambda: calls.append(1), 4, torch.device("cpu"))
    assert len(calls) == 5 and seconds >= 0
