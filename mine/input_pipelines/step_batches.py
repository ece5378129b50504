"""Training batches as a function of (seed, rank, epoch, step), so that a resumed run draws what an
uninterrupted one draws (port addition; the original's DataLoader shuffles from an unseeded RNG).

Each epoch is one permutation of the source views seeded by seed + epoch (ranks take disjoint slices
of it, as DistributedSampler does); before each step the global torch, numpy and python RNGs are
seeded from (seed, rank, global step), which fixes the dataset's target and point draws and the
trainer's plane disparities of that step without saving any RNG state.
"""

import random

import numpy as np
import torch


def step_seed(seed, rank, global_step):
    """A 32-bit seed of (seed, rank, global_step), distinct for distinct triples in practice."""
    return int(np.random.SeedSequence([seed, rank, global_step]).generate_state(1)[0])


def seed_step(seed, rank, global_step):
    """Seeds torch (CPU and CUDA), numpy and python `random` for one training step; returns the seed."""
    value = step_seed(seed, rank, global_step)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)
    return value


def epoch_order(num_items, seed, epoch, rank, world_size, device="cpu"):
    """This rank's slice of the epoch's permutation of range(num_items) (the same permutation on every rank)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + epoch)
    order = torch.randperm(num_items, generator=generator, device=device)
    return order[rank:num_items - num_items % world_size:world_size]


class HostBatches:
    """Batches of a map-style Dataset collated on the host: len() per epoch (drop_last), batch_at(order, i)."""

    def __init__(self, dataset, batch_size, seed=0, rank=0, world_size=1):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self):
        return len(self.dataset) // self.world_size // self.batch_size

    def epoch_order(self, epoch):
        """This rank's source indices of `epoch`, in drawing order."""
        return epoch_order(len(self.dataset), self.seed, epoch, self.rank, self.world_size)

    def batch_at(self, order, i):
        """The collated batch i of an epoch's order; its random draws use the global RNGs (seed_step)."""
        indices = order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
        return self.dataset.collate_fn([self.dataset[j] for j in indices])
