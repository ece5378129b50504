"""Golden-case adapters for the mine package."""
