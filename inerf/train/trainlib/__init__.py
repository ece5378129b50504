# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""Generic epoch/batch training loop with eval, visualisation and resumable state (pixelNeRF's trainlib)."""

from .trainer import Trainer  # noqa: F401
