"""Rendering MINE MPIs to videos."""
