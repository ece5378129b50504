"""Tests for common/device.py: device choice, CPU autocast opt-in, TF32 switch, opt-in compile."""

import os
import subprocess
import sys

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


PAGE_FAULT_PROBE = """
import resource, sys, torch
from common import device
kept = False
if sys.argv[1] == 'cpu':
    device.pick_device('cpu')
    kept = device.keep_freed_memory()  # cached: the result of the call pick_device made
x, w = torch.ones(65536, 256), torch.ones(256, 256) / 256
def mlp():  # 4 layers of [65536, 256] activations: 64 MiB each, as a NeRF MLP makes them
    h = x
    for _ in range(4):
        h = torch.relu(h @ w + 1)
    return h.sum()
mlp()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    mlp()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc settings')
def test_cpu_device_keeps_freed_memory_so_activations_do_not_fault_pages_in_again():
    """After pick_device('cpu'), the activations of an MLP run again mostly reuse freed heap pages;
    with glibc's defaults each 64 MiB activation is mapped afresh: 16384 page faults (4 KiB pages)
    for each of the 36 activations of three runs."""
    def faults(mode):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = subprocess.run([sys.executable, '-c', PAGE_FAULT_PROBE, mode], capture_output=True, text=True,
                             check=True, cwd=root).stdout.split()
        return out[0] == 'True', int(out[1])
    kept, kept_faults = faults('cpu')
    _, default_faults = faults('none')
    assert kept
    assert default_faults > 36 * 16384 // 2
    # Kept: the first run's pages only (2 to 4 activations' worth, 32k-66k faults measured, more when
    # the machine is busy); glibc's defaults: every activation again (about 590k).
    assert kept_faults < 8 * 16384 < default_faults / 4
