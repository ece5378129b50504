"""Procedural scenes, COLMAP through pycolmap, resizing and weight conversion tools."""
