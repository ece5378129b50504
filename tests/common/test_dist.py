"""Tests for common/dist.py: two-process DDP under torchrun matches one process, launcher flags."""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from common import dist
from tests.common import ddp_worker

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_launcher_env(monkeypatch):
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)


def test_torchrun_ddp_two_ranks_match_single_process(tmp_path, no_launcher_env):
    # No visible GPU: the test is about gloo on CPU, and two ranks on one GPU would fail.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO_ROOT / "tests" / "common" / "ddp_worker.py"), str(tmp_path)]
    run = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]

    for rank, result in enumerate(results):
        assert result["info"] == {"rank": rank, "local_rank": rank, "world_size": 2,
                                  "is_main": rank == 0, "is_main_process": rank == 0}

    torch.manual_seed(0)  # rank 0's initialisation, which DDP broadcasts
    reference = torch.nn.Linear(3, 2)
    ddp_worker.train(reference, *ddp_worker.fixed_batch())
    for name, expected in reference.named_parameters():
        assert torch.equal(results[0]["params"][name], results[1]["params"][name])
        torch.testing.assert_close(results[0]["params"][name], expected.detach(),
                                   rtol=0, atol=1e-6)

    # Each rank's last loss is on its own half; the all-reduced mean is their average on both.
    assert not torch.equal(results[0]["loss"], results[1]["loss"])
    expected_mean = (results[0]["loss"] + results[1]["loss"]) / 2
    for result in results:
        torch.testing.assert_close(result["mean_loss"], expected_mean)


@pytest.mark.parametrize("argv", [
    ["train.py", "--local_rank", "3", "--config", "x"],
    ["train.py", "--local-rank", "3", "--config", "x"],
    ["train.py", "--local_rank=3", "--config", "x"],
    ["train.py", "--local-rank=3", "--config", "x"],
    ["train.py", "--config", "x", "--local-rank=3"],
])
def test_parse_local_rank_arg_strips_flag(argv):
    assert dist.parse_local_rank_arg(argv) == 3
    assert argv == ["train.py", "--config", "x"]


def test_parse_local_rank_arg_absent_or_malformed():
    argv = ["train.py", "--local_ranks=2", "--rank", "1"]
    assert dist.parse_local_rank_arg(argv) is None
    assert argv == ["train.py", "--local_ranks=2", "--rank", "1"]
    with pytest.raises(ValueError):
        dist.parse_local_rank_arg(["train.py", "--local_rank"])
    with pytest.raises(ValueError):
        dist.parse_local_rank_arg(["train.py", "--local-rank", "--config"])


def test_no_launcher_env_is_single_process(no_launcher_env):
    argv = ["train.py", "--flag"]
    info = dist.init_distributed(argv=argv)
    assert (info.rank, info.local_rank, info.world_size, info.is_main) == (0, 0, 1, True)
    expected_device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert info.device == expected_device
    assert not torch.distributed.is_initialized()
    assert argv == ["train.py", "--flag"]
    assert dist.is_main_process() and dist.get_world_size() == 1
    dist.barrier()  # no-ops without a process group
    dist.cleanup()
    model = torch.nn.Linear(2, 2)
    assert dist.wrap_ddp(model, info) is model
    value = torch.tensor([1.0, 3.0])
    assert torch.equal(dist.all_reduce_mean(value), value)


def test_legacy_flag_sets_local_rank_without_env(no_launcher_env):
    # Local rank 1 unless the machine has exactly one GPU, which set_device(1) would reject.
    local_rank = 0 if torch.cuda.device_count() == 1 else 1
    argv = ["train.py", f"--local_rank={local_rank}", "--flag"]
    info = dist.init_distributed(argv=argv)
    assert (info.local_rank, info.world_size) == (local_rank, 1)
    assert argv == ["train.py", "--flag"]


def test_rank_seed():
    assert dist.rank_seed(10, rank=3) == 13
    assert dist.rank_seed(10) == 10  # rank 0 without a process group
