"""Generic epoch/batch training loop with eval, visualisation and resumable state (pixelNeRF's trainlib)."""

from .trainer import Trainer  # noqa: F401
