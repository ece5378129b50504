"""Data preparation scripts: `python -m mipnerf.scripts.convert_blender_data` (multi-scale Blender)."""
