"""COLMAP model -> LLFF `poses_bounds.npy` (`python -m data_tools.imgs2poses DATA_DIR`).

Reads the largest model under DATA_DIR/sparse, and writes DATA_DIR/poses_bounds.npy: per image, sorted by
name, the 3x5 LLFF pose (columns down, right, backwards, centre, [h, w, f]) and near/far bounds from the
depths of the 3D points that image sees.
"""

import argparse
import pathlib
import sys
import warnings

import numpy as np

from common import colmap, llff


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
    return llff.opencv_to_llff(cams["camtoworlds"], hwf), np.array(bounds), cams["names"]


def imgs2poses(data_dir, near_percentile=0.1, far_percentile=99.9):
    """Writes DATA_DIR/poses_bounds.npy; returns (poses [N,3,5], bounds [N,2], names)."""
    data_dir = pathlib.Path(data_dir)
    model_dir = colmap.find_largest_model(data_dir / "sparse")
    cameras, images, points3D = colmap.read_model(model_dir)
    poses, bounds, names = poses_bounds_from_colmap(
        cameras, images, points3D, near_percentile=near_percentile, far_percentile=far_percentile)
    llff.save_poses_bounds(data_dir / "poses_bounds.npy", poses, bounds)
    return poses, bounds, names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="scene folder holding sparse/ (from data_tools.colmap)")
    args = parser.parse_args(argv)
    try:
        poses, bounds, names = imgs2poses(args.data_dir)
    except (FileNotFoundError, ValueError) as failure:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {pathlib.Path(args.data_dir) / 'poses_bounds.npy'}: {len(names)} images, "
          f"near {bounds[:, 0].min():.3f}, far {bounds[:, 1].max():.3f}")


if __name__ == "__main__":
    main()
