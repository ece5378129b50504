"""Depth-supervised Mip-NeRF (AlexSheldrick/mipnerf_pl@depth-mipnerf) in plain torch."""
