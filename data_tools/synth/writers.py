"""Writes a rendered scene in its dataset layout (Blender, LLFF, mip-NeRF 360) plus depth, points, scene.json.

The scene is written into a temporary sibling folder that replaces the output folder only once
everything is written, so a failure leaves nothing partial behind.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from common import colmap, llff
from data_tools import colmap as colmap_tools
from data_tools.images import downsample, replace_dir
from data_tools.synth import render, sparse

GENERATOR = "data_tools.synth"
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])  # flips camera y and z: c2w_gl = c2w_cv @ this
POINTS_PER_VIEW = 64  # surface points drawn from each view's depth map
BOUND_PERCENTILES = (0.1, 99.9)  # near / far from the sparse points' z-depths, as LLFF's imgs2poses
DOWNSAMPLE_FACTORS = {"object360": (), "forward": (2, 4), "unbounded360": (2, 4, 8)}
LAYOUTS = {"object360": "blender", "forward": "llff", "unbounded360": "mipnerf360"}

CAMERA_CONVENTION = (
    "camtoworld_opencv: x right, y down, z forward (COLMAP/OpenCV); camtoworld_opengl: x right, "
    "y up, z backward (NeRF/Blender), = camtoworld_opencv @ diag(1, -1, -1, 1). Pixel (col, row) "
    "covers [col, col+1] x [row, row+1], so its centre is at +0.5; K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."
)
DEPTH_CONVENTION = (
    "depth/<stem>.npy: float32 [H, W] at full resolution, z-depth along the camera's viewing axis (not "
    "the distance along the ray) of the single ray through each pixel centre (not averaged over the "
    "supersamples); inf where that ray hits nothing (sky, transparent background)."
)
POINTS_CONVENTION = (
    "points/<stem>.npy: float64 [K, 3] world xyz of the sparse ground-truth surface points visible in "
    "that view (in the image, in front of the camera, not occluded), a subset of one shared point set "
    "whose points are each seen by two views at least (also in sparse/0, with their 2D observations, "
    "for the llff and mipnerf360 layouts); near/far are the 0.1 and 99.9 percentiles of their "
    "z-depths, as LLFF's poses_bounds."
)


def image_name(path):
    """Image name as COLMAP stores it, relative to images/: 'images/IMG_0000.png' -> 'IMG_0000.png';
    paths outside images/ stay as they are ('train/r_0.png')."""
    path = pathlib.PurePosixPath(path)
    return str(path.relative_to("images")) if path.parts[0] == "images" else str(path)


def stem(path):
    """Image name without extension, the name of its depth and points files: 'IMG_0000', 'train/r_0'."""
    return str(pathlib.PurePosixPath(image_name(path)).with_suffix(""))


def is_synth_scene(folder):
    """Whether `folder` holds a scene.json written by this generator."""
    try:
        with open(os.path.join(folder, "scene.json"), encoding="utf-8") as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError):
        return False


def check_output_folder(out, overwrite):
    """Raises unless `out` is absent, empty, or (with overwrite) a scene written by this generator."""
    if not os.path.exists(out):
        return
    if not os.path.isdir(out):
        raise FileExistsError(f"{out} exists and is not a folder")
    if not os.listdir(out):
        return
    if not is_synth_scene(out):
        raise FileExistsError(
            f"{out} is not empty and holds no scene written by {GENERATOR}; refusing to replace it "
            "(even with --overwrite): choose another --out"
        )
    if not overwrite:
        raise FileExistsError(f"{out} already holds a scene; pass --overwrite to replace it")


def _save_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)


def _save_npy(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def render_views(scene, folder, supersample):
    """Renders every view, writing its PNG(s) and depth map. Returns (depths, indices): [N, H, W] each."""
    depths, indices = [], []
    for path, camtoworld in tqdm(
        list(zip(scene.paths, scene.camtoworlds)), desc=f"{scene.kind}: rendering", unit="view"
    ):
        view = render.render_view(scene, camtoworld, supersample)
        rgb = render.to_uint8(view["rgb"])
        if scene.transparent:
            _save_png(folder / path, np.concatenate([rgb, render.to_uint8(view["alpha"])[..., None]], -1))
        else:
            _save_png(folder / path, rgb)
            for factor in DOWNSAMPLE_FACTORS[scene.kind]:
                _save_png(folder / f"images_{factor}" / image_name(path), downsample(rgb, factor))
        _save_npy(folder / "depth" / f"{stem(path)}.npy", view["depth"].astype(np.float32))
        depths.append(view["depth"])
        indices.append(view["index"])
    return np.stack(depths), np.stack(indices)


def sparse_points(scene, depths, indices):
    """Shared ground-truth points seen by at least two views: (xyz [P, 3], rgb [P, 3] uint8,
    visible [N, P], xy [N, P, 2])."""
    rng = np.random.default_rng(scene.seed)
    xyz, index = sparse.sample_points(scene, depths, indices, POINTS_PER_VIEW, rng)
    visible, xy = sparse.visibility(scene, xyz)
    # Triangulated (COLMAP) points are seen by two views at least.
    keep = visible.sum(0) >= 2
    rgb = render.to_uint8(render.surface_colour(scene, xyz[keep], index[keep]))
    return xyz[keep], rgb, visible[:, keep], xy[:, keep]


def view_bounds(scene, xyz, visible):
    """Per-view (near, far): percentiles of the visible points' z-depths: [N, 2]."""
    bounds = []
    for path, camtoworld, seen in zip(scene.paths, scene.camtoworlds, visible):
        if not seen.any():
            raise ValueError(f"view {path} sees none of the sparse points; use a larger --res")
        z = (xyz[seen] - camtoworld[:3, 3]) @ camtoworld[:3, 2]
        bounds.append(np.percentile(z, BOUND_PERCENTILES))
    return np.array(bounds)


def write_blender(scene, folder):
    """transforms_{train,val,test}.json: camera_angle_x and frames of file_path + OpenGL transform_matrix."""
    for split in ("train", "val", "test"):
        frames = [
            {"file_path": "./" + stem(path), "transform_matrix": (c2w @ OPENCV_TO_OPENGL).tolist()}
            for path, s, c2w in zip(scene.paths, scene.splits, scene.camtoworlds)
            if s == split
        ]
        transforms = {"camera_angle_x": 2 * math.atan(scene.width / (2 * scene.focal)), "frames": frames}
        with open(folder / f"transforms_{split}.json", "w", encoding="utf-8") as f:
            json.dump(transforms, f, indent=2)


def write_colmap(scene, folder, xyz, rgb, visible, xy):
    """sparse/0/{cameras,images,points3D}.bin of the true PINHOLE camera, poses and points."""
    cameras = {1: colmap.Camera(1, "PINHOLE", scene.width, scene.height,
                                np.array([scene.focal, scene.focal, scene.width / 2, scene.height / 2]))}  # fmt: skip
    images = {}
    for image_id, (path, camtoworld, seen, view_xy) in enumerate(
        zip(scene.paths, scene.camtoworlds, visible, xy), start=1
    ):
        w2c = np.linalg.inv(camtoworld)
        point_ids = np.nonzero(seen)[0]
        images[image_id] = colmap.Image(
            image_id, colmap_tools.rotmat2qvec(w2c[:3, :3]), w2c[:3, 3], 1, image_name(path),
            view_xy[point_ids], point_ids + 1,
        )  # fmt: skip
    # Index of each point among the observations of each view: [N, P].
    point2d_idx = np.cumsum(visible, axis=1) - 1
    points3D = {
        p + 1: colmap.Point3D(p + 1, xyz[p], rgb[p], 0.0, np.nonzero(visible[:, p])[0] + 1,
                              point2d_idx[visible[:, p], p])
        for p in range(len(xyz))
    }  # fmt: skip
    colmap_tools.write_model(cameras, images, points3D, folder / "sparse" / "0", ext=".bin")


def write_poses_bounds(scene, folder, bounds):
    """poses_bounds.npy (LLFF axis order, hwf = height, width, focal), views in name order."""
    hwf = np.tile([scene.height, scene.width, scene.focal], (len(scene.paths), 1))
    llff.save_poses_bounds(folder / "poses_bounds.npy", llff.opencv_to_llff(scene.camtoworlds, hwf), bounds)


def write_scene_json(scene, folder, bounds, supersample):
    """scene.json: what was rendered and how (see the *_CONVENTION strings)."""
    views = [
        {
            "name": image_name(path),
            "path": path,
            "stem": stem(path),
            "split": split,
            "camtoworld_opencv": c2w.tolist(),
            "camtoworld_opengl": (c2w @ OPENCV_TO_OPENGL).tolist(),
            "near": float(near),
            "far": float(far),
        }
        for path, split, c2w, (near, far) in zip(scene.paths, scene.splits, scene.camtoworlds, bounds)
    ]
    info = {
        "generator": GENERATOR,
        "scene": scene.kind,
        "layout": LAYOUTS[scene.kind],
        "seed": scene.seed,
        "width": scene.width,
        "height": scene.height,
        "intrinsics": {"fx": scene.focal, "fy": scene.focal, "cx": scene.width / 2, "cy": scene.height / 2},
        "supersampling": [supersample, supersample],
        "camera_convention": CAMERA_CONVENTION,
        "depth": DEPTH_CONVENTION,
        "points": POINTS_CONVENTION,
        # Points are drawn only closer than this z-depth (null: everywhere), which bounds `far`.
        "max_point_depth": None if math.isinf(scene.max_point_depth) else scene.max_point_depth,
        "world_up": scene.up.tolist(),
        "near": float(bounds[:, 0].min()),
        "far": float(bounds[:, 1].max()),
        "views": views,
    }
    with open(folder / "scene.json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


def write_scene(scene, out, overwrite=False, supersample=2):
    """Renders `scene` and writes it in its layout into folder `out` (replaced only when complete)."""
    out = pathlib.Path(out)
    check_output_folder(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(folder, 0o755)  # mkdtemp makes it private; the scene folder should not be
        depths, indices = render_views(scene, folder, supersample)
        xyz, rgb, visible, xy = sparse_points(scene, depths, indices)
        for path, seen in zip(scene.paths, visible):
            _save_npy(folder / "points" / f"{stem(path)}.npy", xyz[seen])
        bounds = view_bounds(scene, xyz, visible)
        if scene.kind == "object360":
            write_blender(scene, folder)
        else:
            write_colmap(scene, folder, xyz, rgb, visible, xy)
            write_poses_bounds(scene, folder, bounds)
        write_scene_json(scene, folder, bounds, supersample)
        replace_dir(folder, out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return out
