"""Tests for common/colmap.py: file I/O (against pycolmap), poses, cameras and visible points."""

import os

import numpy as np
import pycolmap
import pytest

from common import colmap
from data_tools import colmap as colmap_tools

WIDTH, HEIGHT = 64, 48


def look_at_w2c(center, target):
    """[3, 3] rotation and [3] translation of an OpenCV camera at `center` looking at `target`."""
    forward = (target - center) / np.linalg.norm(target - center)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ center


def project_with_params(camera, x_cam):
    """Pixels of camera-frame points x_cam: [K, 3], read straight from PINHOLE/OPENCV params."""
    x, y = x_cam[:, 0] / x_cam[:, 2], x_cam[:, 1] / x_cam[:, 2]
    fx, fy, cx, cy = camera.params[:4]
    if camera.model == "OPENCV":
        k1, k2, p1, p2 = camera.params[4:]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2
        x, y = (
            x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
        )
    return np.stack([fx * x + cx, fy * y + cy], axis=-1)


def make_model(seed=0, num_images=5, num_points=50):
    """Random model: a PINHOLE and an OPENCV camera, images orbiting the origin, points near it.

    Image ids are not in name order; each image observes a random subset of the points (projected
    exactly) plus a few keypoints without a 3D point, in shuffled order.
    """
    rng = np.random.default_rng(seed)
    cameras = {
        1: colmap.Camera(1, "PINHOLE", WIDTH, HEIGHT, np.array([50.0, 55.0, 32.5, 23.5])),
        7: colmap.Camera(
            7, "OPENCV", WIDTH, HEIGHT, np.array([60.0, 58.0, 31.0, 25.0, 0.02, -0.01, 1e-3, -2e-3])
        ),
    }
    point_ids = rng.choice(10**6, num_points, replace=False) + 1
    xyz = rng.uniform(-1, 1, (num_points, 3))
    image_ids = rng.permutation(np.arange(1, 3 * num_images, 3))
    tracks = {pid: [] for pid in point_ids}
    images = {}
    for i, image_id in enumerate(image_ids):
        angle = 2 * np.pi * i / num_images
        center = np.array([4 * np.cos(angle), 4 * np.sin(angle), rng.uniform(-1, 1)])
        R, t = look_at_w2c(center, rng.normal(0, 0.1, 3))
        camera = cameras[1 if i % 2 else 7]
        seen = np.flatnonzero(rng.random(num_points) < 0.7)
        xys = np.concatenate(
            [project_with_params(camera, xyz[seen] @ R.T + t), rng.uniform(0, 40, (3, 2))]
        )
        ids = np.concatenate([point_ids[seen], np.full(3, -1)])
        order = rng.permutation(len(ids))
        xys, ids = xys[order], ids[order]
        for idx, pid in enumerate(ids):
            if pid != -1:
                tracks[pid].append((image_id, idx))
        images[int(image_id)] = colmap.Image(
            int(image_id), colmap_tools.rotmat2qvec(R), t, camera.id, f"img_{i:03d}.png", xys, ids
        )
    points3D = {
        int(pid): colmap.Point3D(
            int(pid),
            xyz[j],
            rng.integers(0, 256, 3).astype(np.uint8),
            float(rng.uniform(0, 2)),
            np.array([e[0] for e in tracks[pid]], np.int64),
            np.array([e[1] for e in tracks[pid]], np.int64),
        )
        for j, pid in enumerate(point_ids)
    }
    return cameras, images, points3D


def assert_models_equal(a, b):
    """Same ids and bit-identical fields; the readers give each dict in id order."""
    for items_a, items_b in zip(a, b):
        assert list(items_a) == sorted(items_a) and set(items_a) == set(items_b)
        for key in items_a:
            for field, value in items_a[key]._asdict().items():
                np.testing.assert_array_equal(getattr(items_b[key], field), value, err_msg=field)


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_write_read_round_trip(tmp_path, ext):
    model = make_model()
    colmap_tools.write_model(*model, tmp_path / "model", ext=ext)
    # pycolmap writes COLMAP >= 3.12's layout: rigs and frames beside the classic files.
    assert sorted(os.listdir(tmp_path / "model")) == sorted(
        f"{n}{ext}" for n in ("cameras", "images", "points3D", "rigs", "frames")
    )
    assert_models_equal(colmap.read_model(tmp_path / "model"), model)
    assert_models_equal(colmap.read_model(tmp_path / "model", ext=ext), model)


def without_image(model, image_id):
    """The model less one image and the 3D points it observes (tracks must name existing images)."""
    cameras, images, points3D = model
    images = {k: im for k, im in images.items() if k != image_id}
    return cameras, images, {k: pt for k, pt in points3D.items() if image_id not in pt.image_ids}


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_round_trip_keeps_image_without_points(tmp_path, ext):
    cameras, images, points3D = without_image(make_model(), 1)
    images[1] = colmap.Image(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "bare.png",
                             np.zeros((0, 2)), np.zeros(0, np.int64))  # fmt: skip
    colmap_tools.write_model(cameras, images, points3D, tmp_path, ext=ext)
    assert_models_equal(colmap.read_model(tmp_path), (cameras, images, points3D))


def test_names_with_spaces_need_binary_files(tmp_path):
    cameras, images, points3D = make_model()
    images = {k: im._replace(name=f"a name {k}.png") for k, im in images.items()}
    colmap_tools.write_model(cameras, images, points3D, tmp_path / "bin")
    assert_models_equal(colmap.read_model(tmp_path / "bin"), (cameras, images, points3D))
    # COLMAP's text reader ends a name at its first space.
    with pytest.raises(ValueError, match=f"{tmp_path / 'txt'}: image name 'a name .*' has a space"):
        colmap_tools.write_model(cameras, images, points3D, tmp_path / "txt", ext=".txt")


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_file_readers_need_only_the_files_before_them(tmp_path, ext):
    cameras, images, points3D = make_model()
    colmap_tools.write_model(cameras, images, points3D, tmp_path, ext=ext)
    os.remove(tmp_path / f"points3D{ext}")
    read_cameras, read_images = (
        (colmap.read_cameras_binary, colmap.read_images_binary)
        if ext == ".bin"
        else (colmap.read_cameras_text, colmap.read_images_text)
    )
    assert_models_equal([read_images(tmp_path / f"images{ext}")], [images])
    os.rename(tmp_path / f"cameras{ext}", tmp_path / "other")  # any file name
    assert_models_equal([read_cameras(tmp_path / "other")], [cameras])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / f"cameras{ext}")):
        read_images(tmp_path / f"images{ext}")


def test_read_points3D_binary_reads_the_model_beside_it(tmp_path):
    model = make_model()
    colmap_tools.write_model(*model, tmp_path)
    assert_models_equal([colmap.read_points3D_binary(tmp_path / "points3D.bin")], [model[2]])
    os.remove(tmp_path / "images.bin")  # pycolmap checks the tracks against the images
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "images.bin")):
        colmap.read_points3D_binary(tmp_path / "points3D.bin")


def test_read_model_prefers_bin_and_names_missing_files(tmp_path):
    cameras, images, points3D = make_model()
    colmap_tools.write_model(cameras, images, points3D, tmp_path, ext=".txt")
    colmap_tools.write_model(cameras, {}, {}, tmp_path, ext=".bin")
    assert colmap.read_model(tmp_path)[1] == {}  # the binary model wins when both are complete
    os.remove(tmp_path / "points3D.bin")
    assert len(colmap.read_model(tmp_path)[1]) == 5  # falls back to the complete text model
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "points3D.bin")):
        colmap.read_model(tmp_path, ext=".bin")
    os.remove(tmp_path / "images.txt")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "points3D.bin")):
        colmap.read_model(tmp_path)


def test_read_errors_name_the_files(tmp_path):
    model = make_model()
    colmap_tools.write_model(*model, tmp_path)
    with open(tmp_path / "cameras.bin", "r+b") as f:
        f.seek(12)  # the first camera's model id
        f.write((99).to_bytes(4, "little"))
    with pytest.raises(ValueError, match=str(tmp_path / "cameras.bin")):
        colmap.read_model(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c, i, p: ({1: c[1]._replace(model="NOT_A_MODEL")} | {7: c[7]}, i, p), "unknown"),
        (lambda c, i, p: ({1: c[1]._replace(params=np.ones(3))} | {7: c[7]}, i, p), "PINHOLE takes"),
        # A track element whose 2D point observes another 3D point (COLMAP would not read it).
        (lambda c, i, p: (c, i, {k: v._replace(point2D_idxs=v.point2D_idxs + 1) for k, v in p.items()}),
         "Check failed"),
        # Images deleted but still in tracks.
        (lambda c, i, p: (c, dict(list(i.items())[1:]), p), "does not exist"),
    ],
)  # fmt: skip
def test_write_model_rejects_models_colmap_cannot_read(tmp_path, change, message):
    model = change(*make_model())
    with pytest.raises(ValueError, match=message) as error:
        colmap_tools.write_model(*model, tmp_path / "model")
    assert str(tmp_path / "model") in str(error.value)
    assert not os.path.exists(tmp_path / "model")


def to_pycolmap(cameras, images, points3D):
    """The model built through pycolmap's own API (no files involved)."""
    rec = pycolmap.Reconstruction()
    for cam in cameras.values():
        camera = pycolmap.Camera.create_from_model_name(
            cam.id, cam.model, 1.0, cam.width, cam.height
        )
        camera.params = cam.params
        rec.add_camera_with_trivial_rig(camera)
    for im in images.values():
        image = pycolmap.Image(
            name=im.name, keypoints=im.xys, camera_id=im.camera_id, image_id=im.id
        )
        xyzw = np.roll(im.qvec, -1)
        rec.add_image_with_trivial_frame(
            image, pycolmap.Rigid3d(pycolmap.Rotation3d(xyzw), im.tvec)
        )
    for pt in points3D.values():
        track = pycolmap.Track()
        for image_id, idx in zip(pt.image_ids, pt.point2D_idxs):
            track.add_element(int(image_id), int(idx))
        rec.add_point3D(pt.xyz, track, pt.rgb)
    return rec


def assert_matches_pycolmap(rec, cameras, images, points3D):
    """Our model dicts hold what pycolmap's Reconstruction holds."""
    assert set(cameras) == set(rec.cameras) and set(images) == set(rec.images)
    for cam_id, camera in rec.cameras.items():
        ours = cameras[cam_id]
        assert (ours.model, ours.width, ours.height) == (
            camera.model_name,
            camera.width,
            camera.height,
        )
        np.testing.assert_array_equal(ours.params, camera.params)
    for image_id, image in rec.images.items():
        ours = images[image_id]
        assert (ours.name, ours.camera_id) == (image.name, image.camera_id)
        cam_from_world = image.cam_from_world()
        np.testing.assert_allclose(np.roll(ours.qvec, -1), cam_from_world.rotation.quat, atol=1e-15)
        np.testing.assert_allclose(
            colmap.qvec2rotmat(ours.qvec), cam_from_world.rotation.matrix(), atol=1e-15
        )
        np.testing.assert_array_equal(ours.tvec, cam_from_world.translation)
        np.testing.assert_array_equal(ours.xys, [p.xy for p in image.points2D])
        pycolmap_ids = [p.point3D_id if p.has_point3D() else -1 for p in image.points2D]
        assert (ours.point3D_ids != -1).sum() == image.num_points3D
        # pycolmap may renumber points: compare observations through their coordinates.
        for our_id, their_id in zip(ours.point3D_ids, pycolmap_ids):
            assert (our_id == -1) == (their_id == -1)
            if our_id != -1:
                np.testing.assert_array_equal(points3D[our_id].xyz, rec.points3D[their_id].xyz)
    assert len(points3D) == len(rec.points3D)
    by_xyz = {tuple(pt.xyz): pt for pt in points3D.values()}
    for point in rec.points3D.values():
        ours = by_xyz[tuple(point.xyz)]
        np.testing.assert_array_equal(ours.rgb, point.color)
        assert len(ours.image_ids) == point.track.length()
        assert sorted(zip(ours.image_ids, ours.point2D_idxs)) == sorted(
            (e.image_id, e.point2D_idx) for e in point.track.elements
        )


@pytest.mark.parametrize("writer", ["write_binary", "write_text"])
def test_reads_files_written_by_pycolmap(tmp_path, writer):
    model = make_model()
    rec = to_pycolmap(*model)
    getattr(rec, writer)(str(tmp_path))
    ext = ".bin" if writer == "write_binary" else ".txt"
    # COLMAP >= 3.12 writes rigs and frames next to the classic files; they must not get in the way.
    assert os.path.isfile(tmp_path / f"rigs{ext}") and os.path.isfile(tmp_path / f"frames{ext}")
    cameras, images, points3D = colmap.read_model(tmp_path)
    assert_matches_pycolmap(pycolmap.Reconstruction(str(tmp_path)), cameras, images, points3D)
    # And against the model pycolmap was built from.
    for image_id, im in model[1].items():
        assert images[image_id].name == im.name
        np.testing.assert_allclose(images[image_id].qvec, im.qvec, atol=1e-15)
    for cam_id, cam in model[0].items():
        np.testing.assert_array_equal(cameras[cam_id].params, cam.params)
    np.testing.assert_array_equal(
        sorted(len(pt.image_ids) for pt in points3D.values()),
        sorted(len(pt.image_ids) for pt in model[2].values()),
    )
    assert colmap.find_largest_model(tmp_path) == tmp_path


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_pycolmap_reads_files_we_wrote(tmp_path, ext):
    model = make_model()
    colmap_tools.write_model(*model, tmp_path, ext=ext)
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert rec.num_reg_images() == 5
    assert_matches_pycolmap(rec, *model)


def test_qvec_rotmat_round_trip():
    rng = np.random.default_rng(0)
    qvec = rng.normal(size=(200, 4))
    qvec[:3, 0] = [0.0, 1e-9, -1e-9]  # rotations by (almost) 180 degrees
    qvec /= np.linalg.norm(qvec, axis=-1, keepdims=True)
    qvec *= np.where(qvec[:, :1] < 0, -1, 1)
    R = colmap.qvec2rotmat(qvec)
    np.testing.assert_allclose(
        R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-14
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    for q, rot in zip(qvec[:20], R[:20]):
        np.testing.assert_allclose(rot, pycolmap.Rotation3d(np.roll(q, -1)).matrix(), atol=1e-14)
    round_trip = colmap_tools.rotmat2qvec(R)
    # A rotation by 180 degrees has w == 0, so q and -q both have w >= 0: compare up to sign.
    sign = np.sign(np.sum(round_trip * qvec, axis=-1, keepdims=True))
    np.testing.assert_allclose(round_trip * sign, qvec, atol=1e-12)
    assert np.all(round_trip[3:, 0] >= 0)
    np.testing.assert_allclose(colmap_tools.rotmat2qvec(np.eye(3)), [1, 0, 0, 0], atol=1e-15)


def test_find_largest_model_picks_most_images_then_most_points(tmp_path):
    cameras, images, points3D = make_model()
    for image_id in list(images)[3:]:
        cameras, images, points3D = without_image((cameras, images, points3D), image_id)
    colmap_tools.write_model(cameras, images, points3D, tmp_path / "0")
    cameras, images, points3D = make_model()
    colmap_tools.write_model(
        cameras, images, dict(list(points3D.items())[:10]), tmp_path / "1", ext=".txt"
    )
    os.makedirs(tmp_path / "notes")
    assert colmap.find_largest_model(tmp_path) == os.path.join(tmp_path, "1")
    colmap_tools.write_model(cameras, images, points3D, tmp_path / "2")
    assert colmap.find_largest_model(tmp_path) == os.path.join(
        tmp_path, "2"
    )  # tie on images: more points


def test_find_largest_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        colmap.find_largest_model(tmp_path / "missing")
    os.makedirs(tmp_path / "0")
    with pytest.raises(FileNotFoundError, match="No COLMAP model"):
        colmap.find_largest_model(tmp_path)


def project(camtoworld, K, distortion, xyz):
    """Pixels of world points xyz: [K, 3] through an OpenCV camera and its distortion dict."""
    x_cam = (xyz - camtoworld[:3, 3]) @ camtoworld[:3, :3]
    x, y = x_cam[:, 0] / x_cam[:, 2], x_cam[:, 1] / x_cam[:, 2]
    d = distortion
    r2 = x * x + y * y
    radial = 1 + r2 * (d["k1"] + r2 * (d["k2"] + r2 * (d["k3"] + r2 * d["k4"])))
    xd = x * radial + 2 * d["p1"] * x * y + d["p2"] * (r2 + 2 * x * x)
    yd = y * radial + d["p1"] * (r2 + 2 * y * y) + 2 * d["p2"] * x * y
    return (np.stack([xd, yd, np.ones_like(xd)], -1) @ K.T)[:, :2]


def test_model_to_cameras_reprojects_observations():
    cameras, images, points3D = make_model()
    cams = colmap.model_to_cameras(cameras, images)
    ordered = sorted(images.values(), key=lambda im: im.name)
    assert cams["names"] == sorted(im.name for im in images.values())
    assert cams["camtoworlds"].shape == (5, 4, 4) and cams["camtoworlds"].dtype == np.float64
    np.testing.assert_array_equal(cams["sizes"], np.tile([WIDTH, HEIGHT], (5, 1)))
    assert cams["camera_types"] == ["perspective"] * 5
    num_checked = 0
    for i, im in enumerate(ordered):
        observed = im.point3D_ids != -1
        xyz = np.stack([points3D[pid].xyz for pid in im.point3D_ids[observed]])
        pixels = project(cams["camtoworlds"][i], cams["intrinsics"][i], cams["distortion"][i], xyz)
        np.testing.assert_allclose(pixels, im.xys[observed], atol=1e-9)
        num_checked += len(xyz)
        # The camera centre is -R^T t and the bottom row is [0, 0, 0, 1].
        R = colmap.qvec2rotmat(im.qvec)
        np.testing.assert_allclose(cams["camtoworlds"][i][:3, 3], -R.T @ im.tvec, atol=1e-12)
        np.testing.assert_array_equal(cams["camtoworlds"][i][3], [0, 0, 0, 1])
    assert num_checked > 100
    opencv_image = next(i for i, im in enumerate(ordered) if im.camera_id == 7)
    assert cams["distortion"][opencv_image] == {
        "k1": 0.02,
        "k2": -0.01,
        "k3": 0.0,
        "k4": 0.0,
        "p1": 1e-3,
        "p2": -2e-3,
    }


@pytest.mark.parametrize(
    "model, params, camera_type, K, distortion",
    [
        ("SIMPLE_PINHOLE", [50, 30, 20], "perspective", [50, 50, 30, 20], {}),
        ("SIMPLE_RADIAL", [50, 30, 20, 0.1], "perspective", [50, 50, 30, 20], {"k1": 0.1}),
        ("RADIAL", [50, 30, 20, 0.1, 0.2], "perspective", [50, 50, 30, 20], {"k1": 0.1, "k2": 0.2}),
        (
            "FULL_OPENCV",
            [50, 51, 30, 20, 0.1, 0.2, 0.3, 0.4, 0.5, 0, 0, 0],
            "perspective",
            [50, 51, 30, 20],
            {"k1": 0.1, "k2": 0.2, "p1": 0.3, "p2": 0.4, "k3": 0.5},
        ),
        (
            "OPENCV_FISHEYE",
            [50, 51, 30, 20, 0.1, 0.2, 0.3, 0.4],
            "fisheye",
            [50, 51, 30, 20],
            {"k1": 0.1, "k2": 0.2, "k3": 0.3, "k4": 0.4},
        ),
        ("SIMPLE_RADIAL_FISHEYE", [50, 30, 20, 0.1], "fisheye", [50, 50, 30, 20], {"k1": 0.1}),
        (
            "RADIAL_FISHEYE",
            [50, 30, 20, 0.1, 0.2],
            "fisheye",
            [50, 50, 30, 20],
            {"k1": 0.1, "k2": 0.2},
        ),
        ("FISHEYE", [50, 51, 30, 20], "fisheye", [50, 51, 30, 20], {}),
    ],
)
def test_model_to_cameras_intrinsics_per_model(model, params, camera_type, K, distortion):
    cameras = {3: colmap.Camera(3, model, WIDTH, HEIGHT, np.array(params, np.float64))}
    images = {
        1: colmap.Image(
            1,
            np.array([1.0, 0, 0, 0]),
            np.zeros(3),
            3,
            "a.png",
            np.zeros((0, 2)),
            np.zeros(0, np.int64),
        )
    }
    cams = colmap.model_to_cameras(cameras, images)
    fx, fy, cx, cy = K
    np.testing.assert_array_equal(cams["intrinsics"][0], [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    assert cams["camera_types"] == [camera_type]
    assert cams["distortion"][0] == {
        **dict.fromkeys(["k1", "k2", "k3", "k4", "p1", "p2"], 0.0),
        **distortion,
    }


@pytest.mark.parametrize(
    "model, params",
    [("FOV", [50, 50, 30, 20, 0.1]), ("FULL_OPENCV", [50, 50, 30, 20, 0, 0, 0, 0, 0, 0.1, 0, 0])],
)
def test_model_to_cameras_rejects_models_it_cannot_express(model, params):
    cameras = {3: colmap.Camera(3, model, WIDTH, HEIGHT, np.array(params, np.float64))}
    images = {
        1: colmap.Image(
            1,
            np.array([1.0, 0, 0, 0]),
            np.zeros(3),
            3,
            "a.png",
            np.zeros((0, 2)),
            np.zeros(0, np.int64),
        )
    }
    with pytest.raises(ValueError, match=model):
        colmap.model_to_cameras(cameras, images)


def test_points_per_image_matches_tracks():
    cameras, images, points3D = make_model()
    visible = colmap.points_per_image(images, points3D)
    assert set(visible) == set(images)
    for image_id in images:
        expected = [pt.xyz for pt in points3D.values() if image_id in pt.image_ids]
        assert len(visible[image_id]) == len(expected) > 0
        np.testing.assert_array_equal(
            np.unique(visible[image_id], axis=0), np.unique(np.stack(expected), axis=0)
        )


def test_points_per_image_skips_and_reports_unknown_ids():
    cameras, images, points3D = make_model()
    dropped = next(iter(points3D))
    del points3D[dropped]
    with pytest.warns(UserWarning, match="not in the model"):
        visible = colmap.points_per_image(images, points3D)
    for image_id, im in images.items():
        assert len(visible[image_id]) == np.sum(
            (im.point3D_ids != -1) & (im.point3D_ids != dropped)
        )
