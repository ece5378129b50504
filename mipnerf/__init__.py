"""Mip-NeRF (google/mipnerf) in PyTorch."""
