"""Golden-case adapters for depth_mipnerf."""
