# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Blender, multi-scale Blender (Multicam) and LLFF datasets that serve ray batches from a prefetch thread."""

import dataclasses
import json
import math
import os
import warnings

import cv2
import numpy as np
import torch
from PIL import Image

from common import cameras, dist, llff, memory, prefetch
from common import images as image_files
from mipnerf.internal import utils

# Camera axes of NeRF (OpenGL: y up, z backward) from OpenCV's (y down, z forward).
_FLIP_YZ = (1., -1., -1.)
_SYNTH_OBJECT = 'python -m data_tools.synth --scene object360 --res 128x128 --out {raw}'
_CONVERT = 'python -m mipnerf.scripts.convert_blender_data --blender_dir {raw} --out_dir {out}'


def get_dataset(split, train_dir, config, device=None, seed=None, first_step=1):
    """Split 'train' or 'test' of the scene in folder train_dir, read by config.dataset_loader.

    device: where training batches go (default CPU); test images stay on the CPU. With
    Config.data_on_device (or, when it is None, when the training set fits, see data_on_device)
    the training images and rays live on `device` and batches are drawn there.
    seed, first_step: the training batch of step s is drawn from step_seed(seed, s), the first
    one served being first_step's (a resumed run's next step); seed None draws one from numpy's
    global state.
    """
    if config.dataset_loader not in dataset_dict:
        raise ValueError(f'Config.dataset_loader must be one of {sorted(dataset_dict)}, got '
                         f'{config.dataset_loader!r}')
    return dataset_dict[config.dataset_loader](split, train_dir, config, device=device, seed=seed,
                                               first_step=first_step)


def step_seed(seed, step):
    """The seed of the training batch of `step`: a hash of (seed, step) (numpy's SeedSequence), so
    a step's batch does not depend on the batches drawn before it and a resumed run gets the
    batches an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def convert_to_ndc(origins, directions, focal, w, h, near=1.):
    """NeRF's forward-facing NDC rays: origins, directions [..., 3] -> NDC origins, directions."""
    return cameras.convert_to_ndc(origins, directions, _pixtocam(focal, w, h), near)


def _pixtocam(focal, width, height):
    """Inverse intrinsics [3, 3] (float64, OpenCV axes) of a camera centred on its image."""
    params = (torch.tensor(float(v), dtype=torch.float64)
              for v in (focal, focal, width * .5, height * .5))
    return torch.linalg.inv(cameras.intrinsic_matrix(*params))


def pix2cam_matrix(focal, width, height):
    """Inverse intrinsics [3, 3] into NeRF's camera axes, as convert_blender_data writes them."""
    return torch.tensor(_FLIP_YZ, dtype=torch.float64)[:, None] * _pixtocam(focal, width, height)


def _world_rays(pix2cam, camtoworld, width, height):
    """origins, directions [H, W, 3] (float64) through the pixel centres of one camera.

    pix2cam: [3, 3] maps (x + .5, y + .5, 1) to a camera direction; camtoworld: [3 or 4, 4].
    """
    pix2cam = torch.as_tensor(pix2cam, dtype=torch.float64)
    camtoworld = torch.as_tensor(camtoworld, dtype=torch.float64)
    pix_x, pix_y = cameras.pixel_coordinates(int(width), int(height))
    camera_dirs = cameras.pixels_to_camera_dirs(pix_x + .5, pix_y + .5, pix2cam)
    directions = camera_dirs @ camtoworld[:3, :3].T
    origins = torch.broadcast_to(camtoworld[:3, 3], directions.shape)
    return origins, directions


def _row_distance(x):
    """Distance from each vector of x [H, W, 3] to the one a row below: [H, W].

    The last row repeats the second-to-last one (the original's concatenation of dx[-2:-1]).
    """
    d = torch.linalg.norm(x[:-1] - x[1:], dim=-1)
    return torch.cat([d, d[-2:-1]], 0)


def _radii(distance):
    """Cone radius [..., 1] of the distance [...] between neighbouring pixels' rays.

    2 / sqrt(12): a pixel-wide uniform distribution's standard deviation, times 2.
    """
    return distance[..., None] * 2 / math.sqrt(12)


def _image_rays(origins, directions, viewdirs, radii, lossmult, near, far):
    """Rays of one image [H, W, C] in float32; lossmult, near, far are scalars broadcast to [H, W, 1]."""
    ones = torch.ones_like(radii, dtype=torch.float32)
    return utils.Rays(
        origins=origins.float(), directions=directions.float(), viewdirs=viewdirs.float(),
        radii=radii.float(), lossmult=ones * float(lossmult), near=ones * float(near),
        far=ones * float(far))


def camera_rays(pix2cam, camtoworld, width, height, lossmult, near, far):
    """Rays [H, W, C] of one camera; radii from the distance to the next row's direction."""
    origins, directions = _world_rays(pix2cam, camtoworld, width, height)
    viewdirs = cameras.normalize(directions)
    radii = _radii(_row_distance(directions))
    return _image_rays(origins, directions, viewdirs, radii, lossmult, near, far)


def _gather(rays, combine):
    """One Rays of a list of per-image Rays, each field combined by combine (torch.stack or list)."""
    names = [f.name for f in dataclasses.fields(utils.Rays)]
    return utils.Rays(**{name: combine([getattr(r, name) for r in rays]) for name in names})


def _load_image(fname):
    """Image [H, W, C] in [0, 1] (float32); a missing or undecodable file is an error naming it."""
    if not utils.file_exists(fname):
        raise FileNotFoundError(f'Image {fname} does not exist')
    with image_files.naming(fname), utils.open_file(fname, 'rb') as imgin:
        return np.array(Image.open(imgin), dtype=np.float32) / 255.


def _load_json(fname):
    """The JSON file fname; a malformed or truncated one is a ValueError naming it."""
    with utils.open_file(fname, 'r') as fp:
        try:
            return json.load(fp)
        except json.JSONDecodeError as e:
            raise ValueError(f'{fname} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); '
                             'is it truncated?') from None


def _llff_image_files(imgdir):
    """Sorted image paths of an LLFF folder: .jpg/.png in any case (the original reads only
    JPG, jpg and png and skips the rest silently); other files are skipped with a warning naming them."""
    names = sorted(utils.listdir(imgdir))
    kept = [n for n in names if os.path.splitext(n)[1].lower() in ('.jpg', '.jpeg', '.png')]
    if len(kept) < len(names):
        warnings.warn(f'{imgdir}: skipping files that are not .jpg or .png: '
                      f'{", ".join(n for n in names if n not in kept)}')
    return [os.path.join(imgdir, n) for n in kept]


def _composite(image, white_bkgd):
    """RGB [..., 3] of an RGB or RGBA image, on white when white_bkgd."""
    # Only an alpha channel can be composited (the original would take blue as alpha on RGB).
    if white_bkgd and image.shape[-1] == 4:
        return image[..., :3] * image[..., -1:] + (1. - image[..., -1:])
    return image[..., :3]


def data_on_device(setting, nbytes, device, fraction=0.5):
    """Whether a training set of nbytes lives on `device`: Config.data_on_device when it is set,
    else whether it fits in `fraction` of the GPU's free memory; never on the CPU (the host copy
    and its prefetch thread are already where the model is)."""
    if device.type == 'cpu':
        return False
    if setting is not None:
        return setting
    if device.type != 'cuda':
        return True
    return memory.fits_free_memory(nbytes, device, fraction)


def _nbytes(tensors):
    """Bytes of a tensor or a list of tensors."""
    tensors = tensors if isinstance(tensors, list) else [tensors]
    return sum(t.numel() * t.element_size() for t in tensors)


class Dataset(prefetch.PrefetchThread):
    """Images and rays of one split, served by a prefetch thread, or drawn on the device.

    Subclasses load images and cameras in `_load_renderings` and make `self.rays` in
    `_generate_rays`. `next(dataset)` gives the training batch of the next step {'pixels': [B, 3],
    'rays': Rays [B, C]} on `device` (random pixels drawn from step_seed(seed, step)), or the next
    test image {'pixels': [H, W, 3], 'rays': Rays [H, W, C]} (only 'rays' when rendering a path) on
    the CPU. A training set on the device (self.on_device) has no thread: each batch is gathered
    there with indices drawn by a generator of that device, so no step copies from the host or
    waits for it.
    """

    def __init__(self, split, data_dir, config, device=None, seed=None, first_step=1):
        super().__init__(config.prefetch_batches)
        # Without a seed, one from numpy's global state (as the original's np.random draws), so
        # np.random.seed set before loading fixes the batches.
        self._seed = int(np.random.randint(2**31)) if seed is None else seed
        self._step = first_step  # The step whose batch is drawn next.
        self._host_generator = torch.Generator()
        self.split = split
        self.data_dir = data_dir
        self.device = torch.device('cpu' if device is None else device)
        self.near = config.near
        self.far = config.far
        # Each process of a distributed job draws its share of the batch.
        self.batch_size = config.batch_size // dist.get_world_size()
        self.batching = config.batching
        self.render_path = config.render_path
        if not utils.isdir(data_dir):
            raise FileNotFoundError(f'Dataset folder {data_dir} does not exist; {self._hint()}')
        if split == 'train':
            self._train_init(config)
        elif split == 'test':
            self._test_init(config)
        else:
            raise ValueError(f"the split argument should be either 'train' or 'test', set to "
                             f'{split!r} here.')
        self.on_device = split == 'train' and data_on_device(
            config.data_on_device, _nbytes(self.images) + sum(
                _nbytes(getattr(self.rays, f.name)) for f in dataclasses.fields(utils.Rays)),
            self.device)
        self._generator = None
        self._peeked = None
        if self.on_device:
            move = lambda x: [y.to(self.device) for y in x] if isinstance(x, list) else x.to(self.device)
            self.images = move(self.images)
            self.rays = self.rays.map(move)
            self._generator = torch.Generator(device=self.device)
            return
        next_fn = self._next_train if split == 'train' else self._next_test
        # The first batch is made here, so a bad dataset fails in the constructor.
        self.start_prefetch(lambda: self._prepare(next_fn()))

    def __next__(self):
        if not self.on_device:
            return super().__next__()
        batch, self._peeked = self._peeked or self._next_train(), None
        return batch

    def peek(self):
        if not self.on_device:
            return super().peek()
        self._peeked = self._peeked or self._next_train()
        return self._peeked

    def _hint(self):
        """How to make a synthetic stand-in for this dataset."""
        return 'to make a synthetic stand-in, run `' + _SYNTH_OBJECT.format(raw=self.data_dir) + '`'

    def _prepare(self, batch):
        """Moves a training batch to self.device; test examples (whole images) stay on the CPU."""
        if self.split != 'train' or self.device.type == 'cpu':
            return batch
        if self.device.type == 'cuda':
            # Pinned host memory lets the copy run asynchronously while the GPU trains.
            move = lambda x: x.pin_memory().to(self.device, non_blocking=True)
        else:
            move = lambda x: x.to(self.device)
        return {'pixels': move(batch['pixels']), 'rays': batch['rays'].map(move)}

    @property
    def size(self):
        return self.n_examples

    def _train_init(self, config):
        """Loads the split and flattens pixels and rays for batching."""
        self._load_renderings(config)
        self._generate_rays()
        if config.batching == 'all_images':
            # Flatten the image and pixel dimensions together.
            self.images = self.images.reshape([-1, 3])
            self.rays = self.rays.map(lambda r: r.reshape([-1, r.shape[-1]]))
        elif config.batching == 'single_image':
            self.images = self.images.reshape([-1, self.resolution, 3])
            self.rays = self.rays.map(lambda r: r.reshape([-1, self.resolution, r.shape[-1]]))
        else:
            raise NotImplementedError(f'{config.batching} batching strategy is not implemented.')

    def _test_init(self, config):
        self._load_renderings(config)
        self._generate_rays()
        self.it = 0

    def _ray_indices(self, num_rays):
        """batch_size random indices [B] below num_rays, drawn where the training set lives."""
        generator = self._host_generator if self._generator is None else self._generator
        return torch.randint(num_rays, (self.batch_size,), generator=generator,
                             device=generator.device)

    def _next_train(self):
        """The batch of the next step: batch_size random pixels of all images, or of one random
        image, drawn by generators seeded from step_seed(seed, step) alone."""
        seed = step_seed(self._seed, self._step)
        self._step += 1
        self._host_generator.manual_seed(seed)
        if self._generator is not None:
            self._generator.manual_seed(seed)
        if self.batching == 'all_images':
            ray_indices = self._ray_indices(self.images.shape[0])
            return {'pixels': self.images[ray_indices],
                    'rays': self.rays.map(lambda r: r[ray_indices])}
        # The image is picked on the host: no device value is read.
        image_index = int(torch.randint(self.n_examples, (), generator=self._host_generator))
        image = self.images[image_index]
        ray_indices = self._ray_indices(image.shape[0])
        return {'pixels': image[ray_indices],
                'rays': self.rays.map(lambda r: r[image_index][ray_indices])}

    def _next_test(self):
        """The next test image (or render-path camera), cycling through them."""
        idx = self.it
        self.it = (self.it + 1) % self.n_examples
        if self.render_path:
            return {'rays': self.render_rays.map(lambda r: r[idx])}
        return {'pixels': self.images[idx], 'rays': self.rays.map(lambda r: r[idx])}

    def _generate_rays(self):
        """Sets self.rays, fields [N, H, W, C], through the pixel centres of every camera.

        Reads self.w, self.h, self.focal, self.camtoworlds [N, 3 or 4, 4] (NeRF's OpenGL axes),
        self.near and self.far.
        """
        pix2cam = pix2cam_matrix(self.focal, self.w, self.h)
        self.rays = _gather([
            camera_rays(pix2cam, camtoworld, self.w, self.h, 1., self.near, self.far)
            for camtoworld in torch.as_tensor(self.camtoworlds)
        ], torch.stack)


class Multicam(Dataset):
    """Multi-scale Blender: metadata.json from scripts/convert_blender_data.py, images of mixed sizes."""

    def _hint(self):
        raw = self.data_dir.rstrip('/') + '_blender'
        return ('to make a synthetic stand-in, run `' + _SYNTH_OBJECT.format(raw=raw) + '` then `'
                + _CONVERT.format(raw=raw, out=self.data_dir) + '`')

    def _load_renderings(self, config):
        """Loads metadata.json's images of the split and their cameras into self.meta."""
        if config.render_path:
            raise ValueError('render_path cannot be used for the Multicam dataset.')
        meta_file = os.path.join(self.data_dir, 'metadata.json')
        if not utils.file_exists(meta_file):
            raise FileNotFoundError(f'Multi-scale metadata {meta_file} does not exist; {self._hint()}')
        meta = _load_json(meta_file)
        if self.split not in meta:
            raise ValueError(f'{meta_file} has no {self.split!r} split (it has {sorted(meta)})')
        meta = meta[self.split]
        self.meta = {k: (v if k == 'file_path' else torch.tensor(v)) for k, v in meta.items()}
        self.images = [_composite(_load_image(os.path.join(self.data_dir, fbase)), config.white_bkgd)
                       for fbase in meta['file_path']]
        self.images = [torch.from_numpy(np.ascontiguousarray(image)) for image in self.images]
        self.n_examples = len(self.images)

    def _train_init(self, config):
        """Loads the split; pixels and rays are flattened per image, and across images for
        all_images batching."""
        self._load_renderings(config)
        self._generate_rays()
        if config.batching not in ('all_images', 'single_image'):
            raise NotImplementedError(f'{config.batching} batching strategy is not implemented.')

        def flatten(x):
            x = [y.reshape([-1, y.shape[-1]]) for y in x]
            return torch.cat(x, 0) if config.batching == 'all_images' else x

        self.images = flatten(self.images)
        self.rays = self.rays.map(flatten)

    def _generate_rays(self):
        """Sets self.rays to Rays of per-image lists, fields [H_i, W_i, C].

        Reads self.meta (pix2cam [N, 3, 3], cam2world [N, 4, 4], width, height, lossmult, near,
        far [N]) and self.n_examples.
        """
        meta = self.meta
        self.rays = _gather([
            camera_rays(meta['pix2cam'][i], meta['cam2world'][i], meta['width'][i],
                         meta['height'][i], meta['lossmult'][i], meta['near'][i], meta['far'][i])
            for i in range(self.n_examples)
        ], list)


class Blender(Dataset):
    """Blender synthetic scenes: transforms_{split}.json and RGBA PNGs composited on white."""

    def _load_renderings(self, config):
        """Loads the split's images (halved with factor 2) and camera-to-world matrices."""
        if config.render_path:
            raise ValueError('render_path cannot be used for the blender dataset.')
        if config.factor not in (0, 2):
            raise ValueError(
                f'Blender dataset only supports factor=0 or 2, {config.factor} set.')
        pose_file = os.path.join(self.data_dir, f'transforms_{self.split}.json')
        if not utils.file_exists(pose_file):
            raise FileNotFoundError(f'Pose file {pose_file} does not exist; {self._hint()}')
        meta = _load_json(pose_file)
        images, cams = [], []
        for frame in meta['frames']:
            image = _load_image(os.path.join(self.data_dir, frame['file_path'] + '.png'))
            if config.factor == 2:
                halfres_h, halfres_w = [hw // 2 for hw in image.shape[:2]]
                image = cv2.resize(image, (halfres_w, halfres_h), interpolation=cv2.INTER_AREA)
            if images and image.shape != images[0].shape:
                raise ValueError(f'{frame["file_path"]}.png has shape {image.shape}, unlike the '
                                 f'first image of {pose_file} ({images[0].shape})')
            images.append(image)
            cams.append(np.array(frame['transform_matrix'], dtype=np.float32))
        if not images:
            raise ValueError(f'{pose_file} lists no frames')
        self.images = torch.from_numpy(_composite(np.stack(images, axis=0), config.white_bkgd))
        self.h, self.w = self.images.shape[1:3]
        self.resolution = self.h * self.w
        self.camtoworlds = torch.from_numpy(np.stack(cams, axis=0))
        self.focal = .5 * self.w / np.tan(.5 * float(meta['camera_angle_x']))
        self.n_examples = self.images.shape[0]


class LLFF(Dataset):
    """LLFF forward-facing scenes (images{_factor}/, poses_bounds.npy) in NDC, or spherified."""

    def _hint(self):
        return ('to make a synthetic stand-in, run `python -m data_tools.synth --scene forward '
                f'--out {self.data_dir}`')

    def _load_renderings(self, config):
        """Loads images, rescales and recentres the poses, makes the render path, splits."""
        imgdir_suffix = f'_{config.factor}' if config.factor > 0 else ''
        factor = config.factor if config.factor > 0 else 1
        imgdir = os.path.join(self.data_dir, 'images' + imgdir_suffix)
        if not utils.isdir(imgdir):
            raise FileNotFoundError(f'Image folder {imgdir} does not exist; {self._hint()}')
        imgfiles = _llff_image_files(imgdir)
        images = np.stack([_load_image(f)[..., :3] for f in imgfiles], axis=0)

        poses, bds = llff.load_poses_bounds(os.path.join(self.data_dir, 'poses_bounds.npy'))
        if poses.shape[0] != images.shape[0]:
            raise RuntimeError(f'Mismatch between imgs {images.shape[0]} (in {imgdir}) and poses '
                               f'{poses.shape[0]} (in {os.path.join(self.data_dir, "poses_bounds.npy")})')
        # The focal length of the downsampled images; their size is read from the images.
        focal = poses[0, 2, 4] / factor
        # NeRF's camera axes [right, up, backwards].
        poses = torch.from_numpy(llff.llff_to_opengl(poses))
        bds = torch.from_numpy(bds)

        # Rescale so that the nearest bound sits at 1 / .75.
        scale = 1. / (bds.min() * .75)
        poses[:, :3, 3] *= scale
        bds = bds * scale
        poses = self._recenter_poses(poses)

        self.spherify = config.spherify
        if config.spherify:
            poses = self._generate_spherical_poses(poses, bds)
        elif self.split == 'test':
            self._generate_spiral_poses(poses, bds)

        i_test = np.arange(images.shape[0])[::config.llffhold]
        i_train = np.setdiff1d(np.arange(images.shape[0]), i_test)
        indices = i_train if self.split == 'train' else i_test
        if len(indices) == 0:
            raise ValueError(f'The {self.split} split of {images.shape[0]} images with llffhold '
                             f'{config.llffhold} is empty')
        self.images = torch.from_numpy(images[indices])
        self.camtoworlds = poses[indices].float()
        self.focal = float(focal)
        self.h, self.w = images.shape[1:3]
        self.resolution = self.h * self.w
        if config.render_path and self.split == 'test':
            self.n_examples = self.render_poses.shape[0]
        else:
            self.n_examples = self.images.shape[0]

    def _generate_rays(self):
        """Sets self.rays (and self.render_rays when rendering a path): NDC rays whose viewdirs
        are the world-space directions, or world rays when spherified."""
        self.rays = self._poses_to_rays(self.camtoworlds)
        if self.render_path and self.split == 'test':
            self.render_rays = self._poses_to_rays(self.render_poses)

    def _poses_to_rays(self, camtoworlds):
        """Rays [N, H, W, C] of camera-to-world matrices [N, 3, 4]."""
        if self.spherify:
            pix2cam = pix2cam_matrix(self.focal, self.w, self.h)
            return _gather([camera_rays(pix2cam, c2w, self.w, self.h, 1., self.near, self.far)
                            for c2w in camtoworlds], torch.stack)
        return _gather([self._ndc_rays(c2w) for c2w in camtoworlds], torch.stack)

    def _ndc_rays(self, camtoworld):
        """NDC rays [H, W, C] of one camera; radii from its neighbours' NDC origins in x and y."""
        origins, directions = _world_rays(
            pix2cam_matrix(self.focal, self.w, self.h), camtoworld, self.w, self.h)
        ndc_origins, ndc_directions = convert_to_ndc(origins, directions, self.focal, self.w, self.h)
        dx = _row_distance(ndc_origins)
        dy = _row_distance(ndc_origins.transpose(0, 1)).transpose(0, 1)
        radii = _radii(0.5 * (dx + dy))
        return _image_rays(ndc_origins, ndc_directions, directions, radii, 1., self.near, self.far)

    def _recenter_poses(self, poses):
        """Poses [N, 3, 4] in the frame of their average pose."""
        bottom = torch.tensor([[0., 0., 0., 1.]], dtype=poses.dtype)
        c2w = torch.cat([self._poses_avg(poses), bottom], 0)
        poses = torch.cat([poses, bottom.expand(poses.shape[0], 1, 4)], 1)
        return (torch.linalg.inv(c2w) @ poses)[:, :3, :4]

    def _poses_avg(self, poses):
        """The average pose [3, 4]: mean centre, summed backward and up axes."""
        center = poses[:, :3, 3].mean(0)
        vec2 = cameras.normalize(poses[:, :3, 2].sum(0))
        up = poses[:, :3, 1].sum(0)
        return cameras.viewmatrix(vec2, up, center)

    def _generate_spiral_poses(self, poses, bds):
        """Sets self.render_poses [120, 3, 4]: two turns of a spiral around the average pose."""
        c2w = self._poses_avg(poses)
        up = cameras.normalize(poses[:, :3, 1].sum(0))
        # A focus depth between the near bound and far beyond the far bound.
        close_depth, inf_depth = bds.min() * .9, bds.max() * 5.
        dt = .75
        focal = 1. / ((1. - dt) / close_depth + dt / inf_depth)
        # Spiral radii: the 90th percentile of the camera offsets along each axis.
        rads = torch.quantile(poses[:, :3, 3].abs(), .9, dim=0)
        rads = torch.cat([rads, rads.new_ones(1)])
        n_views, n_rots, zrate = 120, 2, .5
        theta = torch.linspace(0., 2. * math.pi * n_rots, n_views + 1, dtype=poses.dtype)[:-1]
        offsets = torch.stack(
            [theta.cos(), -theta.sin(), -(theta * zrate).sin(), torch.ones_like(theta)], -1)
        centers = (offsets * rads) @ c2w.T
        focus = c2w @ torch.tensor([0., 0., -focal, 1.], dtype=poses.dtype)
        self.render_poses = cameras.viewmatrix(
            cameras.normalize(centers - focus), up, centers).float()

    def _generate_spherical_poses(self, poses, bds):
        """Poses [N, 3, 4] centred on the point nearest to all optical axes and scaled to a unit
        mean radius; on the test split sets self.render_poses [120, 3, 4], a circle around it."""
        del bds  # Rescaled in the original, but read no further.
        rays_d = poses[:, :3, 2:3]
        rays_o = poses[:, :3, 3:4]
        # The point with the least summed squared distance to the cameras' z axes.
        a_i = torch.eye(3, dtype=poses.dtype) - rays_d * rays_d.transpose(1, 2)
        b_i = -a_i @ rays_o
        center = -torch.linalg.inv((a_i.transpose(1, 2) @ a_i).mean(0)) @ b_i.mean(0)[:, 0]
        up = (poses[:, :3, 3] - center).mean(0)
        vec0 = cameras.normalize(up)
        vec1 = cameras.normalize(
            torch.linalg.cross(torch.tensor([.1, .2, .3], dtype=poses.dtype), vec0, dim=-1))
        vec2 = cameras.normalize(torch.linalg.cross(vec0, vec1, dim=-1))
        bottom = torch.tensor([[0., 0., 0., 1.]], dtype=poses.dtype)
        c2w = torch.cat([torch.stack([vec1, vec2, vec0, center], 1), bottom], 0)
        poses_reset = (torch.linalg.inv(c2w) @ torch.cat(
            [poses, bottom.expand(poses.shape[0], 1, 4)], 1))[:, :3, :4]
        rad = poses_reset[:, :3, 3].square().sum(-1).mean().sqrt()
        sc = 1. / rad
        poses_reset[:, :3, 3] *= sc
        rad = rad * sc

        zh = poses_reset[:, 2, 3].mean()
        radcircle = (rad**2 - zh**2).sqrt()
        th = torch.linspace(0., 2. * math.pi, 120, dtype=poses.dtype)
        camorigin = torch.stack([radcircle * th.cos(), radcircle * th.sin(), zh.expand_as(th)], -1)
        if self.split == 'test':
            # The original's up = [0, 0, -1] with its cross products in the other order.
            up = torch.tensor([0., 0., 1.], dtype=poses.dtype)
            self.render_poses = cameras.viewmatrix(camorigin, up, camorigin).float()
        return poses_reset


dataset_dict = {
    'blender': Blender,
    'llff': LLFF,
    'multicam': Multicam,
}
