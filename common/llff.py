"""LLFF's poses_bounds.npy: loading, saving, axis conventions and the recipe that makes it from COLMAP.

poses_bounds.npy is an [N, 17] float array, one row per image in image-name order: a [3, 5] matrix
flattened row-major, then the near and far depth bounds. The [3, 5] matrix holds the camera-to-world
rotation with columns [down, right, backwards], the camera centre, and a column (height, width,
focal) in pixels.
"""

import os
import warnings

import numpy as np

from common import colmap


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


def poses_bounds_from_colmap(cameras, images, points3D, near_percentile=0.1, far_percentile=99.9):
    """(poses [N, 3, 5], bounds [N, 2], names [N]) of a COLMAP model, as LLFF's imgs2poses.

    Images are sorted by name. Each image's bounds are the given percentiles of the depths (along
    the camera's viewing axis) of the 3D points it observes. The focal length in hwf is the first
    focal parameter (fx); LLFF assumes fx == fy, and a warning names the cameras where they differ.
    LLFF matched points to images through track image ids minus one, which assumes ids 1..N in name
    order; here each image's own observations are used, which gives the same bounds in that case.
    """
    cams = colmap.model_to_cameras(cameras, images)
    fx, fy = cams["intrinsics"][:, 0, 0], cams["intrinsics"][:, 1, 1]
    if np.any(fx != fy):
        uneven = sorted(set(cams["camera_ids"][fx != fy].tolist()))
        warnings.warn(f"cameras {uneven} have fx != fy; poses_bounds keeps fx only")
    width, height = cams["sizes"].T
    hwf = np.stack([height, width, fx], axis=-1).astype(np.float64)

    visible = colmap.points_per_image(images, points3D)
    image_ids = {im.name: image_id for image_id, im in images.items()}
    bounds = []
    for name, camtoworld in zip(cams["names"], cams["camtoworlds"]):
        xyz = visible[image_ids[name]]
        if len(xyz) == 0:
            raise ValueError(
                f"image {name} observes no 3D points, so its depth bounds are undefined"
            )
        depths = (xyz - camtoworld[:3, 3]) @ camtoworld[:3, 2]
        bounds.append(np.percentile(depths, [near_percentile, far_percentile]))
    return opencv_to_llff(cams["camtoworlds"], hwf), np.array(bounds), cams["names"]
