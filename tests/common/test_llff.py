"""Tests for common/llff.py: poses_bounds.npy I/O, axis conventions and the COLMAP recipe."""

import numpy as np
import pytest

from common import colmap, llff


def random_camtoworlds(n, seed=0):
    """[n, 4, 4] random OpenCV camera-to-world matrices."""
    rng = np.random.default_rng(seed)
    camtoworlds = np.tile(np.eye(4), (n, 1, 1))
    camtoworlds[:, :3, :3] = colmap.qvec2rotmat(rng.normal(size=(n, 4)))
    camtoworlds[:, :3, 3] = rng.normal(size=(n, 3))
    return camtoworlds


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    poses, bounds = rng.normal(size=(6, 3, 5)), rng.uniform(0.1, 10, (6, 2))
    path = tmp_path / "poses_bounds"  # no .npy suffix: the file must be written at this exact path
    llff.save_poses_bounds(path, poses, bounds)
    array = np.load(path)
    assert array.shape == (6, 17)
    np.testing.assert_array_equal(array[:, 15:], bounds)
    np.testing.assert_array_equal(array[:, 4], poses[:, 0, 4])  # rows of [3, 5] flattened in order
    loaded_poses, loaded_bounds = llff.load_poses_bounds(path)
    np.testing.assert_array_equal(loaded_poses, poses)
    np.testing.assert_array_equal(loaded_bounds, bounds)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "poses_bounds.npy")):
        llff.load_poses_bounds(tmp_path / "poses_bounds.npy")
    np.save(tmp_path / "bad.npy", np.zeros((4, 15)))
    with pytest.raises(ValueError, match=r"bad\.npy.*N x 17.*\(4, 15\)"):
        llff.load_poses_bounds(tmp_path / "bad.npy")


def test_opencv_llff_round_trip_is_exact():
    camtoworlds = random_camtoworlds(10)
    hwf = np.tile([48.0, 64.0, 55.5], (10, 1))
    poses = llff.opencv_to_llff(camtoworlds, hwf)
    assert poses.shape == (10, 3, 5)
    back, back_hwf = llff.llff_to_opencv(poses)
    np.testing.assert_array_equal(back, camtoworlds)
    np.testing.assert_array_equal(back_hwf, hwf)
    np.testing.assert_array_equal(llff.opencv_to_llff(back, back_hwf), poses)


def test_llff_columns_are_down_right_backwards():
    # An OpenCV camera at the origin with identity rotation: x right, y down, z forward.
    poses = llff.opencv_to_llff(np.eye(4)[None], np.array([[48.0, 64.0, 50.0]]))
    down, right, backwards = (0, 1, 0), (1, 0, 0), (0, 0, -1)
    np.testing.assert_array_equal(
        poses[0], np.array([down, right, backwards, (0, 0, 0), (48, 64, 50)]).T
    )
    camtoworlds = random_camtoworlds(4)
    poses = llff.opencv_to_llff(camtoworlds, np.ones((4, 3)))
    np.testing.assert_array_equal(poses[:, :, 0], camtoworlds[:, :3, 1])
    np.testing.assert_array_equal(poses[:, :, 1], camtoworlds[:, :3, 0])
    np.testing.assert_array_equal(poses[:, :, 2], -camtoworlds[:, :3, 2])
    np.testing.assert_array_equal(poses[:, :, 3], camtoworlds[:, :3, 3])


def test_llff_to_opengl_flips_y_and_z_of_opencv():
    camtoworlds = random_camtoworlds(4)
    opengl = llff.llff_to_opengl(llff.opencv_to_llff(camtoworlds, np.ones((4, 3))))
    assert opengl.shape == (4, 3, 4)
    np.testing.assert_array_equal(opengl, (camtoworlds @ np.diag([1.0, -1.0, -1.0, 1.0]))[:, :3])


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
            image_id, colmap.rotmat2qvec(R), t, 2, name, np.zeros((len(ids), 2)), ids
        )
    return cameras, images, points3D


def true_depths(image, points3D):
    """Camera-frame z of the points an image observes, straight from its world-to-camera pose."""
    xyz = np.stack([points3D[pid].xyz for pid in image.point3D_ids if pid != -1])
    return (xyz @ colmap.qvec2rotmat(image.qvec).T + image.tvec)[:, 2]


def test_poses_bounds_from_colmap_brackets_point_depths():
    cameras, images, points3D = forward_facing_model()
    poses, bounds, names = llff.poses_bounds_from_colmap(cameras, images, points3D)
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
    _, full_range, _ = llff.poses_bounds_from_colmap(cameras, images, points3D, 0, 100)
    for name, (near, far) in zip(names, full_range):
        depths = true_depths(by_name[name], points3D)
        np.testing.assert_allclose([near, far], [depths.min(), depths.max()], rtol=1e-12)


def test_poses_bounds_from_colmap_keeps_fx_and_warns():
    cameras, images, points3D = forward_facing_model(fx=50.0, fy=52.0)
    with pytest.warns(UserWarning, match="fx != fy"):
        poses, _, _ = llff.poses_bounds_from_colmap(cameras, images, points3D)
    np.testing.assert_array_equal(poses[:, 2, 4], 50.0)


def test_poses_bounds_from_colmap_rejects_image_without_points():
    cameras, images, points3D = forward_facing_model()
    images[3] = images[3]._replace(point3D_ids=np.full(len(images[3].point3D_ids), -1))
    with pytest.raises(ValueError, match="a.png"):
        llff.poses_bounds_from_colmap(cameras, images, points3D)
