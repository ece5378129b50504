"""LLFF's poses_bounds.npy: loading, saving and axis conventions.

poses_bounds.npy is an [N, 17] float array, one row per image in image-name order: a [3, 5] matrix
flattened row-major, then the near and far depth bounds. The [3, 5] matrix holds the camera-to-world
rotation with columns [down, right, backwards], the camera centre, and a column (height, width,
focal) in pixels.
"""

import os

import numpy as np


def load_poses_bounds(path):
    """(poses [N, 3, 5], bounds [N, 2]) read from a poses_bounds.npy file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LLFF poses file not found: {path}")
    poses_bounds = np.load(path)
    if poses_bounds.ndim != 2 or poses_bounds.shape[1] != 17:
        raise ValueError(f"{path}: expected an N x 17 array, got shape {poses_bounds.shape}")
    return poses_bounds[:, :15].reshape(-1, 3, 5), poses_bounds[:, 15:]


def save_poses_bounds(path, poses, bounds):
    """Writes poses [N, 3, 5] and bounds [N, 2] to `path` as an N x 17 array."""
    poses, bounds = np.asarray(poses, np.float64), np.asarray(bounds, np.float64)
    if poses.shape[1:] != (3, 5) or bounds.shape != (len(poses), 2):
        raise ValueError(
            f"expected poses [N, 3, 5] and bounds [N, 2], got {poses.shape} and {bounds.shape}"
        )
    # A file object keeps np.save from appending '.npy' to the name.
    with open(path, "wb") as f:
        np.save(f, np.concatenate([poses.reshape(-1, 15), bounds], axis=1))


def llff_to_opencv(poses):
    """(camtoworlds [N, 4, 4] with OpenCV axes [right, down, forward], hwf [N, 3]) of poses [N, 3, 5]."""
    poses = np.asarray(poses, np.float64)
    camtoworlds = np.tile(np.eye(4), (len(poses), 1, 1))
    down, right, backwards, center = np.moveaxis(poses[:, :, :4], -1, 0)
    camtoworlds[:, :3, :4] = np.stack([right, down, -backwards, center], axis=-1)
    return camtoworlds, poses[:, :, 4].copy()


def opencv_to_llff(camtoworlds, hwf):
    """LLFF poses [N, 3, 5] of OpenCV camtoworlds [N, 4, 4] (or [N, 3, 4]) and hwf [N, 3]."""
    camtoworlds = np.asarray(camtoworlds, np.float64)
    right, down, forward, center = np.moveaxis(camtoworlds[:, :3, :4], -1, 0)
    return np.stack([down, right, -forward, center, np.asarray(hwf, np.float64)], axis=-1)


def llff_to_opengl(poses):
    """Camera-to-world [N, 3, 4] with OpenGL axes [right, up, backwards], as NeRF's LLFF loader."""
    poses = np.asarray(poses, np.float64)
    down, right, backwards, center = np.moveaxis(poses[:, :, :4], -1, 0)
    return np.stack([right, -down, backwards, center], axis=-1)
