# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""COLMAP model I/O for MINE's pipelines: the readers of common.colmap and COLMAP's quaternion formula."""

import numpy as np

from common.colmap import (  # noqa: F401  (re-exported: the original's colmap_utils API)
    Camera,
    Image,
    Point3D,
    read_cameras_binary,
    read_images_binary,
    read_model,
    read_points3D_binary,
)


def qvec2rotmat(qvec):
    """Rotation matrix of a (w, x, y, z) quaternion, unnormalised as in COLMAP's script: [4] -> 3x3 float64."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64)
    return np.array([
        [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
        [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
        [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
    ])
