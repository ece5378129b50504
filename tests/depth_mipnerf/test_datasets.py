"""Depth maps in every supported format, clear errors for bad depth, and monocular depth aligned to
COLMAP points (ScanNet layout) that ends up in the rays."""

import json
import os
import pathlib
import shutil

import imageio.v3 as iio
import numpy as np
import OpenEXR
import pytest

from common import colmap
from data_tools import colmap as colmap_tools
from depth_mipnerf.datasets import Blender, ScanNet
from depth_mipnerf.datasets.exr import read_exr

COMPRESSIONS = ("NO", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB")
PIXEL_TYPES = {"HALF": np.float16, "FLOAT": np.float32, "UINT": np.uint32}
# The relative error a lossy codec may leave on a smooth map; every other (codec, type) is lossless.
LOSSY_RTOL = {("PXR24", "FLOAT"): 2 ** -16,  # FLOAT rounded to 24 bits
              ("B44", "HALF"): 1e-2, ("B44A", "HALF"): 1e-2,  # HALF 4x4 blocks as 14 bytes
              ("DWAA", "HALF"): 2e-2, ("DWAA", "FLOAT"): 2e-2,  # DCT of R, G, B, Y at the default level
              ("DWAB", "HALF"): 2e-2, ("DWAB", "FLOAT"): 2e-2}


def _true_depth(scene, split, stem):
    depth = np.load(scene / "depth" / split / f"{stem}.npy")
    return np.where(np.isfinite(depth), depth, 0).astype(np.float32)


def test_synth_depth_reaches_rays(scene):
    data = Blender(str(scene), "train", num_images=3)
    assert len(data) == 3 * 64 * 64 and data.n_examples == 3
    expected = np.stack([_true_depth(scene, "train", f"r_{i}") for i in range(3)]).reshape(-1, 1)
    np.testing.assert_allclose(data.rays.depth.numpy(), expected)
    assert (data.rays.mask.numpy() == (expected <= 0)).all()
    np.testing.assert_array_equal(data.rays.cam_idx.numpy()[:: 64 * 64, 0], [0, 1, 2])


def write_exr(path, channels, compression="ZIP", tiles=None):
    """Writes {name: [H, W] array} with the OpenEXR library (pixel type from the dtype), scanline
    unless tiles is an OpenEXR.TileDescription. The arrays are made contiguous: it ignores strides."""
    header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION")}
    if tiles is not None:
        header.update(type=OpenEXR.tiledimage, tiles=tiles)
    with OpenEXR.File(header, {name: np.ascontiguousarray(a) for name, a in channels.items()}) as exr:
        exr.write(str(path))


def _smooth_map(pixel_type):
    """A 37x19 depth-like map in [1, 6] (millimetres for UINT): odd sizes cut every codec's blocks."""
    y, x = np.mgrid[0:37, 0:19]
    depth = 3.5 + 1.5 * np.sin(y / 6.) * np.cos(x / 5.)
    return (depth * 1000 if pixel_type == "UINT" else depth).astype(PIXEL_TYPES[pixel_type])


@pytest.mark.parametrize("pixel_type", PIXEL_TYPES)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_exr_every_compression_and_pixel_type(tmp_path, compression, pixel_type):
    written = _smooth_map(pixel_type)
    channels = {c: written.copy() for c in "BGRZ"}
    write_exr(tmp_path / "x.exr", channels, compression)
    with OpenEXR.File(str(tmp_path / "x.exr"), header_only=True) as exr:
        assert exr.header()["compression"] == getattr(OpenEXR, f"{compression}_COMPRESSION")
    read = read_exr(tmp_path / "x.exr")
    assert sorted(read) == list("BGRZ")
    rtol = LOSSY_RTOL.get((compression, pixel_type), 0)
    for c in "BGRZ":
        assert read[c].dtype == np.float32
        np.testing.assert_allclose(read[c], written.astype(np.float32), rtol=rtol, atol=0)


def test_exr_tiled(tmp_path):
    tiles = OpenEXR.TileDescription()
    tiles.xSize = tiles.ySize = 16
    written = _smooth_map("FLOAT")
    write_exr(tmp_path / "x.exr", {"Z": written}, "PIZ", tiles)
    np.testing.assert_array_equal(read_exr(tmp_path / "x.exr")["Z"], written)


def _per_image_layout(scene, fmt, frames=4):
    """Moves the first `frames` train depths next to their images as EXR (FLOAT R, G, B with the
    fork's 1e10 background, or HALF Z with inf, where 1e10 overflows), PNG (mm) or npy."""
    for i in range(frames):
        depth = _true_depth(scene, "train", f"r_{i}")
        stem = scene / "train" / f"r_{i}"
        if fmt == "exr":
            write_exr(f"{stem}_depth_0001.exr", {"R": np.where(depth > 0, depth, 1e10).astype(np.float32),
                                                 "G": depth, "B": depth}, "PIZ")
        elif fmt == "exr_half":
            write_exr(f"{stem}_depth_0001.exr", {"Z": np.where(depth > 0, depth, np.inf).astype(np.float16)})
        elif fmt == "png":
            iio.imwrite(f"{stem}_depth.png", np.round(depth * 1000).astype(np.uint16))
        else:
            np.save(f"{stem}_depth.npy", depth)
    shutil.rmtree(scene / "depth" / "train")


@pytest.mark.parametrize("fmt", ["exr", "exr_half", "png", "npy"])
def test_depth_formats(scene, scene_copy, fmt):
    _per_image_layout(scene_copy, fmt)
    data = Blender(str(scene_copy), "train", num_images=4)
    expected = np.stack([_true_depth(scene, "train", f"r_{i}") for i in range(4)]).reshape(-1, 1)
    if fmt == "exr_half":
        expected = expected.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(data.rays.depth.numpy(), expected, atol=5e-4 if fmt == "png" else 0)


def test_missing_depth_names_the_image(scene_copy):
    _per_image_layout(scene_copy, "npy", frames=3)
    with pytest.raises(FileNotFoundError, match=r"r_3\.png: no depth map.*r_3_depth_0001\.exr"):
        Blender(str(scene_copy), "train", num_images=4)


def test_depth_count_mismatch(scene_copy):
    os.remove(scene_copy / "depth" / "train" / "r_7.npy")
    with pytest.raises(ValueError, match=r"depth/train: 39 depth maps for the 40 frames"):
        Blender(str(scene_copy), "train", num_images=3)


def test_depth_size_mismatch(scene_copy):
    np.save(scene_copy / "depth" / "train" / "r_1.npy", np.ones((32, 64), np.float32))
    with pytest.raises(ValueError, match=r"r_1\.npy: depth map is 64x32 \(WxH\) but its image is 64x64"):
        Blender(str(scene_copy), "train", num_images=3)


def test_all_zero_depth(scene_copy):
    np.save(scene_copy / "depth" / "train" / "r_2.npy", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match=r"r_2\.npy: depth map has no valid value"):
        Blender(str(scene_copy), "train", num_images=3)


def test_png_depth_must_be_16_bit(scene_copy):
    _per_image_layout(scene_copy, "png", frames=1)
    iio.imwrite(scene_copy / "train" / "r_0_depth.png", np.full((64, 64), 7, np.uint8))
    with pytest.raises(ValueError, match=r"r_0_depth\.png: expected a 16-bit PNG"):
        Blender(str(scene_copy), "train", num_images=1)


def _scannet_layout(scene, out, n=3):
    """The scene's first n train views as a ScanNet room: rgb/, target_depth/ (mm), omni/ monocular
    depth (an affine map of the truth), and a COLMAP model of the synth's visible points."""
    meta = json.loads((scene / "transforms_train.json").read_text())
    info = json.loads((scene / "scene.json").read_text())
    fx, w, h = info["intrinsics"]["fx"], info["width"], info["height"]
    for d in ("rgb", "target_depth", "omni", "sparse/0"):
        (out / d).mkdir(parents=True)
    frames, images, points3D = [], {}, {}
    views = {v["stem"]: v for v in info["views"]}
    for i, frame in enumerate(meta["frames"][:n]):
        stem = f"r_{i}"
        rgb = iio.imread(scene / "train" / f"{stem}.png")[..., :3]
        iio.imwrite(out / "rgb" / f"{i}.png", rgb)
        depth = _true_depth(scene, "train", stem)
        iio.imwrite(out / "target_depth" / f"{i}.png", np.round(depth * 1000).astype(np.uint16))
        np.save(out / "omni" / f"{i}_depth.npy", ((depth - 0.3) / 2.5).astype(np.float32))
        frames.append({"file_path": f"rgb/{i}.png", "transform_matrix": frame["transform_matrix"], "fx": fx})
        c2w = np.array(views[f"train/{stem}"]["camtoworld_opencv"])
        w2c = np.linalg.inv(c2w)
        xyz = np.load(scene / "points" / "train" / f"{stem}.npy")
        cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
        xys = cam[:, :2] / cam[:, 2:] * fx + np.array([w / 2, h / 2])
        # A clean SfM: the points on the depth map (some synth points are not), then every 10th
        # moved 0.5 deeper along its ray, outliers the trimmed least squares must ignore.
        px = np.clip(np.floor(xys).astype(int), 0, [w - 1, h - 1])
        on_map = np.abs(depth[px[:, 1], px[:, 0]] - cam[:, 2]) < 1e-3
        xyz, cam, xys = xyz[on_map], cam[on_map], xys[on_map]
        xyz[::10] = (cam[::10] * (1 + 0.5 / cam[::10, 2:])) @ c2w[:3, :3].T + c2w[:3, 3]
        ids = np.arange(len(points3D) + 1, len(points3D) + 1 + len(xyz))
        for k, (pid, p) in enumerate(zip(ids, xyz)):  # point pid is the image's k-th 2D point
            points3D[int(pid)] = colmap.Point3D(int(pid), p, np.zeros(3, np.uint8), 0.0,
                                                np.array([i + 1]), np.array([k]))
        images[i + 1] = colmap.Image(i + 1, colmap_tools.rotmat2qvec(w2c[:3, :3]), w2c[:3, 3], 1, f"{i}.png", xys, ids)
    cameras = {1: colmap.Camera(1, "PINHOLE", w, h, np.array([fx, fx, w / 2, h / 2]))}
    colmap_tools.write_model(cameras, images, points3D, str(out / "sparse" / "0"))
    (out / "transforms_train.json").write_text(json.dumps({"near": 2.0, "far": 6.0, "frames": frames}))
    (out / "config.json").write_text(json.dumps({"max_depth": 10.0}))
    return out


@pytest.mark.parametrize("source", ["sensor", "mono_sensor", "mono_colmap"])
def test_scannet_depth_sources(scene, tmp_path, source):
    room = _scannet_layout(scene, tmp_path / "room")
    data = ScanNet(str(room), "train", white_bkgd=False, depth_source=source)
    truth = np.stack([_true_depth(scene, "train", f"r_{i}") for i in range(3)]).reshape(-1)
    depth = data.rays.depth.numpy()[:, 0]
    hit = truth > 0
    # The monocular map is 0.3 + 2.5 x truth: it is only right once the fitted scale/shift is applied.
    np.testing.assert_allclose(depth[hit], truth[hit], atol=2e-3)
    assert (depth[~hit] == 0).all() and (data.rays.mask.numpy()[:, 0] == ~hit).all()
    np.testing.assert_allclose(data.rays.depth_vars.numpy()[:, 0], 0.01 * depth, rtol=1e-6)
    assert data.focal == pytest.approx(json.loads((scene / "scene.json").read_text())["intrinsics"]["fx"])


def test_scannet_missing_mono_depth(scene, tmp_path):
    room = _scannet_layout(scene, tmp_path / "room")
    os.remove(room / "omni" / "1_depth.npy")
    with pytest.raises(FileNotFoundError, match=r"omni/1_depth\.npy missing"):
        ScanNet(str(room), "train", white_bkgd=False, depth_source="mono_colmap")
    ScanNet(str(room), "train", white_bkgd=False, depth_source="sensor")  # the sensor needs no mono depth


def test_scannet_image_not_in_colmap_model(scene, tmp_path):
    room = _scannet_layout(scene, tmp_path / "room")
    cameras, images, points3D = colmap.read_model(str(room / "sparse" / "0"))
    del images[2]
    points3D = {k: p for k, p in points3D.items() if 2 not in p.image_ids}  # COLMAP checks tracks
    colmap_tools.write_model(cameras, images, points3D, str(room / "sparse" / "0"))
    with pytest.raises(ValueError, match=r"sparse/0: the COLMAP model has no image named 1\.png"):
        ScanNet(str(pathlib.Path(room)), "train", white_bkgd=False, depth_source="mono_colmap")


def test_blender_half_resolution_and_normals(scene, scene_copy):
    normal = np.zeros((64, 64, 3), np.float32)
    normal[..., 2] = 2.0  # not unit length: the loader normalises
    write_exr(scene_copy / "train" / "r_0_normal_0001.exr", {c: normal[..., i] for i, c in enumerate("RGB")})
    full = Blender(str(scene), "train", num_images=1)
    half = Blender(str(scene_copy), "train", num_images=1, factor=2)
    assert (half.h, half.w) == (32, 32) and half.focal == pytest.approx(full.focal / 2)
    np.testing.assert_array_equal(half.rays.depth.numpy().reshape(32, 32), _true_depth(scene, "train", "r_0")[::2, ::2])
    np.testing.assert_allclose(half.rays.normal.numpy(), np.tile([0., 0., 1.], (32 * 32, 1)))
    assert not full.rays.normal.any()  # no normal file: zeros (no normal supervision)
