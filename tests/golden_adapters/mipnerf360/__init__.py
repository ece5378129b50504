"""Golden-case adapters for mipnerf360."""
