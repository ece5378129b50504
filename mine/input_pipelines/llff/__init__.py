"""LLFF scenes with COLMAP sparse points (the loader MINE released)."""
