"""Golden-case adapters for mipnerf."""
