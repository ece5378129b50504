# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Dataset loaders (Blender, LLFF / mip-NeRF 360) that stream ray batches from a prefetch thread."""

import abc
import functools
import json
import os
import threading
import warnings

import numpy as np
import torch

from common import colmap, dist, llff, memory, prefetch
from mipnerf360.internal import camera_utils, utils
from mipnerf360.internal import image as lib_image

# COLMAP camera models without lens distortion: their rays need no undistortion.
_UNDISTORTED_MODELS = ('SIMPLE_PINHOLE', 'PINHOLE', 'SIMPLE_FISHEYE', 'FISHEYE')
# Distortion keys multinerf's pixels_to_rays reads for each projection.
_DISTORTION_KEYS = {
    camera_utils.ProjectionType.PERSPECTIVE: ('k1', 'k2', 'k3', 'p1', 'p2'),
    camera_utils.ProjectionType.FISHEYE: ('k1', 'k2', 'k3', 'k4'),
}
_NOT_PORTED_LOADERS = ('tat_nerfpp', 'tat_fvs', 'dtu')


def _synth_hint(scene, data_dir):
    """How to make a synthetic stand-in scene in data_dir."""
    return (f'to make a synthetic stand-in, run `python -m data_tools.synth --scene {scene} '
            f'--out {data_dir}`')


def load_dataset(split, train_dir, config, device=None, seed=None):
    """Loads split 'train' or 'test' of the scene in train_dir with config.dataset_loader.

    device: where training batches go (default CPU); test batches stay on the CPU. seed: of the
    training batches (batch k is a function of seed, rank and k); None draws it from np.random.
    """
    dataset_dict = {'blender': Blender, 'llff': LLFF}
    if config.dataset_loader not in dataset_dict:
        raise ValueError(
            f'Config.dataset_loader must be one of {sorted(dataset_dict)}, got '
            f'{config.dataset_loader!r} (multinerf\'s {", ".join(_NOT_PORTED_LOADERS)} are not '
            'ported)')
    return dataset_dict[config.dataset_loader](split, train_dir, config, device=device, seed=seed)


def _use_device_data(data_on_device, device, nbytes):
    """Whether training data of nbytes goes to `device`: Config.data_on_device, else when it is an
    accelerator and the data takes at most half of its free memory."""
    if data_on_device is not None:
        return data_on_device
    if device.type == 'cpu':
        return False
    if device.type == 'cuda':
        return memory.fits_free_memory(nbytes, device)
    return True


def _to_device(value, device):
    """value with its tensors (or those of a tuple of them) on device."""
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _pixtocam(fx, fy, cx, cy):
    """Inverse intrinsics [3, 3] (float64 numpy) of a pinhole camera."""
    values = (torch.tensor(float(v), dtype=torch.float64) for v in (fx, fy, cx, cy))
    return np.linalg.inv(camera_utils.intrinsic_matrix(*values).numpy())


def _read_cameras_and_images(colmap_dir):
    """(cameras, images) of the COLMAP model in colmap_dir, .bin or .txt; points are not read."""
    for ext, read_cameras, read_images in (
            ('.bin', colmap.read_cameras_binary, colmap.read_images_binary),
            ('.txt', colmap.read_cameras_text, colmap.read_images_text)):
        paths = [os.path.join(colmap_dir, name + ext) for name in ('cameras', 'images')]
        if all(os.path.isfile(p) for p in paths):
            return read_cameras(paths[0]), read_images(paths[1])
    raise FileNotFoundError(
        f'No COLMAP model in {colmap_dir}: expected cameras.bin and images.bin (or .txt)')


def _colmap_distortion(model, distortion, camtype):
    """multinerf's distortion dict of a COLMAP camera model (None for undistorted models)."""
    if model in _UNDISTORTED_MODELS:
        return None
    return {k: distortion[k] for k in _DISTORTION_KEYS[camtype]}


def load_colmap_posedata(colmap_dir):
    """Poses of a COLMAP model in COLMAP's image order, like multinerf's NeRFSceneManager.process.

    Returns (image_names [N], poses [N, 3, 4] OpenGL camera-to-world, pixtocam [3, 3] when all images
    share intrinsics else [N, 3, 3], distortion_params or None, camtype, size (width, height)).
    """
    cameras, images = _read_cameras_and_images(colmap_dir)
    cams = colmap.model_to_cameras(cameras, images)
    # model_to_cameras sorts by name; multinerf keeps the model's order (load_alphabetical sorts).
    by_name = {name: i for i, name in enumerate(cams['names'])}
    order = np.array([by_name[im.name] for im in images.values()])
    models = {cameras[i].model for i in cams['camera_ids']}
    camtypes = {camera_utils.ProjectionType(t) for t in cams['camera_types']}
    distortions = {tuple(sorted(d.items())) for d in cams['distortion']}
    sizes = {tuple(s) for s in cams['sizes'].tolist()}
    if len(camtypes) > 1 or len(distortions) > 1 or len(sizes) > 1 or len(models) > 1:
        raise ValueError(
            f'{colmap_dir}: images must share one camera model, lens distortion and size; found '
            f'models {sorted(models)}, sizes {sorted(sizes)} and {len(distortions)} distortions')
    camtype = camtypes.pop()
    distortion_params = _colmap_distortion(models.pop(), cams['distortion'][0], camtype)
    pixtocams = np.linalg.inv(cams['intrinsics'][order])
    if np.all(pixtocams == pixtocams[:1]):
        pixtocams = pixtocams[0]
    # COLMAP's camera axes (right, down, forward) -> NeRF's (right, up, back).
    poses = cams['camtoworlds'][order, :3, :4] @ np.diag([1., -1., -1., 1.])
    names = [cams['names'][i] for i in order]
    return names, poses, pixtocams, distortion_params, camtype, sizes.pop()


def _read_transforms(data_dir, split, scene):
    """(path, contents) of data_dir/transforms{_split}.json."""
    suffix = '' if split is None else f'_{split}'
    pose_file = os.path.join(data_dir, f'transforms{suffix}.json')
    if not utils.file_exists(pose_file):
        raise FileNotFoundError(
            f'Pose file {pose_file} does not exist; {_synth_hint(scene, data_dir)}')
    with utils.open_file(pose_file, 'r') as fp:
        return pose_file, json.load(fp)


def load_blender_posedata(data_dir, split=None):
    """Poses of a Blender / Instant-NGP `transforms{_split}.json` (frames whose image exists).

    Returns (image_names [N], poses [N, 4, 4] OpenGL camera-to-world, pixtocam [3, 3],
    distortion_params or None, camtype).
    """
    pose_file, meta = _read_transforms(data_dir, split, 'unbounded360')
    required = [('w',), ('h',), ('frames',), ('fl_x', 'camera_angle_x'), ('fl_y', 'camera_angle_y')]
    for keys in required:
        if not any(k in meta for k in keys):
            raise ValueError(f'{pose_file} has no {" or ".join(keys)}')
    frames = [f for f in meta['frames']
              if utils.file_exists(os.path.join(data_dir, f['file_path']))]
    if not frames:
        raise ValueError(f'none of the {len(meta["frames"])} images {pose_file} names exists')
    names = [f['file_path'].split('/')[-1] for f in frames]
    poses = np.stack([np.array(f['transform_matrix'], dtype=np.float32) for f in frames])

    w, h = meta['w'], meta['h']
    cx = meta.get('cx', w / 2.)
    cy = meta.get('cy', h / 2.)
    fx = meta['fl_x'] if 'fl_x' in meta else 0.5 * w / np.tan(0.5 * float(meta['camera_angle_x']))
    fy = meta['fl_y'] if 'fl_y' in meta else 0.5 * h / np.tan(0.5 * float(meta['camera_angle_y']))
    pixtocam = _pixtocam(fx, fy, cx, cy)
    coeffs = ['k1', 'k2', 'p1', 'p2']
    params = {c: meta.get(c, 0.) for c in coeffs} if any(c in meta for c in coeffs) else None
    return names, poses, pixtocam, params, camera_utils.ProjectionType.PERSPECTIVE


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.exr')


def _image_files(folder):
    """Sorted image file names of folder; other files (.DS_Store, notes) are skipped with a warning."""
    names = sorted(utils.listdir(folder))
    others = [n for n in names if os.path.splitext(n)[1].lower() not in IMAGE_SUFFIXES]
    if others:
        warnings.warn(f'{folder}: skipping {len(others)} non-image file(s): {", ".join(others[:5])}')
    return [n for n in names if n not in others]


def _first_stem_difference(colmap_files, image_files):
    """The first name (without suffix) in one folder's sorted list that the other lacks."""
    def stems(names):
        return {os.path.splitext(n)[0] for n in names}
    for names, other, where in ((colmap_files, stems(image_files), 'images/'),
                                (image_files, stems(colmap_files), 'the downsampled folder')):
        extra = [n for n in names if os.path.splitext(n)[0] not in other]
        if extra:
            return f'{extra[0]} is only in {where}'
    return 'none (the names differ only in suffix)'


def _stack_images(images, paths):
    """Images [N, H, W, C] of equally sized images; a ValueError names the odd one out."""
    for image, path in zip(images, paths):
        if image.shape != images[0].shape:
            raise ValueError(
                f'{path} has shape {image.shape} but {paths[0]} has {images[0].shape}; all images '
                'must have the same size and channels')
    return np.stack(images, axis=0)


def _check_image_size(path, image, factor, size):
    """Raises unless image [h, w, ...] is the full-resolution size (width, height) over factor."""
    h, w = image.shape[:2]
    full_w, full_h = size
    # Downsampling tools round W / factor up or down: allow anything within one pixel.
    if abs(w * factor - full_w) >= factor or abs(h * factor - full_h) >= factor:
        raise ValueError(
            f'{path} is {w}x{h} but the camera is {full_w}x{full_h}, so factor {factor} expects '
            f'about {full_w / factor:g}x{full_h / factor:g}')


class Dataset(prefetch.PrefetchThread, metaclass=abc.ABCMeta):
    """Images and cameras of one split, served as ray batches by a prefetch thread.

    Subclasses load the data in `_load_renderings`. The constructor loads everything, queues the
    first batch and starts the thread, which keeps `config.prefetch_batches` batches ready.
    Training batch k is a function of (seed, rank, k); `seek` sets the step of the next one.
    `next(dataset)` gives a random training batch (Batch of [n_patches, patch, patch, ...] rays,
    moved to `device`) or the next whole test image (Batch of [H, W, ...] rays, on the CPU).

    Attributes:
      images: [N, H, W, 3] float32 in [0, 1].
      camtoworlds: [N, 3, 4] OpenGL camera-to-world of the split (or of the render path).
      pixtocams: [3, 3] shared or [N, 3, 3] inverse intrinsics.
      distortion_params: dict of lens distortion coefficients, or None.
      pixtocam_ndc: [3, 3] inverse intrinsics of the NDC camera (forward-facing scenes), or None.
      camtype: camera_utils.ProjectionType.
      cameras: (pixtocams, camtoworlds, distortion_params, pixtocam_ndc) as float32 tensors.
      height, width, focal, near, far, size: image size, focal length, ray bounds, image count.
      exposures: [N] shutter * ISO / 1000 from EXIF, or None.
    """

    def __init__(self, split, data_dir, config, device=None, seed=None):
        super().__init__(config.prefetch_batches)
        self._patch_size = max(config.patch_size, 1)
        # Each process of a distributed job draws its share of the batch.
        self._batch_size = config.batch_size // dist.get_world_size()
        if self._patch_size**2 > self._batch_size:
            raise ValueError(f'Patch size {self._patch_size}^2 too large for per-process batch '
                             f'size {self._batch_size}')
        self._batching = utils.BatchingMethod(config.batching)
        self._use_tiffs = config.use_tiffs
        self._load_disps = config.compute_disp_metrics
        self._load_normals = config.compute_normal_metrics
        self._test_camera_idx = 0
        self._num_border_pixels_to_mask = config.num_border_pixels_to_mask
        self._cast_rays_in_train_step = config.cast_rays_in_train_step
        self._render_spherical = False
        if config.rawnerf_mode or config.apply_bayer_mask:
            raise ValueError('RawNeRF data (Config.rawnerf_mode, apply_bayer_mask) is not ported')
        # Training batch k is drawn from a generator seeded by (seed, rank, k) alone (see
        # _step_seed), so a run resumed at step k gets the batches an uninterrupted run gets there.
        # Without a seed, one is drawn from numpy's global state (np.random.seed before loading).
        self._seed = int(np.random.randint(2**31)) if seed is None else int(seed)
        self._rank = dist.get_rank()
        self._step_lock = threading.Lock()
        self._next_step = 1  # the step of the next batch drawn
        self._expected_step = 1  # the step of the next batch handed out

        self.split = utils.DataSplit(split)
        self.data_dir = data_dir
        self.device = torch.device('cpu' if device is None else device)
        self.near = config.near
        self.far = config.far
        self.render_path = config.render_path
        self.distortion_params = None
        self.disp_images = None
        self.normal_images = None
        self.alphas = None
        self.poses = None
        self.pixtocam_ndc = None
        self.metadata = None  # RawNeRF metadata in multinerf; raw data is not ported.
        self.camtype = camera_utils.ProjectionType.PERSPECTIVE
        self.exposures = None
        self.render_exposures = None
        self.images = None
        self.camtoworlds = None
        self.pixtocams = None
        self.height = None
        self.width = None
        self.focal = None

        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f'Dataset folder {data_dir} does not exist; '
                                    f'{_synth_hint(self._synth_scene(config), data_dir)}')
        self._load_renderings(config)

        if self.render_path:
            if config.render_path_file is not None:
                with utils.open_file(config.render_path_file, 'rb') as fp:
                    self.camtoworlds = np.load(fp)
            if config.render_resolution is not None:
                self.width, self.height = config.render_resolution
            if config.render_focal is not None:
                self.focal = config.render_focal
            if config.render_camtype is not None:
                if config.render_camtype == 'pano':
                    self._render_spherical = True
                else:
                    self.camtype = camera_utils.ProjectionType(config.render_camtype)
            self.distortion_params = None
            self.pixtocams = _pixtocam(self.focal, self.focal, self.width * .5, self.height * .5)

        self._n_examples = self.camtoworlds.shape[0]
        # Rays are cast in float64, as multinerf's numpy path, and handed out in float32.
        self._ray_cameras = self._camera_tensors(torch.float64)
        self.cameras = self._camera_tensors(torch.float32)
        self._tables = self._lookup_tables()  # Host views of the images: no copy.

        # Training data on the device: batches are drawn there, with no host copy per step and
        # no prefetch thread (the device queues the work asynchronously anyway).
        self.on_device = (self.split == utils.DataSplit.TRAIN and
                          _use_device_data(config.data_on_device, self.device, self._data_bytes()))
        self._peeked = None
        if self.on_device:
            self._tables['patch_offsets'] = camera_utils.pixel_coordinates(
                self._patch_size, self._patch_size)
            self._tables = {k: _to_device(v, self.device) for k, v in self._tables.items()}
            self._device_rng = torch.Generator(device=self.device)
            return
        if self.split == utils.DataSplit.TRAIN:
            self.start_prefetch(self._make_train_item)
        else:
            self.start_prefetch(lambda: self._prepare(self._next_test()))

    def seek(self, step):
        """Makes the next training batch that of `step` (1-based); batches prefetched for other
        steps are dropped."""
        if self.split != utils.DataSplit.TRAIN:
            raise ValueError(f'only the training split has steps, not {self.split.value}')
        with self._step_lock:
            self._next_step = self._expected_step = step
        self._peeked = None

    def _take_step(self):
        """The step of the next training batch drawn; advances the stream."""
        with self._step_lock:
            step, self._next_step = self._next_step, self._next_step + 1
        return step

    def _make_train_item(self):
        """(step, the batch of step) for the prefetch queue."""
        step = self._take_step()
        return step, self._prepare(self._next_train(step))

    def _skip_to_expected_step(self):
        """Drops queued batches of steps other than the one handed out next (prefetched before a
        seek); the queued batch of that step."""
        while True:
            step, batch = super().peek()
            if step == self._expected_step:
                return batch
            super().__next__()

    def _lookup_tables(self):
        """What a ray batch is gathered from: images (and disparities, normals, alphas,
        exposures) and the float64 ray cameras, as tensors sharing the loaded arrays' memory."""
        tables = {'ray_cameras': self._ray_cameras}
        for name in ('images', 'disp_images', 'normal_images', 'alphas', 'exposures',
                     'render_exposures'):
            array = getattr(self, name)
            if array is not None:
                tables[name] = torch.from_numpy(np.ascontiguousarray(array))
        return tables

    def _data_bytes(self):
        """Bytes the lookup tables take (what data_on_device moves to the device)."""
        return sum(v.numel() * v.element_size() for v in self._tables.values()
                   if isinstance(v, torch.Tensor))

    def __next__(self):
        """The next batch: drawn now on the device, or taken from the prefetch queue."""
        if not self.on_device:
            if self.split != utils.DataSplit.TRAIN:
                return super().__next__()
            self._skip_to_expected_step()
            self._expected_step += 1
            return super().__next__()[1]
        batch, self._peeked = self._peeked, None
        return batch if batch is not None else self._next_train_on_device(self._take_step())

    def peek(self):
        """The batch next(self) will return."""
        if not self.on_device:
            return super().peek() if self.split != utils.DataSplit.TRAIN else self._skip_to_expected_step()
        if self._peeked is None:
            self._peeked = self._next_train_on_device(self._take_step())
        return self._peeked

    def _synth_scene(self, config):
        """The data_tools.synth scene with this loader's layout."""
        return 'forward' if config.forward_facing else 'unbounded360'

    def _camera_tensors(self, dtype):
        """(pixtocams, camtoworlds, distortion_params, pixtocam_ndc) with tensors of dtype."""
        def to_tensor(x):
            return None if x is None else torch.tensor(np.asarray(x), dtype=dtype)
        return (to_tensor(self.pixtocams), to_tensor(self.camtoworlds), self.distortion_params,
                to_tensor(self.pixtocam_ndc))

    def _prepare(self, batch):
        """Moves a training batch to self.device; test batches (whole images) stay on the CPU."""
        if self.split != utils.DataSplit.TRAIN or self.device.type == 'cpu':
            return batch
        if self.device.type == 'cuda':
            # Pinned host memory lets the copy run asynchronously while the GPU trains.
            return batch.map(lambda x: x.pin_memory().to(self.device, non_blocking=True))
        return batch.map(lambda x: x.to(self.device))

    @property
    def size(self):
        return self._n_examples

    @abc.abstractmethod
    def _load_renderings(self, config):
        """Loads images and cameras: sets images, camtoworlds, pixtocams, height, width, focal
        (and optionally distortion_params, camtype, pixtocam_ndc, disp_images, normal_images)."""

    def _make_ray_batch(self, pix_x_int, pix_y_int, cam_idx):
        """utils.Batch of the rays through pixels (pix_x_int, pix_y_int) of cameras cam_idx.

        The int64 tensors pix_x_int, pix_y_int [...] and cam_idx (int or a tensor broadcastable
        to them), all on the device of the lookup tables, give rays with fields [..., C] there.
        """
        tables = self._tables
        shape = pix_x_int.shape
        device = pix_x_int.device
        cam_idx = torch.as_tensor(cam_idx, device=device)

        def broadcast_scalar(x, dtype=torch.float32):
            # A Python number is filled in on the device; nothing is copied from the host.
            if not isinstance(x, torch.Tensor):
                return torch.full((*shape, 1), x, dtype=dtype, device=device)
            return torch.broadcast_to(x.to(dtype), shape)[..., None]

        ray_kwargs = {
            'lossmult': broadcast_scalar(1.),
            'near': broadcast_scalar(self.near),
            'far': broadcast_scalar(self.far),
            'cam_idx': broadcast_scalar(cam_idx, torch.int64),
        }
        if 'exposures' in tables:
            idx = 0 if self.render_path else cam_idx
            ray_kwargs['exposure_values'] = broadcast_scalar(tables['exposures'][idx])
        if self.render_path and 'render_exposures' in tables:
            ray_kwargs['exposure_values'] = broadcast_scalar(tables['render_exposures'][cam_idx])

        if self._cast_rays_in_train_step and self.split == utils.DataSplit.TRAIN:
            # The train step casts the rays itself (on its device) from the pixels.
            rays = utils.Pixels(pix_x_int, pix_y_int, **ray_kwargs)
        else:
            pixtocams, camtoworlds, distortion_params, pixtocam_ndc = tables['ray_cameras']
            # Index the cameras with cam_idx's own shape; they broadcast against the pixels.
            if pixtocams.ndim == 3:
                pixtocams = pixtocams[cam_idx]
            origins, directions, viewdirs, radii, imageplane = camera_utils.pixels_to_rays(
                pix_x_int, pix_y_int, pixtocams, camtoworlds[cam_idx],
                distortion_params=distortion_params, pixtocam_ndc=pixtocam_ndc,
                camtype=self.camtype)
            rays = utils.Rays(
                origins=origins.float(), directions=directions.float(),
                viewdirs=viewdirs.float(), radii=radii.float(), imageplane=imageplane.float(),
                **ray_kwargs)

        batch = {'rays': rays}
        if not self.render_path:
            batch['rgb'] = tables['images'][cam_idx, pix_y_int, pix_x_int]
        if self._load_disps:
            batch['disps'] = tables['disp_images'][cam_idx, pix_y_int, pix_x_int]
        if self._load_normals:
            batch['normals'] = tables['normal_images'][cam_idx, pix_y_int, pix_x_int]
            batch['alphas'] = tables['alphas'][cam_idx, pix_y_int, pix_x_int]
        return utils.Batch(**batch)

    def _step_seed(self, step):
        """The 32-bit seed of training step `step`'s batch: a function of (seed, rank, step)."""
        return int(np.random.SeedSequence([self._seed, self._rank, step]).generate_state(1)[0])

    def _next_train(self, step):
        """The batch of `step`: batch_size // patch_size^2 random square patches of pixels."""
        rng = np.random.default_rng(self._step_seed(step))
        num_patches = self._batch_size // self._patch_size**2
        lower_border = self._num_border_pixels_to_mask
        upper_border = self._num_border_pixels_to_mask + self._patch_size - 1
        # Top-left corners of the patches, [num_patches, 1, 1] each.
        pix_x_int = rng.integers(lower_border, self.width - upper_border, (num_patches, 1, 1))
        pix_y_int = rng.integers(lower_border, self.height - upper_border, (num_patches, 1, 1))
        patch_dx_int, patch_dy_int = camera_utils.pixel_coordinates(self._patch_size, self._patch_size)
        pix_x_int = torch.from_numpy(pix_x_int) + patch_dx_int
        pix_y_int = torch.from_numpy(pix_y_int) + patch_dy_int
        if self._batching == utils.BatchingMethod.ALL_IMAGES:
            cam_idx = rng.integers(0, self._n_examples, (num_patches, 1, 1))
        else:
            cam_idx = rng.integers(0, self._n_examples, (1,))
        return self._make_ray_batch(pix_x_int, pix_y_int, torch.from_numpy(cam_idx))

    def _next_train_on_device(self, step):
        """_next_train drawn on the device with a generator of the device: no host work."""
        self._device_rng.manual_seed(self._step_seed(step))
        num_patches = self._batch_size // self._patch_size**2
        lower_border = self._num_border_pixels_to_mask
        upper_border = self._num_border_pixels_to_mask + self._patch_size - 1
        draw = functools.partial(torch.randint, generator=self._device_rng, device=self.device)
        pix_x_int = draw(lower_border, self.width - upper_border, (num_patches, 1, 1))
        pix_y_int = draw(lower_border, self.height - upper_border, (num_patches, 1, 1))
        patch_dx_int, patch_dy_int = self._tables['patch_offsets']
        if self._batching == utils.BatchingMethod.ALL_IMAGES:
            cam_idx = draw(0, self._n_examples, (num_patches, 1, 1))
        else:
            cam_idx = draw(0, self._n_examples, (1,))
        return self._make_ray_batch(pix_x_int + patch_dx_int, pix_y_int + patch_dy_int, cam_idx)

    def generate_ray_batch(self, cam_idx):
        """utils.Batch of every pixel's ray of camera cam_idx: fields [H, W, C] on the CPU."""
        if self._render_spherical:
            camtoworld = self._ray_cameras[1][cam_idx]
            rays = camera_utils.cast_spherical_rays(
                camtoworld, self.height, self.width, self.near, self.far)
            return utils.Batch(rays=rays.map(lambda x: x.float() if x.is_floating_point() else x))
        pix_x_int, pix_y_int = camera_utils.pixel_coordinates(self.width, self.height)
        tables_device = self._tables['ray_cameras'][1].device
        batch = self._make_ray_batch(pix_x_int.to(tables_device), pix_y_int.to(tables_device), cam_idx)
        return batch.map(lambda x: x.cpu())

    def _next_test(self):
        """The next whole image of the split, cycling through them."""
        cam_idx = self._test_camera_idx
        self._test_camera_idx = (self._test_camera_idx + 1) % self._n_examples
        return self.generate_ray_batch(cam_idx)


class Blender(Dataset):
    """Blender synthetic scenes: transforms_{split}.json and RGBA PNGs composited on white."""

    def _synth_scene(self, config):
        return 'object360'

    def _load_renderings(self, config):
        if config.render_path:
            raise ValueError('render_path cannot be used for the blender dataset.')
        pose_file, meta = _read_transforms(self.data_dir, self.split.value, 'object360')
        if not meta.get('frames'):
            raise ValueError(f'{pose_file} lists no frames')

        def get_img(fprefix, suffix):
            path = fprefix + suffix
            if not utils.file_exists(path):
                raise FileNotFoundError(f'Image {path} named by {pose_file} does not exist')
            image = utils.load_img(path)
            if config.factor > 1:
                image = lib_image.downsample(image, config.factor)
            return image

        images, disp_images, normal_images, cams, paths = [], [], [], [], []
        for frame in meta['frames']:
            fprefix = os.path.join(self.data_dir, frame['file_path'])
            if self._use_tiffs:
                channels = [get_img(fprefix, f'_{ch}.tiff') for ch in 'RGBA']
                images.append(lib_image.linear_to_srgb(np.stack(channels, axis=-1), xnp=np))
            else:
                images.append(get_img(fprefix, '.png') / 255.)
            paths.append(fprefix + ('_R.tiff' if self._use_tiffs else '.png'))
            if self._load_disps:
                disp_images.append(get_img(fprefix, '_disp.tiff'))
            if self._load_normals:
                normal_images.append(get_img(fprefix, '_normal.png')[..., :3] * 2. / 255. - 1.)
            cams.append(np.array(frame['transform_matrix'], dtype=np.float32)[:3, :4])

        images = _stack_images(images, paths).astype(np.float32)
        if self._load_disps:
            self.disp_images = np.stack(disp_images, axis=0)
        if self._load_normals:
            self.normal_images = np.stack(normal_images, axis=0)
            self.alphas = images[..., -1]
        if images.shape[-1] == 4:
            rgb, alpha = images[..., :3], images[..., -1:]
            images = rgb * alpha + (1. - alpha)  # A white background.
        self.images = images
        self.height, self.width = images.shape[1:3]
        self.camtoworlds = np.stack(cams, axis=0)
        self.focal = .5 * self.width / np.tan(.5 * float(meta['camera_angle_x']))
        self.pixtocams = _pixtocam(self.focal, self.focal, self.width * .5, self.height * .5)


class LLFF(Dataset):
    """LLFF and mip-NeRF 360 scenes: images{_factor}/ with COLMAP sparse/0 (or transforms.json)."""

    def _load_renderings(self, config):
        if self._load_disps or self._load_normals:
            raise ValueError('Only the blender loader reads ground-truth disparities and normals '
                             '(Config.compute_disp_metrics, compute_normal_metrics)')
        # multinerf's convention: factor 0 reads images/, factor f reads images_f/.
        image_dir_suffix = f'_{config.factor}' if config.factor > 0 else ''
        factor = config.factor if config.factor > 0 else 1

        colmap_dir = os.path.join(self.data_dir, 'sparse/0/')
        transforms_file = os.path.join(self.data_dir, 'transforms.json')
        if utils.file_exists(colmap_dir):
            *pose_data, size = load_colmap_posedata(colmap_dir)
        elif utils.file_exists(transforms_file):
            pose_data = load_blender_posedata(self.data_dir)
            size = tuple(_read_transforms(self.data_dir, None, 'unbounded360')[1][k]
                         for k in ('w', 'h'))
        else:
            raise FileNotFoundError(
                f'Neither a COLMAP model {colmap_dir} nor {transforms_file} exists; run '
                f'`python -m data_tools.colmap {self.data_dir}` on its images/, or '
                f'{_synth_hint(self._synth_scene(config), self.data_dir)}')
        image_names, poses, pixtocam, distortion_params, camtype = pose_data

        # Sorting by name fixes the test split (every llffhold-th image) that papers report on.
        if config.load_alphabetical:
            inds = np.argsort(image_names)
            image_names = [image_names[i] for i in inds]
            poses = poses[inds]
            if pixtocam.ndim == 3:
                pixtocam = pixtocam[inds]

        # Scale the inverse intrinsics by the image downsampling factor.
        pixtocam = pixtocam @ np.diag([factor, factor, 1.])
        self.pixtocams = pixtocam.astype(np.float32)
        self.focal = 1. / self.pixtocams.reshape(-1, 3, 3)[0, 0, 0]
        self.distortion_params = distortion_params
        self.camtype = camtype
        images = self._load_images(image_names, image_dir_suffix, factor, size)

        # Bounds are used only by forward-facing scenes.
        posefile = os.path.join(self.data_dir, 'poses_bounds.npy')
        if utils.file_exists(posefile):
            bounds = llff.load_poses_bounds(posefile)[1]
        else:
            bounds = np.array([0.01, 1.])

        if config.forward_facing:
            self.pixtocam_ndc = self.pixtocams.reshape(-1, 3, 3)[0]
            # Scale the scene so that the nearest bound sits at 1 / .75 (NeRF's bd_factor).
            scale = 1. / (bounds.min() * .75)
            poses = poses.copy()
            poses[:, :3, 3] *= scale
            bounds = bounds * scale
            poses, transform = camera_utils.recenter_poses(poses)
            self.colmap_to_world_transform = transform @ np.diag([scale] * 3 + [1])
            self.render_poses = camera_utils.generate_spiral_path(
                poses, bounds, n_frames=config.render_path_frames)
        else:
            # Align the cameras' principal axes with xyz (ground ~ xy plane) and fit in [-1, 1]^3.
            poses, transform = camera_utils.transform_poses_pca(
                poses, use_eigh=config.fix_pca_eigh)
            self.colmap_to_world_transform = transform
            if config.render_spline_keyframes is not None:
                self.spline_indices, self.render_poses, self.render_exposures = (
                    camera_utils.create_render_spline_path(config, image_names, poses,
                                                           self.exposures))
            else:
                self.render_poses = camera_utils.generate_ellipse_path(
                    poses, n_frames=config.render_path_frames, z_variation=config.z_variation,
                    z_phase=config.z_phase)
        self.poses = poses

        all_indices = np.arange(images.shape[0])
        if config.llff_use_all_images_for_training:
            train_indices = all_indices
        else:
            train_indices = all_indices[all_indices % config.llffhold != 0]
        indices = {
            utils.DataSplit.TEST: all_indices[all_indices % config.llffhold == 0],
            utils.DataSplit.TRAIN: train_indices,
        }[self.split]
        if len(indices) == 0:
            raise ValueError(f'The {self.split.value} split of {len(all_indices)} images with '
                             f'llffhold {config.llffhold} is empty')
        self.images = images[indices]
        if self.pixtocams.ndim == 3:
            self.pixtocams = self.pixtocams[indices]
        if self.exposures is not None:
            self.exposures = self.exposures[indices]
        self.camtoworlds = self.render_poses if config.render_path else poses[indices]
        self.height, self.width = images.shape[1:3]

    def _load_images(self, image_names, image_dir_suffix, factor, size):
        """Images [N, H, W, 3] in [0, 1] of image_names from images{suffix}/; sets exposures.

        Downsampled folders may name files differently: images/ and images{suffix}/ are matched
        by position after sorting.
        """
        colmap_image_dir = os.path.join(self.data_dir, 'images')
        image_dir = os.path.join(self.data_dir, 'images' + image_dir_suffix)
        for d in (image_dir, colmap_image_dir):
            if not utils.isdir(d):
                raise FileNotFoundError(
                    f'Image folder {d} does not exist (`python -m data_tools.colmap '
                    f'{self.data_dir}` writes images_2, images_4 and images_8 from images/)')
        colmap_files = _image_files(colmap_image_dir)
        image_files = _image_files(image_dir)
        if len(colmap_files) != len(image_files):
            raise ValueError(
                f'{image_dir} holds {len(image_files)} images but {colmap_image_dir} holds '
                f'{len(colmap_files)}; they are matched by sorted position, so the counts must agree '
                f'(first difference by stem: {_first_stem_difference(colmap_files, image_files)})')
        missing = sorted(set(image_names) - set(colmap_files))
        if missing:
            raise ValueError(f'{len(missing)} of the {len(image_names)} posed images are not in '
                             f'{colmap_image_dir}: {", ".join(missing[:5])}')
        if len(image_names) < len(colmap_files):
            warnings.warn(f'{len(colmap_files) - len(image_names)} of the {len(colmap_files)} '
                          f'images in {colmap_image_dir} have no pose and are not used')
        colmap_to_image = dict(zip(colmap_files, image_files))
        image_paths = [os.path.join(image_dir, colmap_to_image[f]) for f in image_names]
        images = []
        for path in image_paths:
            image = utils.load_img(path)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(f'{path} has shape {image.shape}; expected an RGB image [H, W, 3]')
            _check_image_size(path, image, factor, size)
            images.append(image)
        images = _stack_images(images, image_paths) / np.float32(255.)

        # EXIF data is usually only present in the original JPEG images.
        exifs = [utils.load_exif(os.path.join(colmap_image_dir, f)) for f in image_names]
        self.exifs = exifs
        if 'ExposureTime' in exifs[0] and 'ISOSpeedRatings' in exifs[0]:
            shutters = np.array([float(x['ExposureTime']) for x in exifs])
            isos = np.array([float(x['ISOSpeedRatings']) for x in exifs])
            self.exposures = shutters * isos / 1000.
        return images
