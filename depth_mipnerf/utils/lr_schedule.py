# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""The fork's MipLRDecay: log-linear decay from lr_init to lr_final with a sine-eased warm-up."""

import math

import torch


def learning_rate_decay(step, lr_init, lr_final, max_steps, lr_delay_steps=0, lr_delay_mult=1.):
    """Learning rate at `step`: lr_init at 0, lr_final at max_steps, scaled by the warm-up factor that
    eases from lr_delay_mult to 1 over lr_delay_steps."""
    delay_rate = 1.
    if lr_delay_steps > 0:
        delay_rate = lr_delay_mult + (1 - lr_delay_mult) * math.sin(0.5 * math.pi * min(max(step / lr_delay_steps, 0), 1))
    t = min(max(step / max_steps, 0), 1)
    return delay_rate * math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)


class MipLRDecay(torch.optim.lr_scheduler.LRScheduler):
    """learning_rate_decay at the scheduler's step count (last_epoch), for every parameter group."""

    def __init__(self, optimizer, lr_init, lr_final, max_steps, lr_delay_steps, lr_delay_mult):
        self.lr_init, self.lr_final, self.max_steps = lr_init, lr_final, max_steps
        self.lr_delay_steps, self.lr_delay_mult = lr_delay_steps, lr_delay_mult
        super().__init__(optimizer)

    def get_lr(self):
        lr = learning_rate_decay(self.last_epoch, self.lr_init, self.lr_final, self.max_steps,
                                 self.lr_delay_steps, self.lr_delay_mult)
        return [lr for _ in self.optimizer.param_groups]
