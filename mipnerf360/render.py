# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Render script (multinerf's render.py): `python -m mipnerf360.render --gin_configs=...
--gin_bindings="Config.render_path=True" --gin_bindings=...`.

Renders the camera path of the scene (an ellipse around a 360 scene, a spiral for forward-facing
ones, Config.render_path_frames frames, or a spline or pose file as configured) with the newest
checkpoint, writes each frame's color, normals, distance and acc images to
render_dir/path_renders_step_<step>/ (render_dir defaults to checkpoint_dir/render), then one mp4
per output to render_dir. Frames already written are skipped, so a render can resume, and
Config.render_num_jobs processes can share the path (Config.render_job_id picks each one's frames).
"""

import concurrent.futures
import functools
import glob
import os
import sys
import time

import gin
import imageio.v2 as imageio
import numpy as np
import torch
import tqdm
from absl import app

from common import checkpoints
from common import device as device_utils
from mipnerf360.internal import configs, datasets, models, train_utils, utils, vis

configs.define_common_flags()

# multinerf's fixed key: the initial parameters, which the checkpoint then replaces.
SEED = 20200823
VIDEO_KEYS = ['color', 'normals', 'acc', 'distance_mean', 'distance_median']
# libx264's yuv420p chroma planes are half size: frames need even sides (imageio pads them).
MACRO_BLOCK_SIZE = 2


def frame_name(key, idx, num_frames):
    """File name of frame idx of output key: color_000.png, acc_000.tiff, ... (multinerf's)."""
    zpad = max(3, len(str(num_frames - 1)))
    ext = 'png' if key in ['color', 'normals'] else 'tiff'
    return f'{key}_{str(idx).zfill(zpad)}.{ext}'


def video_prefix(config, out_name):
    """<scene>_<experiment>_<out_name>, from the last two folders of checkpoint_dir as multinerf."""
    names = [n for n in config.checkpoint_dir.replace(os.sep, '/').split('/') if n]
    return '_'.join(names[-2:][::-1] + [out_name])


def save_frame(rendering, idx, num_frames, out_dir):
    """Writes one frame's color, normals, distance_mean, distance_median and acc images."""
    path_fn = lambda key: os.path.join(out_dir, frame_name(key, idx, num_frames))
    utils.save_img_u8(rendering['rgb'], path_fn('color'))
    if rendering.get('normals') is not None:
        utils.save_img_u8(rendering['normals'] / 2. + 0.5, path_fn('normals'))
    for key in ['distance_mean', 'distance_median', 'acc']:
        utils.save_img_f32(rendering[key], path_fn(key))


def video_frame(key, img, distance_limits, config):
    """An 8-bit RGB video frame [H, W, 3] of a saved image of output key."""
    img = torch.from_numpy(img)
    if key in ['color', 'normals']:
        img = img / 255.
    elif key.startswith('distance'):
        # The turbo colormap over render_dist_curve_fn(distance), in the range of the first frame.
        lo, hi = distance_limits
        img = vis.visualize_cmap(img, torch.ones_like(img), vis.turbo, lo=lo, hi=hi,
                                 curve_fn=config.render_dist_curve_fn, matte_background=False)
    else:
        img = img[..., None].expand(*img.shape, 3)
    img = torch.clamp(torch.nan_to_num(img), 0., 1.)
    return (img * 255.).to(torch.uint8).numpy()


def create_videos(config, base_dir, out_dir, out_name, num_frames):
    """Writes base_dir/<prefix>_<key>.mp4 for each output whose frames are in out_dir.

    Returns:
      {key: video path}.
    """
    prefix = video_prefix(config, out_name)
    utils.makedirs(base_dir)
    # The depth videos share one range: the render_dist_percentile trimmed range of frame 0.
    depth_frame = utils.load_img(os.path.join(out_dir, frame_name('distance_mean', 0, num_frames)))
    p = config.render_dist_percentile
    distance_limits = [float(x) for x in np.percentile(depth_frame, [p, 100 - p])]
    print(f'Video shape is {depth_frame.shape[:2]}')

    videos = {}
    for key in VIDEO_KEYS:
        if not utils.file_exists(os.path.join(out_dir, frame_name(key, 0, num_frames))):
            print(f'Images missing for tag {key}')
            continue
        video_file = os.path.join(base_dir, f'{prefix}_{key}.mp4')
        print(f'Making video {video_file}...')
        with imageio.get_writer(
                video_file, fps=config.render_video_fps, codec='libx264', quality=None,
                pixelformat='yuv420p', ffmpeg_params=['-crf', str(config.render_video_crf)],
                macro_block_size=MACRO_BLOCK_SIZE, ffmpeg_log_level='error') as writer:
            for idx in range(num_frames):
                img_file = os.path.join(out_dir, frame_name(key, idx, num_frames))
                if not utils.file_exists(img_file):
                    raise FileNotFoundError(f'Frame {img_file} of video {video_file} is missing')
                writer.append_data(
                    video_frame(key, utils.load_img(img_file), distance_limits, config))
        videos[key] = video_file
    return videos


def missing_checkpoint_message(config):
    """The error of a run directory without a (readable) checkpoint."""
    return (f'No readable checkpoint (checkpoint_*.pt) in Config.checkpoint_dir '
            f'{config.checkpoint_dir}; train first with `python -m mipnerf360.train`')


def render_video(config, device=None):
    """Renders config's camera path with the newest checkpoint and makes the videos.

    Args:
      config: the Config; render_path must be True.
      device: where to render (default: CUDA when available, else the CPU).

    Returns:
      {key: video path} ({} when other render jobs still have frames to write).
    """
    if not config.render_path:
        raise ValueError('render.py renders the camera path: bind Config.render_path=True '
                         '(--gin_bindings="Config.render_path=True")')
    if config.checkpoint_dir is None:
        raise ValueError('Config.checkpoint_dir must name the training run to render')
    if checkpoints.latest_checkpoint(config.checkpoint_dir) is None:
        raise FileNotFoundError(missing_checkpoint_message(config))  # Before loading anything.
    device = torch.device(device) if device is not None else device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    # The test split's dataset holds the render path's cameras (dataset.camtoworlds).
    dataset = datasets.load_dataset('test', config.data_dir, config)
    dataset.close()  # Frames are cast with generate_ray_batch; the prefetch thread is not needed.
    _, state, render_eval_fn, _, _ = train_utils.setup_model(
        config, torch.Generator().manual_seed(SEED), device=device)
    checkpoint_path = train_utils.restore_checkpoint(config, state, device=device)
    if checkpoint_path is None:
        raise FileNotFoundError(missing_checkpoint_message(config))
    step = state.step
    print(f'Rendering checkpoint {checkpoint_path} at step {step}.')

    out_name = f'path_renders_step_{step}'
    base_dir = config.render_dir or os.path.join(config.checkpoint_dir, 'render')
    out_dir = os.path.join(base_dir, out_name)
    utils.makedirs(out_dir)
    num_frames = dataset.size
    path_fn = lambda key, idx: os.path.join(out_dir, frame_name(key, idx, num_frames))
    # The path is rendered at the end of training, as multinerf does.
    render_fn = functools.partial(render_eval_fn, 1.)

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    futures = []
    # Without render_save_async each frame is written before the next one is rendered.
    save_fn = executor.submit if config.render_save_async else lambda fn, *args: fn(*args)
    frames = range(config.render_job_id, num_frames, config.render_num_jobs)
    try:
        for idx in tqdm.tqdm(frames, desc='render', unit='frame', dynamic_ncols=True):
            # This frame and this job's next one both exist: an earlier run got past it.
            next_idx = idx + config.render_num_jobs
            if (utils.file_exists(path_fn('color', idx)) and
                    utils.file_exists(path_fn('color', next_idx))):
                continue
            rays = dataset.generate_ray_batch(idx).rays.map(lambda x: x.to(device))
            rendering = models.render_image(render_fn, rays, None, config, verbose=False)
            rendering = {k: v.cpu() for k, v in rendering.items() if not k.startswith('ray_')}
            futures.append(save_fn(save_frame, rendering, idx, num_frames, out_dir))
    finally:
        executor.shutdown(wait=True)
    for future in futures:
        if future is not None:
            future.result()  # Raises here what a writer thread raised.

    num_files = len(glob.glob(os.path.join(out_dir, 'acc_*.tiff')))
    if num_files != num_frames:
        print(f'{num_files} of {num_frames} frames are in {out_dir}; the videos are made once '
              'every render job has written its frames.')
        return {}
    print(f'All files found, creating videos (job {config.render_job_id}).')
    start = time.time()
    videos = create_videos(config, base_dir, out_dir, out_name, num_frames)
    print(f'Videos made in {time.time() - start:.1f}s:')
    for video in videos.values():
        print(f'  {video}')
    return videos


def main(unused_argv):
    config = configs.load_config(save_config=False)
    try:
        render_video(config)
    except FileNotFoundError as error:  # no checkpoint or no data: say what is missing, no traceback
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    except checkpoints.UnreadableCheckpointsError as error:
        print(f"error: {train_utils.unreadable_checkpoints_message(error, 'render')}", file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    with gin.config_scope('eval'):  # The scope of eval.py, as multinerf.
        app.run(main)
