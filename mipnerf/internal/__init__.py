"""Core modules, one per google/mipnerf internal/ file."""
