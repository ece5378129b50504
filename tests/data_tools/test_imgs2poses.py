"""data_tools.imgs2poses: LLFF's poses_bounds recipe on a COLMAP model with known point depths."""

import numpy as np
import pytest

from common import colmap, llff
from data_tools import colmap as colmap_tools
from data_tools import imgs2poses


def forward_facing_model(fx=50.0, fy=50.0):
    """Four cameras looking down +z at points 2..6 in front of them; image ids not in name order."""
    rng = np.random.default_rng(1)
    cameras = {2: colmap.Camera(2, "PINHOLE", 64, 48, np.array([fx, fy, 32.0, 24.0]))}
    points3D, images = {}, {}
    xyz = np.concatenate([rng.uniform(-0.5, 0.5, (400, 2)), rng.uniform(2, 6, (400, 1))], axis=1)
    for pid, p in enumerate(xyz, start=10):
        points3D[pid] = colmap.Point3D(
            pid, p, np.zeros(3, np.uint8), 0.0, np.zeros(0, np.int64), np.zeros(0, np.int64)
        )
    for image_id, name in zip([8, 3, 5, 1], ["c.png", "a.png", "d.png", "b.png"]):
        R = colmap.qvec2rotmat(np.concatenate([[1.0], rng.normal(0, 0.05, 3)]))
        t = rng.normal(0, 0.2, 3)
        seen = np.flatnonzero(rng.random(len(xyz)) < 0.8) + 10
        ids = np.concatenate([seen, [-1, -1]])  # two keypoints without a 3D point
        images[image_id] = colmap.Image(
            image_id, colmap_tools.rotmat2qvec(R), t, 2, name, np.zeros((len(ids), 2)), ids
        )
    return cameras, images, points3D


def true_depths(image, points3D):
    """Camera-frame z of the points an image observes, straight from its world-to-camera pose."""
    xyz = np.stack([points3D[pid].xyz for pid in image.point3D_ids if pid != -1])
    return (xyz @ colmap.qvec2rotmat(image.qvec).T + image.tvec)[:, 2]


def test_poses_bounds_from_colmap_brackets_point_depths():
    cameras, images, points3D = forward_facing_model()
    poses, bounds, names = imgs2poses.poses_bounds_from_colmap(cameras, images, points3D)
    assert names == ["a.png", "b.png", "c.png", "d.png"]
    by_name = {im.name: im for im in images.values()}
    camtoworlds, hwf = llff.llff_to_opencv(poses)
    np.testing.assert_array_equal(hwf, np.tile([48.0, 64.0, 50.0], (4, 1)))
    for name, camtoworld, (near, far) in zip(names, camtoworlds, bounds):
        im = by_name[name]
        np.testing.assert_allclose(
            camtoworld, np.linalg.inv(colmap.world_to_camera(im)), atol=1e-12
        )
        depths = true_depths(im, points3D)
        # The 0.1 / 99.9 percentiles sit just inside the extreme depths.
        assert (
            depths.min() <= near < np.percentile(depths, 1)
            and np.percentile(depths, 99) < far <= depths.max()
        )
        np.testing.assert_allclose([near, far], np.percentile(depths, [0.1, 99.9]), rtol=1e-12)
    _, full_range, _ = imgs2poses.poses_bounds_from_colmap(cameras, images, points3D, 0, 100)
    for name, (near, far) in zip(names, full_range):
        depths = true_depths(by_name[name], points3D)
        np.testing.assert_allclose([near, far], [depths.min(), depths.max()], rtol=1e-12)


def test_poses_bounds_from_colmap_keeps_fx_and_warns():
    cameras, images, points3D = forward_facing_model(fx=50.0, fy=52.0)
    with pytest.warns(UserWarning, match="fx != fy"):
        poses, _, _ = imgs2poses.poses_bounds_from_colmap(cameras, images, points3D)
    np.testing.assert_array_equal(poses[:, 2, 4], 50.0)


def test_poses_bounds_from_colmap_rejects_image_without_points():
    cameras, images, points3D = forward_facing_model()
    images[3] = images[3]._replace(point3D_ids=np.full(len(images[3].point3D_ids), -1))
    with pytest.raises(ValueError, match="a.png"):
        imgs2poses.poses_bounds_from_colmap(cameras, images, points3D)
