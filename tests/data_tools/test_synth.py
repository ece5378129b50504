"""data_tools.synth: deterministic scenes whose depth, poses, layouts and sparse points match the truth."""

import json
import math
import pathlib
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pycolmap
import pytest

from common import colmap, llff
from data_tools import contact_sheet
from data_tools.synth import SCENES, build_scene, render_view, scene_sdf, write_scene, writers
from data_tools.synth.texture import dead_leaves

SMALL = {  # scene -> (width, height, views): fast, yet every view sees enough sparse points
    "object360": (40, 40, 5),
    "forward": (64, 48, 6),
    "unbounded360": (64, 48, 8),
}
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def small_scene(kind, seed=0):
    width, height, views = SMALL[kind]
    return build_scene(kind, seed, width, height, views)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each scene written once at its small size: {kind: folder}."""
    root = tmp_path_factory.mktemp("synth")
    return {kind: write_scene(small_scene(kind), root / kind) for kind in SCENES}


def load_info(folder):
    return json.loads((folder / "scene.json").read_text())


def intrinsics(info):
    k = info["intrinsics"]
    return np.array([[k["fx"], 0, k["cx"]], [0, k["fy"], k["cy"]], [0, 0, 1.0]])


def file_contents(folder):
    """{relative path: decoded content} of every file in a scene folder."""
    contents = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = str(path.relative_to(folder))
        if path.suffix == ".png":
            contents[key] = iio.imread(path)
        elif path.suffix == ".npy":
            contents[key] = np.load(path)
        else:
            contents[key] = path.read_bytes()
    return contents


@pytest.mark.parametrize("kind", SCENES)
def test_same_seed_same_files_other_seed_other_textures(kind, written, tmp_path):
    again = file_contents(write_scene(small_scene(kind), tmp_path / "again"))
    first = file_contents(written[kind])
    assert again.keys() == first.keys()
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)

    scene, other = small_scene(kind), small_scene(kind, seed=1)
    view, other_view = render_view(scene, scene.camtoworlds[0]), render_view(other, other.camtoworlds[0])
    np.testing.assert_array_equal(other_view["depth"], view["depth"])  # same geometry
    surface = view["alpha"] > 0
    assert np.abs(other_view["rgb"] - view["rgb"])[surface].mean() > 0.05  # other textures


@pytest.mark.parametrize("kind", SCENES)
def test_depth_backprojects_onto_the_surfaces(kind, written):
    folder = written[kind]
    info = load_info(folder)
    primitives = build_scene(info["scene"], info["seed"]).primitives
    pixtocam = np.linalg.inv(intrinsics(info))
    cols, rows = np.meshgrid(np.arange(info["width"]) + 0.5, np.arange(info["height"]) + 0.5, indexing="xy")
    pixels = np.stack([cols, rows, np.ones_like(cols)], -1)
    for view in info["views"]:
        depth = np.load(folder / "depth" / f"{view['stem']}.npy")
        assert depth.dtype == np.float32 and depth.shape == (info["height"], info["width"])
        hit = np.isfinite(depth)
        c2w = np.array(view["camtoworld_opencv"])
        # z-depth: the camera-frame point is depth * (x, y, 1), not depth * a unit ray.
        cam = (pixels[hit] @ pixtocam.T) * depth[hit, None].astype(np.float64)
        world = cam @ c2w[:3, :3].T + c2w[:3, 3]
        scale = np.linalg.norm(c2w[:3, 3])
        # float32 storage rounds depth by ~6e-8 relative.
        assert np.abs(scene_sdf(primitives, world)).max() < 1e-3 * scale
    if kind != "forward":  # the forward rig's back wall fills every view; the others show background
        assert any(np.isinf(np.load(folder / "depth" / f"{v['stem']}.npy")).any() for v in info["views"])


def test_object360_blender_layout_and_alpha(written):
    folder = written["object360"]
    info = load_info(folder)
    width, (_, _, views) = info["width"], SMALL["object360"]
    by_path = {view["path"]: view for view in info["views"]}
    for split, count in (("train", views), ("val", views // 5), ("test", views // 5)):
        transforms = json.loads((folder / f"transforms_{split}.json").read_text())
        focal = 0.5 * width / math.tan(0.5 * transforms["camera_angle_x"])
        assert focal == pytest.approx(info["intrinsics"]["fx"], rel=1e-12)
        assert [f["file_path"] for f in transforms["frames"]] == [f"./{split}/r_{i}" for i in range(count)]
        for frame in transforms["frames"]:
            view = by_path[frame["file_path"][2:] + ".png"]
            np.testing.assert_array_equal(frame["transform_matrix"], view["camtoworld_opengl"])
            np.testing.assert_allclose(
                np.array(view["camtoworld_opencv"]) @ OPENCV_TO_OPENGL, view["camtoworld_opengl"], atol=1e-15
            )
            rgba = iio.imread(folder / view["path"])
            assert rgba.shape == (info["height"], width, 4)
            # A pixel whose 3x3 neighbourhood of centre rays all miss (all hit) is background (object).
            hit = np.pad(np.isfinite(np.load(folder / "depth" / f"{view['stem']}.npy")), 1, constant_values=False)
            neighbours = np.stack([hit[1 + dy : hit.shape[0] - 1 + dy, 1 + dx : hit.shape[1] - 1 + dx]
                                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # fmt: skip
            background, inside = ~neighbours.any(0), neighbours.all(0)
            assert background.any() and inside.any()
            assert np.all(rgba[background] == 0)
            assert np.all(rgba[inside, 3] == 255)


@pytest.mark.parametrize("kind", ["forward", "unbounded360"])
def test_poses_bounds_round_trip(kind, written):
    info = load_info(written[kind])
    poses, bounds = llff.load_poses_bounds(written[kind] / "poses_bounds.npy")
    camtoworlds, hwf = llff.llff_to_opencv(poses)
    np.testing.assert_allclose(camtoworlds, [v["camtoworld_opencv"] for v in info["views"]], atol=1e-12)
    np.testing.assert_array_equal(hwf, np.tile([info["height"], info["width"], info["intrinsics"]["fx"]], (len(hwf), 1)))
    np.testing.assert_allclose(bounds, [[v["near"], v["far"]] for v in info["views"]])
    assert np.all(bounds[:, 0] > 0) and np.all(bounds[:, 1] > bounds[:, 0])


@pytest.mark.parametrize("kind", ["forward", "unbounded360"])
def test_colmap_model_holds_the_truth(kind, written):
    folder = written[kind]
    info = load_info(folder)
    cameras, images, points3D = colmap.read_model(folder / "sparse" / "0")
    converted = colmap.model_to_cameras(cameras, images)
    assert converted["names"] == [v["name"] for v in info["views"]]
    np.testing.assert_allclose(converted["camtoworlds"], [v["camtoworld_opencv"] for v in info["views"]], atol=1e-12)
    np.testing.assert_allclose(converted["intrinsics"], np.broadcast_to(intrinsics(info), (len(images), 3, 3)))

    by_name = {v["name"]: v for v in info["views"]}
    for image_id, image in images.items():
        assert len(image.xys) > 0
        xyz = np.stack([points3D[i].xyz for i in image.point3D_ids])
        cam = xyz @ colmap.qvec2rotmat(image.qvec).T + image.tvec
        projected = cam[:, :2] / cam[:, 2:] @ intrinsics(info)[:2, :2].T + intrinsics(info)[:2, 2]
        assert np.abs(projected - image.xys).max() < 1e-3
        view = by_name[image.name]
        np.testing.assert_array_equal(np.load(folder / "points" / f"{view['stem']}.npy"), xyz)
        # Visible points are the surface the depth map sees (up to the sub-pixel offset on slopes).
        depth = np.load(folder / "depth" / f"{view['stem']}.npy")
        at_pixel = depth[image.xys[:, 1].astype(int), image.xys[:, 0].astype(int)]
        assert np.mean(np.abs(at_pixel - cam[:, 2]) < 0.05 * cam[:, 2]) > 0.9
    for point_id, point in points3D.items():
        assert len(point.image_ids) >= 2
        for image_id, index in zip(point.image_ids, point.point2D_idxs):
            assert images[image_id].point3D_ids[index] == point_id
    # An independent reader (COLMAP's own) agrees and sees zero reprojection error.
    model = pycolmap.Reconstruction(str(folder / "sparse" / "0"))
    assert model.num_reg_images() == len(images) and model.num_points3D() == len(points3D)
    assert model.compute_mean_reprojection_error() < 1e-6


@pytest.mark.parametrize("kind", ["forward", "unbounded360"])
def test_downsampled_images_are_area_averages(kind, written):
    folder = written[kind]
    info = load_info(folder)
    for view in info["views"]:
        full = iio.imread(folder / view["path"]).astype(np.float64)
        for factor in writers.DOWNSAMPLE_FACTORS[kind]:
            small = iio.imread(folder / f"images_{factor}" / view["name"]).astype(np.float64)
            h, w = info["height"] // factor, info["width"] // factor
            blocks = full[: h * factor, : w * factor].reshape(h, factor, w, factor, 3).mean((1, 3))
            assert small.shape == (h, w, 3)
            assert np.abs(small - blocks).max() <= 1.0


def test_refuses_to_overwrite_and_leaves_nothing_partial(written, tmp_path, monkeypatch):
    scene = small_scene("object360")
    out = tmp_path / "scene"
    write_scene(scene, out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_scene(scene, out)
    before = file_contents(out)

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "write_scene_json", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_scene(scene, out, overwrite=True)
    with pytest.raises(RuntimeError, match="disk full"):
        write_scene(scene, tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no temporary or partial folder
    assert file_contents(out).keys() == before.keys()

    write_scene(small_scene("object360", seed=3), out, overwrite=True)
    assert load_info(out)["seed"] == 3

    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        write_scene(scene, unrelated, overwrite=True)
    assert [p.name for p in unrelated.iterdir()] == ["keep.txt"]


def test_command_line(tmp_path):
    out = tmp_path / "fwd"
    command = [sys.executable, "-m", "data_tools.synth", "--scene", "forward", "--out", str(out),
               "--res", "48x32", "--views", "3", "--seed", "7"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, cwd=pathlib.Path(__file__).parents[2])
    info = load_info(out)
    assert (info["scene"], info["seed"], info["width"], info["height"], len(info["views"])) == ("forward", 7, 48, 32, 3)
    assert iio.imread(out / "images_4" / "IMG_0002.png").shape == (8, 12, 3)
    again = subprocess.run(command, capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[2])
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_default_rigs():
    orbit = build_scene("unbounded360")
    assert (orbit.width, orbit.height, len(orbit.paths)) == (256, 192, 36)
    centres = orbit.camtoworlds[:, :2, 3]
    norms = np.linalg.norm(centres, axis=-1)
    steps = np.degrees(np.arccos(np.sum(centres * np.roll(centres, 1, 0), -1) / (norms * np.roll(norms, 1))))
    assert steps.max() <= 10.0 + 1e-9  # pycolmap registers every view at ~10 degree steps
    # An elliptical orbit: distinct principal spreads, so np.linalg.eig's axes are orthogonal.
    spread = np.linalg.eigvalsh(np.cov(orbit.camtoworlds[:, :3, 3].T))
    assert spread[2] > 1.1 * spread[1] > 1.1 * spread[0]
    blender = build_scene("object360")
    assert [blender.splits.count(s) for s in ("train", "val", "test")] == [40, 8, 8]
    for scene in (orbit, blender, build_scene("forward")):
        rotations = scene.camtoworlds[:, :3, :3]
        np.testing.assert_allclose(rotations @ np.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(rotations), 1.0)


def test_dead_leaves_is_sharp_and_keyed():
    uv = np.stack(np.meshgrid(np.linspace(0, 2, 200), np.linspace(0, 2, 200)), -1).reshape(-1, 2)
    key = np.zeros(len(uv), np.uint32)
    colours = dead_leaves(uv, key, (0.5, 0.6, 0.7), finest=0.05, levels=4)
    # Flat leaves with hard edges: few distinct colours, most neighbours exactly equal.
    assert len(np.unique(colours, axis=0)) < 0.2 * len(uv)
    image = colours.reshape(200, 200, 3)
    assert np.mean(np.all(image[:, 1:] == image[:, :-1], -1)) > 0.6
    assert colours.std(0).min() > 0.05  # yet high contrast
    other = dead_leaves(uv, key + 1, (0.5, 0.6, 0.7), finest=0.05, levels=4)
    assert np.mean(np.any(other != colours, -1)) > 0.5
    np.testing.assert_array_equal(dead_leaves(uv[::-1], key, (0.5, 0.6, 0.7), 0.05, 4), colours[::-1])


def test_contact_sheet(written, tmp_path):
    sheet = contact_sheet.contact_sheet(written["unbounded360"], num_views=3)
    width, height, _ = SMALL["unbounded360"]
    zoom = math.ceil(contact_sheet.MIN_TILE_WIDTH / width)
    gap = contact_sheet.GAP
    assert sheet.shape == (2 * (height * zoom + gap) + gap, 3 * (width * zoom + gap) + gap, 3)
    depth_tile = sheet[2 * gap + height * zoom :, gap : gap + width * zoom]
    assert np.any(np.all(depth_tile == 0, -1))  # sky: no depth
    assert len(np.unique(depth_tile.reshape(-1, 3), axis=0)) > 20  # colourised depth, not flat
    contact_sheet.main([str(written["object360"]), "--out", str(tmp_path / "sheet.png")])
    assert iio.imread(tmp_path / "sheet.png").ndim == 3
