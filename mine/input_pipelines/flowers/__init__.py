"""Flowers light fields: 8x8 sub-aperture views of Lytro ESLF images (never released by MINE)."""
