# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Renders a trained run along a camera path to frames and mp4 videos (the fork's render_video.py).

    python -m depth_mipnerf.render_video --gin_bindings="Config.data_dir='data/lego'" \
        --gin_bindings="Config.checkpoint_dir='runs/lego'" [--n_frames 120] [--fps 30]

Blender scenes: an orbit around the z axis at the mean distance and elevation of the training
cameras, looking at the origin. ScanNet scenes: the cameras of transforms_video.json (the fork's
'cam' split) if present, else a loop through the training cameras (positions interpolated, rotations
blended and re-orthonormalised). Image size and focal are the test split's. Writes
<out_dir>/color_<i>.png, depth_<i>.png, video_color.mp4 and video_depth.mp4 (out_dir defaults to
<checkpoint_dir>/video). GLO codes are zero, as at evaluation.
"""

import argparse
import json
import os
import sys

import gin
import imageio.v2 as imageio
import numpy as np
import torch
import tqdm

from common import cameras, checkpoints
from common import device as device_utils
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import datasets
from depth_mipnerf.eval import to8b
from depth_mipnerf.models import nerf_system


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gin_configs', action='append', default=[])
    parser.add_argument('--gin_bindings', action='append', default=[])
    parser.add_argument('--out_dir', default=None)
    parser.add_argument('--n_frames', type=int, default=120)
    parser.add_argument('--fps', type=int, default=30)
    parser.add_argument('--device', default='cuda')
    return parser.parse_args(argv)


def orbit_path(camtoworlds, n_frames):
    """[n_frames, 4, 4] OpenGL orbit at the training cameras' mean radius and elevation, looking at the origin, z up."""
    centres = camtoworlds[:, :3, 3]
    radius = np.linalg.norm(centres, axis=-1).mean()
    elevation = np.arcsin(np.clip(centres[:, 2] / np.linalg.norm(centres, axis=-1), -1, 1)).mean()
    theta = np.linspace(0, 2 * np.pi, n_frames, endpoint=False)
    positions = torch.from_numpy(radius * np.stack([np.cos(theta) * np.cos(elevation), np.sin(theta) * np.cos(elevation),
                                                    np.full_like(theta, np.sin(elevation))], -1))
    # Looking along -position (the backward axis is position itself) gives OpenGL axes.
    c2w = cameras.viewmatrix(positions, positions.new_tensor([0., 0., 1.]), positions).numpy()
    return np.concatenate([c2w, np.broadcast_to([0., 0., 0., 1.], (n_frames, 1, 4))], 1)


def loop_path(camtoworlds, n_frames):
    """[n_frames, 4, 4] closed loop through the given cameras (linear blends, rotations re-orthonormalised)."""
    s = np.linspace(0, len(camtoworlds), n_frames, endpoint=False)
    i0 = np.floor(s).astype(int)
    a = (s - i0)[:, None, None]
    blend = (1 - a) * camtoworlds[i0 % len(camtoworlds)] + a * camtoworlds[(i0 + 1) % len(camtoworlds)]
    u, _, vt = np.linalg.svd(blend[:, :3, :3])
    blend[:, :3, :3] = u @ vt
    return blend


def camera_path(config, train_set, n_frames):
    """The video's camera-to-world matrices [n, 4, 4]."""
    if config.dataset_name == 'scannet':
        video_json = os.path.join(config.data_dir, 'transforms_video.json')
        if os.path.isfile(video_json):
            with open(video_json) as f:
                return np.array([fr['transform_matrix'] for fr in json.load(f)['frames']], np.float32)
        return loop_path(train_set.camtoworlds, n_frames)
    return orbit_path(train_set.camtoworlds, n_frames)


def render_video(checkpoint_dir, data_dir, out_dir=None, n_frames=120, fps=30, device='cpu', gin_bindings=()):
    """Renders the path (the run's config.gin + gin_bindings); returns the frame file names written."""
    device = device_utils.pick_device(device)
    config, sections, model, _ = nerf_system.load_run(checkpoint_dir, device=device,
                                                      gin_bindings=[*gin_bindings, f'Config.data_dir = {data_dir!r}'])
    train_set = nerf_system.build_dataset(config, sections, 'train')
    test_set = nerf_system.build_dataset(config, sections, 'test')
    out_dir = out_dir or os.path.join(checkpoint_dir, 'video')
    os.makedirs(out_dir, exist_ok=True)
    path = camera_path(config, train_set, n_frames)
    zeros = np.zeros((len(path), test_set.h, test_set.w, 1), np.float32)
    rays = datasets.generate_rays(path, test_set.h, test_set.w, test_set.focal, test_set.near, test_set.far,
                                  zeros, np.zeros(zeros.shape[:-1] + (3,), np.float32), zeros)
    colors, depths, names = [], [], []
    for i in tqdm.trange(len(path), desc='render', unit='frame'):
        out = nerf_system.render_image(model, datasets.namedtuple_map(lambda r: r[i].to(device), rays),
                                       sections['val'].chunk_size, False, sections['val'].white_bkgd)
        colors.append(to8b(out['rgb_fine'].cpu().numpy()))
        depths.append(out['depth'].cpu().numpy())
        imageio.imwrite(os.path.join(out_dir, f'color_{i:03d}.png'), colors[-1])
        names.append(f'color_{i:03d}.png')
    d_max = max(max(float(d.max()) for d in depths), 1e-6)
    depth_frames = [to8b(d / d_max) for d in depths]
    for i, frame in enumerate(depth_frames):
        imageio.imwrite(os.path.join(out_dir, f'depth_{i:03d}.png'), frame)
    # libx264 wants even sides: imageio pads with macro_block_size 2.
    imageio.mimwrite(os.path.join(out_dir, 'video_color.mp4'), colors, fps=fps, macro_block_size=2)
    imageio.mimwrite(os.path.join(out_dir, 'video_depth.mp4'), depth_frames, fps=fps, macro_block_size=2)
    return names


def main(argv=None):
    args = parse_args(argv)
    config, _ = config_lib.parse(args.gin_configs, args.gin_bindings)
    gin.clear_config()
    try:
        names = render_video(config.checkpoint_dir, config.data_dir, args.out_dir, args.n_frames, args.fps,
                             args.device, args.gin_bindings)
    except (FileNotFoundError, ValueError, checkpoints.UnreadableCheckpointsError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    print(f'{len(names)} frames and 2 videos in {args.out_dir or os.path.join(config.checkpoint_dir, "video")}')


if __name__ == '__main__':
    main()
