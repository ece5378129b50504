"""Run by test_dist.py under torchrun: DDP training of a linear model, each rank on half a batch.

Usage: torchrun --standalone --nproc_per_node=2 tests/common/ddp_worker.py OUT_DIR
Each rank writes OUT_DIR/rank{rank}.pt with its final parameters and DistInfo.
"""

import gc
import os
import sys

import torch

from common import dist

NUM_STEPS = 5


def fixed_batch():
    """Inputs [8, 3] and targets [8, 2], the same in every process."""
    generator = torch.Generator().manual_seed(7)
    return torch.randn(8, 3, generator=generator), torch.randn(8, 2, generator=generator)


def train(model, inputs, targets):
    """NUM_STEPS of SGD with momentum on the mean squared error; the last loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(NUM_STEPS):
        loss = torch.mean((model(inputs) - targets) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.detach()


def main(out_dir):
    torch.set_num_threads(1)
    info = dist.init_distributed()
    # A different initialisation on each rank: DDP must broadcast rank 0's to all.
    torch.manual_seed(dist.rank_seed(0))
    linear = torch.nn.Linear(3, 2).to(info.device)
    model = dist.wrap_ddp(linear, info)
    inputs, targets = fixed_batch()
    half = len(inputs) // info.world_size
    rows = slice(info.rank * half, (info.rank + 1) * half)
    loss = train(model, inputs[rows], targets[rows])
    result = {
        "info": {"rank": info.rank, "local_rank": info.local_rank, "world_size": info.world_size,
                 "is_main": info.is_main, "is_main_process": dist.is_main_process()},
        "params": {name: p.detach().cpu() for name, p in linear.named_parameters()},
        "loss": loss.cpu(),
        "mean_loss": dist.all_reduce_mean(loss).cpu(),
    }
    torch.save(result, os.path.join(out_dir, f"rank{info.rank}.pt"))
    # Free DDP (its reducer holds the process group) while the interpreter is alive: see cleanup.
    del model, result, loss
    gc.collect()
    dist.barrier()
    dist.cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
