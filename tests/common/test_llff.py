"""Tests for common/llff.py: poses_bounds.npy I/O and axis conventions."""

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
