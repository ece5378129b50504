"""Mip-NeRF 360 (google-research/multinerf) in PyTorch."""
