# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""NeRF positional encoding as pixelNeRF computes it: sin(x * f + phase), phase 0 or pi/2."""

import numpy as np
import torch


class PositionalEncoding(torch.nn.Module):
    """x (N, d_in) -> (N, d_out) = [x, sin(f1 x), cos(f1 x), sin(f2 x), ...], f_k = freq_factor 2^k."""

    def __init__(self, num_freqs=6, d_in=3, freq_factor=np.pi, include_input=True):
        super().__init__()
        self.num_freqs = num_freqs
        self.d_in = d_in
        self.freqs = freq_factor * 2.0 ** torch.arange(0, num_freqs)
        self.d_out = self.num_freqs * 2 * d_in + (d_in if include_input else 0)
        self.include_input = include_input
        # each frequency twice: once with phase 0 (sin), once with phase pi/2 (cos)
        self.register_buffer("_freqs", torch.repeat_interleave(self.freqs, 2).view(1, -1, 1))
        phases = torch.zeros(2 * self.num_freqs)
        phases[1::2] = np.pi * 0.5
        self.register_buffer("_phases", phases.view(1, -1, 1))

    def forward(self, x):
        """x (batch, d_in) -> (batch, d_out)."""
        embed = x.unsqueeze(1).repeat(1, self.num_freqs * 2, 1)
        embed = torch.sin(torch.addcmul(self._phases, embed, self._freqs))
        embed = embed.view(x.shape[0], -1)
        if self.include_input:
            embed = torch.cat((x, embed), dim=-1)
        return embed

    @classmethod
    def from_conf(cls, conf, d_in=3):
        """From a HOCON `code` block (num_freqs, freq_factor, include_input)."""
        return cls(conf.get_int("num_freqs", 6), d_in, conf.get_float("freq_factor", np.pi),
                   conf.get_bool("include_input", True))
