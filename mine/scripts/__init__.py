"""Command-line helpers: the CPU demo."""
