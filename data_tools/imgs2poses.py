"""COLMAP model -> LLFF `poses_bounds.npy` (`python -m data_tools.imgs2poses DATA_DIR`).

Reads the largest model under DATA_DIR/sparse, and writes DATA_DIR/poses_bounds.npy: per image, sorted by
name, the 3x5 LLFF pose (columns down, right, backwards, centre, [h, w, f]) and near/far bounds from the
depths of the 3D points that image sees.
"""

import argparse
import pathlib
import sys

from common import colmap, llff


def imgs2poses(data_dir, near_percentile=0.1, far_percentile=99.9):
    """Writes DATA_DIR/poses_bounds.npy; returns (poses [N,3,5], bounds [N,2], names)."""
    data_dir = pathlib.Path(data_dir)
    model_dir = colmap.find_largest_model(data_dir / "sparse")
    cameras, images, points3D = colmap.read_model(model_dir)
    poses, bounds, names = llff.poses_bounds_from_colmap(
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
