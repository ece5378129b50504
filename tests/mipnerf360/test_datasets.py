"""mipnerf360.internal.datasets on data_tools.synth scenes: splits, poses, rays, batches, prefetch."""

import json
import shutil
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from common import colmap, llff
from data_tools import colmap as colmap_tools
from data_tools.synth import build_scene, scene_sdf, write_scene
from mipnerf360.internal import camera_utils, configs, datasets, utils

SIZES = {  # scene -> (width, height, views)
    "unbounded360": (64, 48, 12),
    "forward": (64, 48, 12),
    "object360": (40, 30, 4),
}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """{kind: (folder, Scene)} of each synthetic scene, written once."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for kind, (width, height, views) in SIZES.items():
        scene = build_scene(kind, 0, width, height, views)
        out[kind] = (write_scene(scene, root / kind), scene)
    return out


@pytest.fixture
def load():
    """load(split, folder, **config) -> Dataset; every dataset's thread is stopped afterwards."""
    made = []

    def make(split, folder, **config):
        made.append(datasets.load_dataset(split, str(folder), configs.Config(**config)))
        return made[-1]

    yield make
    for dataset in made:
        dataset.close()


@pytest.fixture
def copy_scene(scenes, tmp_path):
    """copy_scene(kind) -> a scratch copy of that scene's folder."""
    return lambda kind: shutil.copytree(scenes[kind][0], tmp_path / kind)


def truth(folder):
    """(names, OpenGL camtoworlds [N, 4, 4], OpenCV camtoworlds [N, 4, 4]) in name order."""
    views = sorted(json.loads((folder / "scene.json").read_text())["views"], key=lambda v: v["name"])
    return ([v["name"] for v in views], np.array([v["camtoworld_opengl"] for v in views]),
            np.array([v["camtoworld_opencv"] for v in views]))


def split_truth(poses, transform):
    """Poses [N, 3, 4] a loader makes of true poses [N, 4, 4] with its transform, scale times unit
    rows (eigenvectors) plus a translation: the scale moves the positions only. Returns (poses, scale)."""
    scale = np.linalg.norm(transform[0, :3])
    rotation = transform[:3, :3] / scale
    positions = (transform @ poses[:, :, 3:])[:, :3, 0]
    return np.concatenate([rotation @ poses[:, :3, :3], positions[..., None]], -1), scale


def test_llff_360_splits_and_images(scenes, load):
    folder, _ = scenes["unbounded360"]
    train = load("train", folder, factor=2, batch_size=64)
    test = load("test", folder, factor=2, batch_size=64)
    names = truth(folder)[0]
    # Every 8th image after a name sort is held out.
    assert train.images.shape == (10, 24, 32, 3) and test.images.shape == (2, 24, 32, 3)
    assert train.size == 10 and test.size == 2
    for image, name in zip(test.images, [names[0], names[8]]):
        np.testing.assert_allclose(image, iio.imread(folder / "images_2" / name) / 255.0, atol=1e-6)
    np.testing.assert_allclose(train.images[7], iio.imread(folder / "images_2" / names[9]) / 255.0,
                               atol=1e-6)
    # Intrinsics of the full-resolution camera, scaled by the factor.
    k = np.array([[55.0 / 2, 0, 16], [0, 55.0 / 2, 12], [0, 0, 1]])
    np.testing.assert_allclose(train.pixtocams, np.linalg.inv(k), rtol=1e-6)
    assert train.focal == pytest.approx(27.5)
    assert train.distortion_params is None
    assert train.camtype == camera_utils.ProjectionType.PERSPECTIVE


def test_llff_360_poses_are_the_pca_transform_of_the_truth(scenes, load):
    folder, _ = scenes["unbounded360"]
    train = load("train", folder, factor=2, batch_size=64)
    test = load("test", folder, factor=2, batch_size=64)
    transform = train.colmap_to_world_transform
    expected, _ = split_truth(truth(folder)[1], transform)
    np.testing.assert_allclose(train.poses, expected, atol=1e-9)
    np.testing.assert_allclose(test.camtoworlds, expected[[0, 8]], atol=1e-9)
    np.testing.assert_allclose(train.camtoworlds, np.delete(expected, [0, 8], axis=0), atol=1e-9)
    rotation = transform[:3, :3] / np.linalg.norm(transform[:3, :3], axis=1, keepdims=True)
    # The orbit's x and y spreads differ, so even multinerf's np.linalg.eig gives orthogonal axes:
    # the loaded rotations are orthonormal (a circular orbit skewed them by ~6 degrees).
    for rotations in (rotation[None], train.poses[:, :, :3], test.camtoworlds[:, :, :3]):
        gram = np.swapaxes(rotations, 1, 2) @ rotations
        np.testing.assert_allclose(gram, np.broadcast_to(np.eye(3), gram.shape), atol=1e-6)
    # The elliptical orbit's axes are the world's x (longest), y and z, so world up stays up, and
    # the cameras fill [-1, 1]^3.
    np.testing.assert_allclose(np.abs(rotation), np.eye(3), atol=1e-6)
    np.testing.assert_allclose(rotation @ [0, 0, 1], [0, 0, 1], atol=1e-6)
    assert np.abs(train.poses[:, :, 3]).max() == pytest.approx(1.0)



def test_fix_pca_eigh_reaches_the_pose_pca(scenes, load, monkeypatch):
    folder, _ = scenes["unbounded360"]
    default = load("train", folder, factor=2, batch_size=64)
    pca, calls = camera_utils.transform_poses_pca, []
    monkeypatch.setattr(camera_utils, "transform_poses_pca",
                        lambda poses, use_eigh=False: calls.append(use_eigh) or pca(poses, use_eigh))
    fixed = load("train", folder, factor=2, batch_size=64, fix_pca_eigh=True)
    assert calls == [True]
    # The orbit's principal spreads are distinct, where eigh and eig agree.
    np.testing.assert_allclose(fixed.poses, default.poses, atol=1e-12)

def test_llff_360_test_rays_meet_the_surface_at_the_true_depth(scenes, load):
    folder, scene = scenes["unbounded360"]
    test = load("test", folder, factor=0, batch_size=64)
    transform = test.colmap_to_world_transform
    _, scale = split_truth(truth(folder)[1], transform)
    for cam_idx, stem in enumerate(["IMG_0000", "IMG_0008"]):
        rays = test.generate_ray_batch(cam_idx).rays
        depth = np.load(folder / "depth" / f"{stem}.npy")
        hit = np.isfinite(depth)
        assert rays.origins.shape == (48, 64, 3) and hit.mean() > 0.5
        # Directions have unit length along the camera axis, and the loader scaled the world.
        points = rays.origins.numpy()[hit] + rays.directions.numpy()[hit] * scale * depth[hit, None]
        points = (np.linalg.inv(transform) @ np.concatenate([points, np.ones_like(points[:, :1])], -1).T).T
        assert np.abs(scene_sdf(scene.primitives, points[:, :3])).max() < 1e-3


def test_llff_forward_facing_poses_and_ndc_rays(scenes, load):
    folder, _ = scenes["forward"]
    train = load("train", folder, factor=0, batch_size=64, forward_facing=True)
    test = load("test", folder, factor=0, batch_size=64, forward_facing=True)
    names, gl_poses, cv_poses = truth(folder)
    transform = test.colmap_to_world_transform
    expected, scale = split_truth(gl_poses, transform)
    np.testing.assert_allclose(train.poses, expected, atol=1e-9)
    np.testing.assert_allclose(test.camtoworlds, expected[[0, 8]], atol=1e-9)
    # NeRF's bd_factor: the nearest bound lands at 1 / 0.75.
    bounds = llff.load_poses_bounds(folder / "poses_bounds.npy")[1]
    assert scale == pytest.approx(1 / (0.75 * bounds.min()))
    np.testing.assert_array_equal(test.pixtocam_ndc, test.pixtocams)

    # Each NDC ray passes through the NDC image of the true surface point of its pixel.
    k = np.array([[55.0, 0, 32], [0, 55.0, 24], [0, 0, 1]])
    pix_x, pix_y = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    rays = test.generate_ray_batch(1).rays
    depth = np.load(folder / "depth" / f"{names[8][:-4]}.npy")
    camera_points = (np.stack([pix_x, pix_y, np.ones_like(pix_x)], -1) @ np.linalg.inv(k).T) * depth[..., None]
    world = camera_points @ cv_poses[8, :3, :3].T + cv_poses[8, :3, 3]
    x, y, z = np.moveaxis(world @ transform[:3, :3].T + transform[:3, 3], -1, 0)
    xmult, ymult = 1 / test.pixtocam_ndc[0, 2], 1 / test.pixtocam_ndc[1, 2]
    ndc = np.stack([xmult * x / z, ymult * y / z, 1 + 2 / z], -1)
    origins, directions = rays.origins.numpy(), rays.directions.numpy()
    np.testing.assert_allclose(origins[..., 2], -1)
    offset = ndc - origins
    sine = np.linalg.norm(np.cross(offset, directions), axis=-1) / (
        np.linalg.norm(offset, axis=-1) * np.linalg.norm(directions, axis=-1))
    assert sine.max() < 1e-4


def test_blender_white_background_and_focal(scenes, load):
    folder, scene = scenes["object360"]
    train = load("train", folder, dataset_loader="blender", batch_size=64)
    meta = json.loads((folder / "transforms_train.json").read_text())
    rgba = np.stack([iio.imread(folder / (f["file_path"] + ".png")) for f in meta["frames"]]) / 255.0
    alpha = rgba[..., 3:]
    np.testing.assert_allclose(train.images, rgba[..., :3] * alpha + 1 - alpha, atol=1e-6)
    assert (train.images[alpha[..., 0] == 0] == 1).all() and (alpha == 0).any()
    assert train.focal == pytest.approx(scene.focal)
    np.testing.assert_allclose(
        train.camtoworlds, np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3], atol=1e-6)

    rays = train.generate_ray_batch(2).rays
    depth = np.load(folder / "depth" / "train" / "r_2.npy")
    hit = np.isfinite(depth)
    assert hit.any() and not hit.all()
    points = rays.origins.numpy()[hit] + rays.directions.numpy()[hit] * depth[hit, None]
    assert np.abs(scene_sdf(scene.primitives, points)).max() < 1e-4

    half = load("test", folder, dataset_loader="blender", batch_size=64, factor=2)
    assert half.images.shape == (1, 15, 20, 3) and half.focal == pytest.approx(scene.focal / 2)
    with pytest.raises(ValueError, match="render_path"):
        load("test", folder, dataset_loader="blender", render_path=True)


def test_train_batches_are_random_pixels_with_their_colours(scenes, load):
    folder, _ = scenes["unbounded360"]
    np.random.seed(3)
    pixels_set = load("train", folder, factor=2, batch_size=64, cast_rays_in_train_step=True,
                      near=0.2, far=100.0)
    np.random.seed(3)
    rays_set = load("train", folder, factor=2, batch_size=64, near=0.2, far=100.0)
    with_pixels, with_rays = next(pixels_set), next(rays_set)
    pixels = with_pixels.rays
    assert isinstance(pixels, utils.Pixels) and isinstance(with_rays.rays, utils.Rays)
    cam, y, x = pixels.cam_idx[..., 0], pixels.pix_y_int, pixels.pix_x_int
    assert pixels.pix_x_int.shape == (64, 1, 1) and with_rays.rgb.shape == (64, 1, 1, 3)
    assert len(np.unique(cam)) > 1 and (cam < 10).all() and (cam >= 0).all()
    np.testing.assert_array_equal(with_rays.rgb, pixels_set.images[cam, y, x])
    np.testing.assert_array_equal(with_pixels.rgb, with_rays.rgb)
    # The same draw, cast here or in the train step, gives the same rays.
    expected = camera_utils.cast_ray_batch(pixels_set.cameras, pixels)
    for field in ("origins", "directions", "viewdirs", "radii", "imageplane"):
        actual = getattr(with_rays.rays, field)
        assert actual.shape[:-1] == (64, 1, 1) and actual.dtype == torch.float32
        torch.testing.assert_close(actual, getattr(expected, field), rtol=1e-5, atol=1e-6)
    rays = with_rays.rays
    assert (rays.lossmult == 1).all() and (rays.near == 0.2).all() and (rays.far == 100.0).all()
    assert rays.cam_idx.dtype == torch.int64 and rays.cam_idx.shape == (64, 1, 1, 1)


def test_patches_single_image_and_border(scenes, load):
    folder, _ = scenes["unbounded360"]
    patches = next(load("train", folder, factor=2, batch_size=36, patch_size=3,
                        cast_rays_in_train_step=True)).rays
    assert patches.pix_x_int.shape == (4, 3, 3)
    np.testing.assert_array_equal(np.diff(patches.pix_x_int.numpy(), axis=2), 1)
    np.testing.assert_array_equal(np.diff(patches.pix_y_int.numpy(), axis=1), 1)
    assert (patches.cam_idx == patches.cam_idx[:, :1, :1]).all()

    single = next(load("train", folder, factor=2, batch_size=256, batching="single_image",
                       cast_rays_in_train_step=True)).rays
    assert len(torch.unique(single.cam_idx)) == 1

    border = next(load("train", folder, factor=2, batch_size=256, num_border_pixels_to_mask=5,
                       cast_rays_in_train_step=True)).rays
    assert border.pix_x_int.min() >= 5 and border.pix_x_int.max() < 32 - 5
    assert border.pix_y_int.min() >= 5 and border.pix_y_int.max() < 24 - 5


def test_prefetch_thread_serves_fresh_batches_and_stops(scenes, load):
    folder, _ = scenes["unbounded360"]
    dataset = load("train", folder, factor=2, batch_size=32, prefetch_batches=2)
    peeked = dataset.peek()
    first = next(dataset)
    assert peeked is first
    origins = [next(dataset).rays.origins for _ in range(5)]
    assert all(not torch.equal(origins[0], o) for o in origins[1:])
    deadline = time.monotonic() + 10
    while dataset._queue.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dataset._queue.qsize() == 2 and dataset.is_alive()
    dataset.close()
    assert not dataset.is_alive()

    test = load("test", folder, factor=2, batch_size=32)
    images = [next(test).rgb for _ in range(3)]
    np.testing.assert_array_equal(images[0], test.images[0])
    np.testing.assert_array_equal(images[1], test.images[1])
    np.testing.assert_array_equal(images[2], test.images[0])


def test_prefetched_batches_move_to_the_dataset_device(scenes, load):
    folder, _ = scenes["unbounded360"]
    config = configs.Config(factor=2, batch_size=32, data_on_device=False)
    train = datasets.load_dataset("train", str(folder), config, device="meta")
    test = datasets.load_dataset("test", str(folder), config, device="meta")
    try:
        batch = next(train)
        assert batch.rgb.device.type == "meta" and batch.rays.cam_idx.device.type == "meta"
        # Whole test images stay on the CPU; the renderer moves them chunk by chunk.
        assert next(test).rays.origins.device.type == "cpu"
    finally:
        train.close()
        test.close()


def test_errors_in_the_thread_reach_the_consumer(scenes, load):
    dataset = load("train", scenes["unbounded360"][0], factor=2, batch_size=32, prefetch_batches=1)

    def broken():
        raise RuntimeError("broken batch")

    dataset._make_item = broken
    with pytest.raises(RuntimeError, match="broken batch"):
        for _ in range(5):
            next(dataset)
    with pytest.raises(RuntimeError, match="broken batch"):
        next(dataset)


def test_render_paths(scenes, load):
    folder, _ = scenes["unbounded360"]
    ellipse = load("test", folder, factor=2, render_path=True, render_path_frames=6)
    np.testing.assert_allclose(ellipse.camtoworlds,
                               camera_utils.generate_ellipse_path(ellipse.poses, n_frames=6))
    batch = next(ellipse)
    assert ellipse.size == 6 and batch.rgb is None and batch.rays.origins.shape == (24, 32, 3)
    np.testing.assert_allclose(batch.rays.origins[0, 0], ellipse.camtoworlds[0, :, 3], atol=1e-6)

    spiral = load("test", scenes["forward"][0], factor=2, forward_facing=True, render_path=True,
                  render_path_frames=5)
    assert spiral.camtoworlds.shape == (5, 3, 4) and next(spiral).rays.origins.shape == (24, 32, 3)


def test_transforms_json_fallback_matches_colmap(scenes, load, copy_scene):
    colmap_set = load("train", scenes["unbounded360"][0], factor=2, batch_size=32)
    folder = copy_scene("unbounded360")
    names, gl_poses, _ = truth(folder)
    shutil.rmtree(folder / "sparse")
    frames = [{"file_path": f"images/{n}", "transform_matrix": p.tolist()}
              for n, p in zip(names, gl_poses)]
    meta = {"w": 64, "h": 48, "fl_x": 55.0, "fl_y": 55.0, "cx": 32.0, "cy": 24.0, "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(meta))
    json_set = load("train", folder, factor=2, batch_size=32)
    # Both are the truth after their own PCA: the same principal axes, but np.linalg.eig's signs
    # (hence a half turn about z) may differ between the two.
    expected, _ = split_truth(gl_poses, json_set.colmap_to_world_transform)
    np.testing.assert_allclose(json_set.poses, expected, atol=1e-5)
    np.testing.assert_allclose(np.abs(json_set.colmap_to_world_transform[:3, :3]),
                               np.abs(colmap_set.colmap_to_world_transform[:3, :3]), atol=1e-6)
    np.testing.assert_allclose(json_set.pixtocams, colmap_set.pixtocams, rtol=1e-6)
    np.testing.assert_array_equal(json_set.images, colmap_set.images)


@pytest.mark.parametrize("model, params, camtype, expected", [
    ("OPENCV", [55, 55, 32, 24, 0.01, -0.002, 0.001, 0.0005], "perspective",
     {"k1": 0.01, "k2": -0.002, "k3": 0.0, "p1": 0.001, "p2": 0.0005}),
    ("SIMPLE_RADIAL", [55, 32, 24, 0.02], "perspective",
     {"k1": 0.02, "k2": 0.0, "k3": 0.0, "p1": 0.0, "p2": 0.0}),
    ("OPENCV_FISHEYE", [55, 55, 32, 24, 0.01, 0.002, 0.0, 0.0], "fisheye",
     {"k1": 0.01, "k2": 0.002, "k3": 0.0, "k4": 0.0}),
])
def test_colmap_camera_models_give_distortion(load, copy_scene, model, params, camtype, expected):
    folder = copy_scene("unbounded360")
    cameras, images, points = colmap.read_model(folder / "sparse" / "0")
    cameras = {1: colmap.Camera(1, model, 64, 48, np.array(params, float))}
    colmap_tools.write_model(cameras, images, points, folder / "sparse" / "0")
    dataset = load("train", folder, factor=2, batch_size=32)
    assert dataset.distortion_params == pytest.approx(expected)
    assert dataset.camtype == camera_utils.ProjectionType(camtype)
    rays = next(dataset).rays
    assert torch.isfinite(rays.directions).all()


def test_missing_data_names_the_path_and_the_stand_in(scenes, load, copy_scene, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="--scene unbounded360") as error:
        load("train", missing)
    assert str(missing) in str(error.value)
    with pytest.raises(FileNotFoundError, match="--scene forward"):
        load("train", missing, forward_facing=True)
    with pytest.raises(FileNotFoundError, match="--scene object360"):
        load("train", missing, dataset_loader="blender")
    with pytest.raises(FileNotFoundError, match="transforms_test.json"):
        load("test", scenes["unbounded360"][0], dataset_loader="blender")
    with pytest.raises(FileNotFoundError, match="images_8"):
        load("train", scenes["forward"][0], factor=8)

    folder = copy_scene("unbounded360")
    shutil.rmtree(folder / "sparse")
    with pytest.raises(FileNotFoundError, match="sparse/0.*transforms.json"):
        load("train", folder)


def test_inconsistent_data_raises_with_numbers(load, copy_scene):
    folder = copy_scene("unbounded360")
    (folder / "images_2" / "IMG_0011.png").unlink()
    with pytest.raises(ValueError, match="holds 11 images .* holds 12"):
        load("train", folder, factor=2)
    # Quarter-size images where half-size ones belong.
    shutil.rmtree(folder / "images_2")
    shutil.copytree(folder / "images_4", folder / "images_2")
    with pytest.raises(ValueError, match="is 16x12 but the camera is 64x48, so factor 2 expects about 32x24"):
        load("train", folder, factor=2)


def test_bad_config_raises(scenes, load):
    folder, _ = scenes["unbounded360"]
    with pytest.raises(ValueError, match="Patch size 8"):
        load("train", folder, factor=2, batch_size=32, patch_size=8)
    with pytest.raises(ValueError, match="not ported"):
        load("train", folder, dataset_loader="dtu")
    with pytest.raises(ValueError, match="'val'"):
        load("val", folder, factor=2)
