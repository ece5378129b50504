"""Procedural "dead-leaves" textures: sharp random disks and squares at several scales.

The texture is a function of a 2D texture coordinate, evaluated at each ray hit, so it has no
resolution of its own and every view sees the same surface pattern. The plane is split into square
cells at each scale; each cell holds one leaf (a disk or an axis-aligned square, centred in the
cell, reaching at most half a cell beyond its cell), drawn from an integer hash of the cell index,
the scale and a texture key. Of all leaves covering a point, the one with the largest hashed
stacking order is visible, as in the dead-leaves model where leaves fall one over another; a point
no leaf covers shows the base colour. The hard leaf edges give the sharp corners SIFT needs.
"""

import numpy as np

# Odd 32-bit constants of a low-bias integer hash (two multiply-xorshift rounds), of the cell-index
# mix, and salts that decorrelate the scales and the colour hash.
_HASH_MUL = (np.uint32(0x7FEB352D), np.uint32(0x846CA68B))
_CELL_X, _CELL_Y = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77)
_SALT_LEVEL, _SALT_COLOUR = 0xC2B2AE3D, np.uint32(0x165667B1)

# A leaf is one 32-bit cell hash: bits 0-5 and 6-11 its centre in the cell (64 steps), bits 12-16
# its radius (or half side), bit 17 square or disk, bits 18-31 its stacking order.
MIN_HALF_SIZE, MAX_HALF_SIZE = 0.2, 0.5  # in cell units; <= .5 keeps the 2x2 stencil below exact


def hash32(x):
    """Avalanching integer hash: x: [...] uint32 -> [...] uint32 (arithmetic wraps mod 2^32)."""
    x = x ^ (x >> 16)
    x = x * _HASH_MUL[0]
    x = x ^ (x >> 15)
    x = x * _HASH_MUL[1]
    return x ^ (x >> 16)


def bits(x, first, count):
    """Bits first .. first+count-1 of x as an integer: [...] uint32 -> [...] uint32."""
    return (x >> first) & np.uint32((1 << count) - 1)


def leaf_colours(leaf_hash, base_colour):
    """Colour of the leaves with these hashes: [...] uint32, base [3] -> [..., 3] in [0, 1]."""
    h = hash32(leaf_hash ^ _SALT_COLOUR)
    tint = np.stack([bits(h, 8 * c, 8) / 255.0 for c in range(3)], axis=-1)
    brightness = 0.25 + 0.75 * bits(h, 24, 8) / 255.0
    return brightness[..., None] * (0.7 * np.asarray(base_colour) + 0.3 * tint)


def dead_leaves(uv, key, base_colour, finest, levels, detail_radius=None):
    """Albedo of a multi-scale dead-leaves texture: uv: [N, 2], key: [N] uint32 -> [N, 3].

    Args:
      uv: texture coordinates in world units.
      key: per-point texture key (which surface and face); equal keys give equal patterns.
      base_colour: [3] mean tint of the texture, also the colour where no leaf lies.
      finest: cell size of the finest scale; scale l has cells of finest * 2^l, l < levels.
      detail_radius: if set, a leaf of cell size s exists only while its centre lies within
        detail_radius * sqrt(s / finest) of the uv origin, so detail fades with distance from the
        scene centre and a far ground stays almost free of aliasing without view-dependent
        filtering. The sqrt follows the pixel footprint along a ground seen from height h at
        distance D, which grows as D^2 / (f h).
    """
    uv = np.asarray(uv, np.float64)
    best_order = np.full(len(uv), -1, np.int64)
    best_hash = np.zeros(len(uv), np.uint32)
    for level in range(levels):
        size = finest * 2.0**level
        level_key = hash32(key ^ np.uint32(level * _SALT_LEVEL % 2**32))
        grid_x, grid_y = uv[:, 0] / size, uv[:, 1] / size
        # A leaf reaches at most half a cell past its own cell, so only the 2x2 cells around the
        # nearest cell corner can cover the point: cells corner + (0 or 1) on each axis.
        corner_x, corner_y = np.floor(grid_x - 0.5), np.floor(grid_y - 0.5)
        # int64 -> uint32 wraps negative indices around, which keeps them distinct.
        cell_x, cell_y = corner_x.astype(np.int64).astype(np.uint32), corner_y.astype(np.int64).astype(np.uint32)
        for dx in (0, 1):
            for dy in (0, 1):
                h = hash32((cell_x + np.uint32(dx)) * _CELL_X + (cell_y + np.uint32(dy)) * _CELL_Y + level_key)
                # Point minus leaf centre, in cells.
                off_x = grid_x - (corner_x + dx + (bits(h, 0, 6) + 0.5) / 64)
                off_y = grid_y - (corner_y + dy + (bits(h, 6, 6) + 0.5) / 64)
                half = MIN_HALF_SIZE + (MAX_HALF_SIZE - MIN_HALF_SIZE) / 31 * bits(h, 12, 5)
                covered = np.where(
                    bits(h, 17, 1) == 1,
                    np.maximum(np.abs(off_x), np.abs(off_y)) < half,
                    off_x**2 + off_y**2 < half**2,
                )
                if detail_radius is not None:
                    centre_sq = (grid_x - off_x) ** 2 + (grid_y - off_y) ** 2
                    covered &= centre_sq * size**2 < detail_radius**2 * (size / finest)
                order = (h >> 18).astype(np.int64)
                wins = covered & (order > best_order)
                best_order = np.where(wins, order, best_order)
                best_hash = np.where(wins, h, best_hash)
    colours = leaf_colours(best_hash, base_colour)
    return np.where((best_order >= 0)[:, None], colours, np.asarray(base_colour, np.float64))
