"""Distributed launch: torchrun / torch.distributed.launch environment, DDP, rank helpers."""

import dataclasses
import gc
import os
import re
import sys

import torch
import torch.distributed as dist

_LOCAL_RANK_FLAG = re.compile(r"^--local[_-]rank(?:=(\d+))?$")


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    is_main: bool


def parse_local_rank_arg(argv):
    """Removes `--local_rank N`, `--local-rank N` or `--local-rank=N` from argv (in place).

    torch.distributed.launch passes the local rank this way; the flags would otherwise reach
    the program's own parser (absl, argparse) and be rejected.

    Returns:
        The local rank as int, or None when no such flag is present.
    """
    local_rank = None
    kept = []
    args = iter(argv)
    for arg in args:
        match = _LOCAL_RANK_FLAG.match(arg)
        if match is None:
            kept.append(arg)
            continue
        value = match.group(1) if match.group(1) is not None else next(args, None)
        if value is None or not value.isdigit():
            raise ValueError(f"{arg} needs a non-negative integer, got {value!r}")
        local_rank = int(value)
    argv[:] = kept
    return local_rank


def init_distributed(backend=None, argv=None):
    """Joins the process group described by the launcher's environment, if there is one.

    Reads RANK, WORLD_SIZE and LOCAL_RANK (torchrun), or the `--local_rank` flag of
    torch.distributed.launch, which is stripped from `argv` (default sys.argv). Without them
    this is a single process and no process group is created.

    Args:
        backend: process-group backend; default nccl with CUDA, gloo without. Asking for gloo
            keeps the process on the CPU, also on a machine with GPUs.
        argv: command line to take `--local_rank` from, modified in place.

    Returns:
        DistInfo of this process; its device is cuda:local_rank when CUDA is available and the
        backend is not gloo.
    """
    flag_local_rank = parse_local_rank_arg(sys.argv if argv is None else argv)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", flag_local_rank or 0))
    if torch.cuda.is_available() and backend != "gloo":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, local_rank, world_size, device, is_main=rank == 0)


def _initialized():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    """Rank of this process in the process group (0 without one)."""
    return dist.get_rank() if _initialized() else 0


def get_world_size():
    """Number of processes in the process group (1 without one)."""
    return dist.get_world_size() if _initialized() else 1


def is_main_process():
    """Whether this process is rank 0 (the one that logs and saves)."""
    return get_rank() == 0


def barrier():
    """Waits for every process of the group; a no-op without one."""
    if _initialized():
        dist.barrier()


def cleanup():
    """Frees unreachable DDP wrappers, then leaves and destroys the process group, if any.

    Drop the references to DDP-wrapped models before calling this: a live DDP reducer keeps the
    group's gloo threads running into interpreter shutdown, where torch 2.13 sometimes aborts
    ("terminate called without an active exception").
    """
    # A DDP wrapper sits in reference cycles: only a collection frees its reducer.
    gc.collect()
    if _initialized():
        dist.destroy_process_group()


def all_reduce_mean(tensor):
    """Mean of `tensor` over all processes; the input is never modified in place."""
    if get_world_size() == 1:
        return tensor
    total = tensor.detach().clone()
    # SUM then divide: ReduceOp.AVG exists only for nccl, not gloo.
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / get_world_size()


def wrap_ddp(model, info, **ddp_kwargs):
    """DistributedDataParallel(model) when world_size > 1, else model unchanged.

    The model must already be on info.device.
    """
    if info.world_size == 1:
        return model
    device_ids = [info.local_rank] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


def rank_seed(seed, rank=None):
    """Seed for this rank's data sampling: seed + rank, so ranks draw different minibatches."""
    return seed + (get_rank() if rank is None else rank)
