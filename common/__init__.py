"""Shared camera/ray math, pose I/O, metrics, checkpoints, distributed launch and logging."""
