# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Blender and ScanNet-style scenes with depth maps, as rays of the fork's 12-field Rays.

Blender: transforms_{split}.json, RGBA PNGs, a depth map per image (`<img>_depth_0001.exr` as the
fork, `<img>_depth.npy`, `<img>_depth.png` 16-bit millimetres, or data_tools.synth's
`depth/<split>/<stem>.npy`), optional `<img>_normal_0001.exr`. ScanNet: transforms_{split}.json
(file_path, transform_matrix, fx per frame; near, far), config.json (max_depth), sensor depth
`target_depth/<stem>.png` (mm), optional monocular depth `omni/<stem>_depth.npy` and normals
`omni/<stem>_normal.png`, optional COLMAP model `sparse/0`. Depth is the z-depth, which equals
the ray parameter t because camera-space directions have z = -1.
"""

import collections
import json
import os

import cv2
import imageio.v3 as iio
import numpy as np
import torch

from common import colmap
from common import images as image_files
from depth_mipnerf.datasets.exr import read_exr

Rays = collections.namedtuple(
    'Rays', ('origins', 'directions', 'viewdirs', 'radii', 'lossmult', 'near', 'far', 'depth', 'normal',
             'mask', 'depth_vars', 'cam_idx'))
DEPTH_SOURCES = ('sensor', 'mono_sensor', 'mono_colmap')


def namedtuple_map(fn, tup):
    """`fn` applied to every field of a namedtuple."""
    return type(tup)(*map(fn, tup))


def _load_json(path):
    """The parsed JSON file, or a FileNotFoundError naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: missing')
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); '
                             'is it truncated?') from None


def load_image(path, factor, white_bkgd):
    """float32 [H, W, 3] in [0, 1]; RGBA composited on white when white_bkgd; factor 2 halves it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: image missing')
    with image_files.naming(path):
        image = iio.imread(path).astype(np.float32) / 255.
    if factor == 2:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    elif factor not in (0, 1):
        raise ValueError(f'factor must be 0 or 2 (the fork supports no other), got {factor}')
    if white_bkgd and image.shape[-1] == 4:
        image = image[..., :3] * image[..., 3:] + (1. - image[..., 3:])
    return image[..., :3]


def read_depth_file(path):
    """[H, W] float32 depth of an EXR (the first of channels R, Z, Y, V), .npy, or 16-bit PNG in mm."""
    ext = os.path.splitext(path)[1].lower()
    if ext == '.exr':
        with image_files.naming(path):
            channels = read_exr(path)
        name = next((c for c in ('R', 'Z', 'Y', 'V') if c in channels), None)
        if name is None:
            raise ValueError(f'{path}: no R, Z, Y or V channel (has {sorted(channels)})')
        depth = channels[name]
    elif ext == '.npy':
        with image_files.naming(path):
            depth = np.load(path).astype(np.float32)
    elif ext == '.png':
        with image_files.naming(path):
            depth = iio.imread(path)
        if depth.dtype != np.uint16:
            raise ValueError(f'{path}: expected a 16-bit PNG of depth in millimetres, got {depth.dtype}')
        depth = depth.astype(np.float32) / 1000.
    else:
        raise ValueError(f'{path}: unknown depth format (expected .exr, .npy or .png)')
    depth = np.squeeze(depth)
    if depth.ndim != 2:
        raise ValueError(f'{path}: expected a one-channel depth map, got shape {depth.shape}')
    return depth


def check_depth(depth, path, image_shape):
    """Raises a ValueError naming `path` unless depth [H, W] matches image_shape and has a valid value."""
    if depth.shape != tuple(image_shape):
        raise ValueError(f'{path}: depth map is {depth.shape[1]}x{depth.shape[0]} (WxH) but its image is '
                         f'{image_shape[1]}x{image_shape[0]}')
    if not np.any(depth > 0):
        raise ValueError(f'{path}: depth map has no valid value (all zero, negative, infinite or > 100)')


def resize_nearest(x, factor):
    """Halves x [H, W(, C)] by nearest-neighbour sampling when factor == 2 (the fork's order=0 resize)."""
    if factor != 2:
        return x
    return cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_NEAREST)


def fit_scale_shift(mono, target, name, trim_rounds=5):
    """Least-squares (scale, shift) with scale * mono + shift ~ target: [K], [K] -> 2 floats.

    The fit is repeated trim_rounds times on the samples whose residual is within 3 median absolute
    residuals of the previous fit: SfM points off the surface (or at silhouettes) would bias it.
    """
    mono, target = mono.astype(np.float64).ravel(), target.astype(np.float64).ravel()
    if mono.size < 2 or np.ptp(mono) == 0:
        raise ValueError(f'{name}: {mono.size} depth samples with distinct values are needed to align '
                         'the monocular depth (at least 2)')
    keep = np.ones(mono.size, bool)
    for _ in range(trim_rounds + 1):
        a = np.stack([mono[keep], np.ones(keep.sum())], axis=-1)
        (scale, shift), *_ = np.linalg.lstsq(a, target[keep], rcond=None)
        residual = np.abs(scale * mono + shift - target)
        # 1e-6 floor: an exact fit has a zero median and must keep its inliers.
        new_keep = residual <= max(3 * np.median(residual[keep]), 1e-6)
        if new_keep.sum() < 2 or (new_keep == keep).all():
            break
        keep = new_keep
    return float(scale), float(shift)


def colmap_point_depths(model, image_name, sparse_dir):
    """(xy [K, 2] COLMAP pixel coordinates, z [K] camera z-depth, camera (W, H)) of the 3D points
    image_name observes."""
    cameras, images, points3D = model
    image = next((im for im in images.values() if im.name == image_name), None)
    if image is None:
        raise ValueError(f'{sparse_dir}: the COLMAP model has no image named {image_name}')
    ids = np.asarray(image.point3D_ids, np.int64)
    keep = np.array([i != colmap.INVALID_POINT3D_ID and i in points3D for i in ids], bool)
    camera = cameras[image.camera_id]
    if not keep.any():
        return np.zeros((0, 2)), np.zeros(0), (camera.width, camera.height)
    xyz = np.array([points3D[i].xyz for i in ids[keep]])
    w2c = colmap.world_to_camera(image)
    z = xyz @ w2c[2, :3] + w2c[2, 3]
    return np.asarray(image.xys)[keep], z, (camera.width, camera.height)


def align_mono_to_points(mono, xy, z, camera_size, name):
    """Monocular depth [H, W] scaled and shifted onto the points' depths z at pixels xy (of a camera
    of camera_size (W, H)): the least-squares fit of the README's "monocular scaled to COLMAP"."""
    scale_xy = np.array([mono.shape[1] / camera_size[0], mono.shape[0] / camera_size[1]])
    px = np.floor(xy * scale_xy).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < mono.shape[1]) & (px[:, 1] >= 0) & (px[:, 1] < mono.shape[0]) & (z > 0)
    scale, shift = fit_scale_shift(mono[px[inside, 1], px[inside, 0]], z[inside], name)
    return scale * mono + shift


def unit_normals(normal):
    """normal / |normal| along the last axis, zero vectors (no normal) kept zero: [H, W, 3]."""
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    return np.where(norm > 0, normal / np.maximum(norm, 1e-6), 0.)


def generate_rays(camtoworlds, h, w, focal, near, far, depth, normal, depth_vars):
    """Pinhole rays of every pixel (centres at +0.5, -z forward, y up) of camtoworlds [N, 4, 4].

    depth, depth_vars [N, H, W, 1], normal [N, H, W, 3] (camera-independent). Returns Rays of
    [N, H, W, k] float32 tensors; cam_idx is the image index, mask = depth <= 0 (True = no depth).
    """
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32), indexing='xy')
    camera_dirs = np.stack([(x - w * 0.5 + 0.5) / focal, -(y - h * 0.5 + 0.5) / focal, -np.ones_like(x)], -1)
    c2w = np.asarray(camtoworlds, np.float32)
    directions = np.einsum('hwj,nij->nhwi', camera_dirs, c2w[:, :3, :3])
    origins = np.broadcast_to(c2w[:, None, None, :3, 3], directions.shape)
    viewdirs = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    # Radius: the distance to the next row's direction, x 2 / sqrt(12) (the last row repeats).
    dx = np.sqrt(np.sum((directions[:, :-1] - directions[:, 1:]) ** 2, -1))
    dx = np.concatenate([dx, dx[:, -2:-1]], 1)
    ones = np.ones_like(origins[..., :1])
    cam_idx = np.arange(len(c2w), dtype=np.float32)[:, None, None, None] * ones
    fields = dict(origins=origins, directions=directions, viewdirs=viewdirs, radii=dx[..., None] * 2 / np.sqrt(12),
                  lossmult=ones, near=near * ones, far=far * ones, depth=depth, normal=normal,
                  mask=(depth <= 0), depth_vars=depth_vars, cam_idx=cam_idx)
    return Rays(**{k: torch.from_numpy(np.ascontiguousarray(v)).to(torch.bool if k == 'mask' else torch.float32)
                   for k, v in fields.items()})


class BaseDataset(torch.utils.data.Dataset):
    """Images [N, H, W, 3] and rays [N, H, W, k]; the train split is flattened to rays [N*H*W, k]."""

    def __init__(self, data_dir, split, white_bkgd=True, batch_type='all_images', factor=0, num_images=None,
                 load_depth=True, depth_source='sensor'):
        super().__init__()
        if batch_type != ('all_images' if split == 'train' else 'single_image'):
            raise ValueError(f"batch_type must be 'all_images' for train and 'single_image' otherwise, got {batch_type!r}")
        if depth_source not in DEPTH_SOURCES:
            raise ValueError(f'depth_source must be one of {DEPTH_SOURCES}, got {depth_source!r}')
        self.data_dir, self.split, self.white_bkgd = data_dir, split, white_bkgd
        self.factor, self.load_depth, self.depth_source = factor, load_depth, depth_source
        self.near, self.far = 2., 6.
        self._load_renderings(num_images)
        self.n_examples, self.h, self.w = self.images.shape[:3]
        self.rays = generate_rays(self.camtoworlds, self.h, self.w, self.focal, self.near, self.far,
                                  self.depths, self.normals, self.depth_vars)
        if split == 'train':
            self.images = self.images.reshape(-1, 3)
            self.rays = namedtuple_map(lambda r: r.reshape(-1, r.shape[-1]), self.rays)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """(Rays, pixels) of one ray / image, or of a tensor of indices."""
        return namedtuple_map(lambda r: r[index], self.rays), self.images[index]

    def _stack(self, images, cams, depths, normals, depth_vars):
        """Stores the per-image lists as arrays; a ValueError naming the split's JSON when they are empty."""
        if not images:
            raise ValueError(f'{self.data_dir}/transforms_{self.split}.json: no frames')
        self.images = torch.from_numpy(np.stack(images)).float()
        self.camtoworlds = np.stack(cams).astype(np.float32)
        self.depths = np.stack(depths)[..., None].astype(np.float32)
        self.normals = np.stack(normals).astype(np.float32)
        self.depth_vars = np.stack(depth_vars)[..., None].astype(np.float32)


class Blender(BaseDataset):
    """Blender scene with a depth map per image (see the module docstring for the file names)."""

    def _depth_path(self, image_path):
        """The first existing depth file of image_path, or a FileNotFoundError naming the candidates."""
        stem = os.path.splitext(image_path)[0]
        rel = os.path.relpath(stem, os.path.join(self.data_dir, self.split))
        candidates = [stem + '_depth_0001.exr', stem + '_depth.npy', stem + '_depth.png',
                      os.path.join(self.data_dir, 'depth', self.split, rel + '.npy')]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise FileNotFoundError(f'{image_path}: no depth map; expected one of ' + ', '.join(candidates)
                                    + " (or set Config.load_depth = False)")
        return found

    def _check_depth_count(self, n_frames):
        """A data_tools-style depth/<split>/ folder must hold one map per frame."""
        folder = os.path.join(self.data_dir, 'depth', self.split)
        if os.path.isdir(folder):
            count = len([f for f in os.listdir(folder) if f.endswith('.npy')])
            if count != n_frames:
                raise ValueError(f'{folder}: {count} depth maps for the {n_frames} frames of '
                                 f'transforms_{self.split}.json')

    def _load_renderings(self, num_images):
        meta = _load_json(os.path.join(self.data_dir, f'transforms_{self.split}.json'))
        if self.load_depth:
            self._check_depth_count(len(meta['frames']))
        images, cams, depths, normals = [], [], [], []
        for frame in meta['frames'][:num_images]:
            fname = os.path.join(self.data_dir, frame['file_path'] + '.png')
            image = load_image(fname, self.factor, self.white_bkgd)
            full_shape = iio.improps(fname).shape[:2]
            if self.load_depth:
                path = self._depth_path(fname)
                depth = read_depth_file(path)
                # Non-finite and > 100 (the EXR background) mean "no depth", as the fork's > 100 rule.
                depth = np.where(np.isfinite(depth) & (depth <= 100), depth, 0.).astype(np.float32)
                check_depth(depth, path, full_shape)
                depth = resize_nearest(depth, self.factor)
            else:
                depth = np.zeros(image.shape[:2], np.float32)
            normal_path = os.path.splitext(fname)[0] + '_normal_0001.exr'
            if os.path.isfile(normal_path):
                with image_files.naming(normal_path):
                    channels = read_exr(normal_path)
                normal = unit_normals(resize_nearest(np.stack([channels[c] for c in ('R', 'G', 'B')], -1),
                                                     self.factor))
            else:
                normal = np.zeros(image.shape[:2] + (3,), np.float32)
            images.append(image)
            cams.append(np.array(frame['transform_matrix'], np.float32))
            depths.append(depth)
            normals.append(normal)
        self._stack(images, cams, depths, normals, [np.zeros_like(d) for d in depths])
        self.focal = .5 * images[0].shape[1] / np.tan(.5 * float(meta['camera_angle_x']))


class ScanNet(BaseDataset):
    """ScanNet-style room: sensor depth in mm, optionally replaced by aligned monocular depth."""

    def _companion(self, rel_path, folder, suffix):
        """data_dir/<rel_path with its 'rgb' folder replaced by `folder` and its extension by suffix>."""
        head, tail = os.path.split(rel_path)
        head = os.path.join(*[folder if p == 'rgb' else p for p in head.split(os.sep)]) if head else folder
        return os.path.join(self.data_dir, head, os.path.splitext(tail)[0] + suffix)

    def prepare_depthmap(self, depth, omni_depth, max_depth, name, points=None):
        """(depth [H, W], depth_var [H, W], mask [H, W] True = invalid) of the chosen depth_source.

        'sensor' (the fork): the sensor depth; 'mono_sensor': the monocular depth fitted to the valid
        sensor depth (the fork fits it and prints it); 'mono_colmap': fitted to the COLMAP points.
        """
        d_mask = (depth > max_depth) | (depth < 0.1)
        if self.depth_source == 'mono_sensor':
            scale, shift = fit_scale_shift(omni_depth[~d_mask], depth[~d_mask], name)
            depth = scale * omni_depth + shift
        elif self.depth_source == 'mono_colmap':
            depth = align_mono_to_points(omni_depth, *points, name)
        if self.depth_source != 'sensor':
            d_mask = (depth > max_depth) | (depth < 0.1)
            depth = np.where(d_mask, 0., depth).astype(np.float32)
        return depth, 0.01 * depth, d_mask

    def _load_renderings(self, num_images):
        meta = _load_json(os.path.join(self.data_dir, f'transforms_{self.split}.json'))
        max_depth = _load_json(os.path.join(self.data_dir, 'config.json'))['max_depth']
        model = None
        if self.load_depth and self.depth_source == 'mono_colmap':
            sparse = os.path.join(self.data_dir, 'sparse', '0')
            model = colmap.read_model(sparse)
        images, cams, depths, normals, depth_vars = [], [], [], [], []
        for frame in meta['frames'][:num_images]:
            rel = frame['file_path']
            fname = os.path.join(self.data_dir, rel)
            image = load_image(fname, self.factor, self.white_bkgd)
            if self.load_depth:
                depth, depth_var = self._load_depth(rel, image.shape[:2], max_depth, model)
            else:
                depth = depth_var = np.zeros(image.shape[:2], np.float32)
            normal_path = self._companion(rel, 'omni', '_normal.png')
            if os.path.isfile(normal_path):
                normal = unit_normals(resize_nearest(
                    iio.imread(normal_path)[..., :3].astype(np.float32) / 255 * 2 - 1, self.factor))
            else:
                normal = np.zeros(image.shape[:2] + (3,), np.float32)
            images.append(image)
            cams.append(np.array(frame['transform_matrix'], np.float32))
            depths.append(depth)
            depth_vars.append(depth_var)
            normals.append(normal)
        self._stack(images, cams, depths, normals, depth_vars)
        self.near, self.far = float(meta['near']), float(meta['far'])
        self.focal = float(meta['frames'][0].get('fx', meta.get('fx', 0))) / (2 if self.factor == 2 else 1)

    def _load_depth(self, rel, image_shape, max_depth, model):
        """(depth, depth_var) [H, W] of one frame, checked against its image."""
        fname = os.path.join(self.data_dir, rel)
        full_shape = iio.improps(fname).shape[:2]
        sensor_path = self._companion(rel, 'target_depth', '.png')
        mono_path = self._companion(rel, 'omni', '_depth.npy')
        if self.depth_source == 'mono_colmap':
            name = mono_path
            sensor = None
        else:
            name = sensor_path
            if not os.path.isfile(sensor_path):
                raise FileNotFoundError(f'{fname}: sensor depth {sensor_path} missing')
            sensor = read_depth_file(sensor_path)
            check_depth(sensor, sensor_path, full_shape)
        mono, points = None, None
        if self.depth_source != 'sensor':
            if not os.path.isfile(mono_path):
                raise FileNotFoundError(f'{fname}: monocular depth {mono_path} missing '
                                        f'(Config.depth_source = {self.depth_source!r})')
            mono = read_depth_file(mono_path)
            check_depth(mono, mono_path, full_shape)
            if model is not None:
                points = colmap_point_depths(model, os.path.basename(rel), os.path.join(self.data_dir, 'sparse', '0'))
        if sensor is None:
            sensor = np.zeros(full_shape, np.float32)
        depth, depth_var, _ = self.prepare_depthmap(sensor, mono, max_depth, name, points)
        depth = resize_nearest(depth.astype(np.float32), self.factor)
        return depth, resize_nearest(depth_var.astype(np.float32), self.factor)
