# Derived from hjxwhy/mipnerf_pl (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Renders a camera path to videos (mipnerf_pl's render_video.py).

    python -m mipnerf.render_video --ckpt RUN_OR_FILE --out_dir D --scale 4 [--data_path SCENE]
        [--n_frames 120] [--chunk 8192]
    python -m mipnerf.render_video --out_dir D --gen_video_only --render_images_dir I

Blender-like scenes (blender and multicam loaders) follow mipnerf_pl's spherical orbit
(create_spheric_poses(4)): n_frames cameras at radius 4, 36 degrees (pi/5) above the equator, looking
at the origin, azimuths [0, 360) in the direction of NeRF's pose_spherical; the image size and focal
are those of --data_path's full-resolution test images, else --base_size and --camera_angle_x
(the Blender defaults, 800x800). With --scale N each frame is also rendered at 1/2, ..., 1/2^(N-1)
of that size. LLFF scenes (which need --data_path) follow the original's spiral (or, spherified,
its circle). Frames go to D/<1,2,4,...>/color_<i>.png, distance_<i>.tiff and acc_<i>.tiff, and
each folder gets video_color.mp4 and video_depth.mp4 (the distance in the turbo colormap), played
forward then backward at 40 fps as mipnerf_pl's generate_video does.
--gen_video_only makes the videos from the frames already in --render_images_dir.
"""

import glob
import json
import math
import os
import sys

import cv2
import imageio.v2 as imageio
import numpy as np
import torch
import tqdm
from absl import app, flags
from PIL import Image

from common import cameras
from common import device as device_utils
from mipnerf import eval as mip_eval
from mipnerf import train
from mipnerf.internal import datasets, models, utils

FLAGS = flags.FLAGS
train.define_flag('string', 'ckpt', None, 'A train_dir, a checkpoint file or a converted state dict.')
train.define_flag('string', 'out_dir', None, 'Where frames and videos go.')
train.define_flag('string', 'data_path', None, 'The scene folder: image size and focal, LLFF path.')
train.define_flag('integer', 'scale', 1, 'Render at 1, 1/2, ..., 1/2^(scale-1) resolution.')
train.define_flag('integer', 'n_frames', 120, 'Frames of the spherical orbit.')
train.define_flag('integer', 'fps', 40, 'Frames per second of the videos.')
train.define_flag('list', 'base_size', ['800', '800'], 'Width,height without --data_path.')
train.define_flag('float', 'camera_angle_x', 0.6911112070083618, 'Field of view without --data_path.')
train.define_flag('bool', 'gen_video_only', False, 'Only make videos of rendered frames.')
train.define_flag('string', 'render_images_dir', None, 'Frames folder for --gen_video_only.')

# mipnerf_pl's Blender orbit: the camera distance and elevation (its phi = -pi/5, a view 36 degrees down).
ORBIT_RADIUS = 4.
ORBIT_ELEVATION_DEG = 36.
# libx264's yuv420p chroma planes are half size: imageio pads frames to even sides.
MACRO_BLOCK_SIZE = 2


def pose_spherical(theta_deg, elevation_deg, radius):
    """Camera-to-world [3, 4] (OpenGL axes, z up world) on a sphere, looking at the origin.

    theta_deg: azimuth (0 on +y, growing towards +x as NeRF's pose_spherical turns); elevation_deg:
    angle above the xy plane; radius: distance to the origin.
    """
    theta, phi = math.radians(theta_deg), math.radians(elevation_deg)
    position = radius * torch.tensor(
        [math.cos(phi) * math.sin(theta), math.cos(phi) * math.cos(theta), math.sin(phi)],
        dtype=torch.float64)
    # viewmatrix takes the backward direction: from the origin to the camera.
    return cameras.viewmatrix(position, torch.tensor([0., 0., 1.], dtype=torch.float64), position)


def spherical_path(n_frames):
    """Camera-to-worlds [n_frames, 3, 4] of mipnerf_pl's orbit: one turn of azimuths in [0, 360)."""
    thetas = np.linspace(0., 360., n_frames + 1)[:-1]
    return torch.stack([pose_spherical(t, ORBIT_ELEVATION_DEG, ORBIT_RADIUS) for t in thetas])


def blender_camera(data_path, base_size, camera_angle_x):
    """(width, height, focal) of data_path's full-resolution test images, else of the flags."""
    if not data_path:
        width, height = (int(v) for v in base_size)
        return width, height, .5 * width / math.tan(.5 * camera_angle_x)
    meta_file = os.path.join(data_path, 'metadata.json')
    if os.path.isfile(meta_file):  # Multi-scale Blender: label 0 is the full resolution.
        with utils.open_file(meta_file) as f:
            test = json.load(f)['test']
        i = test['label'].index(0)
        return int(test['width'][i]), int(test['height'][i]), float(test['focal'][i])
    pose_file = os.path.join(data_path, 'transforms_test.json')
    if not os.path.isfile(pose_file):
        raise FileNotFoundError(f'Neither {meta_file} nor {pose_file} exists')
    with utils.open_file(pose_file) as f:
        meta = json.load(f)
    image_file = os.path.join(data_path, meta['frames'][0]['file_path'] + '.png')
    if not os.path.isfile(image_file):
        raise FileNotFoundError(f'Image {image_file} does not exist')
    with Image.open(image_file) as image:
        width, height = image.size
    return width, height, .5 * width / math.tan(.5 * float(meta['camera_angle_x']))


def orbit_rays(camtoworlds, width, height, focal, level, config):
    """Rays [H, W, C] of each orbit camera at 1/2^level of width x height: a generator."""
    w, h, f = width // 2**level, height // 2**level, focal / 2**level
    pix2cam = datasets.pix2cam_matrix(f, w, h)
    for camtoworld in camtoworlds:
        yield datasets.camera_rays(pix2cam, camtoworld, w, h, 1., config.near, config.far)


def llff_rays(data_path, config):
    """Rays [H, W, C] of the LLFF render path (the original's spiral or circle): a list."""
    config.render_path = True
    dataset = datasets.get_dataset('test', data_path, config)
    dataset.close()
    return [dataset.render_rays.map(lambda r: r[i]) for i in range(dataset.n_examples)]


def save_frame(folder, idx, rgb, distance, acc):
    """The original's color/distance/acc images of one frame."""
    utils.save_img_uint8(rgb, os.path.join(folder, f'color_{idx:03d}.png'))
    utils.save_img_float32(distance, os.path.join(folder, f'distance_{idx:03d}.tiff'))
    utils.save_img_float32(acc, os.path.join(folder, f'acc_{idx:03d}.tiff'))


def depth_frames(distances):
    """8-bit RGB turbo-colormap frames [H, W, 3] of distance maps, sharing one range."""
    lo, hi = np.percentile(np.stack(distances), [1, 99])
    # max(): a constant distance map would divide by zero.
    scaled = [np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1) for d in distances]
    return [cv2.cvtColor(cv2.applyColorMap((s * 255).astype(np.uint8), cv2.COLORMAP_TURBO),
                         cv2.COLOR_BGR2RGB) for s in scaled]


def write_video(path, frames, fps):
    """Writes 8-bit RGB frames [H, W, 3] as an H.264 mp4."""
    with imageio.get_writer(path, fps=fps, codec='libx264', quality=8, pixelformat='yuv420p',
                            macro_block_size=MACRO_BLOCK_SIZE, ffmpeg_log_level='error') as writer:
        for frame in frames:
            writer.append_data(frame)


def ping_pong(frames):
    """The frames, then the same in reverse (mipnerf_pl's videos go there and back)."""
    return list(frames) + list(frames)[::-1]


def generate_video(image_dir, fps=40):
    """Makes video_color.mp4 and video_depth.mp4 in every folder of image_dir (or image_dir itself)
    holding color_*.png and distance_*.tiff frames. Returns the video paths."""
    folders = [image_dir] + sorted(glob.glob(os.path.join(image_dir, '*', '')))
    videos = []
    for folder in folders:
        colors = sorted(glob.glob(os.path.join(folder, 'color_*.png')))
        if not colors:
            continue
        path = os.path.join(folder, 'video_color.mp4')
        write_video(path, ping_pong([imageio.imread(f)[..., :3] for f in colors]), fps)
        videos.append(path)
        distance_files = sorted(glob.glob(os.path.join(folder, 'distance_*.tiff')))
        if distance_files:
            path = os.path.join(folder, 'video_depth.mp4')
            write_video(path, ping_pong(depth_frames([imageio.imread(f) for f in distance_files])), fps)
            videos.append(path)
    if not videos:
        raise FileNotFoundError(f'No color_*.png frames in {image_dir} or its folders')
    for video in videos:
        print(f'video: {video}')
    return videos


def render_video(ckpt, out_dir, scale=1, data_path=None, n_frames=120, fps=40,
                 base_size=(800, 800), camera_angle_x=0.6911112070083618, gin_files=(),
                 gin_params=(), chunk=8192, device=None):
    """Renders the camera path with checkpoint ckpt into out_dir and makes the videos.

    Returns:
      The video paths (color and depth per resolution).
    """
    config = mip_eval.load_config(ckpt, gin_files, gin_params)
    device = torch.device(device) if device is not None else device_utils.pick_device()
    model, step, path = mip_eval.load_model(ckpt, config, device)
    print(f'Rendering {path} (step {step}).')
    render_fn = train.render_eval_fn(model, config)
    if config.dataset_loader == 'llff':
        if not data_path:
            raise app.UsageError('LLFF scenes render their own path: name --data_path')
        paths = {0: llff_rays(data_path, config)}
    else:
        width, height, focal = blender_camera(data_path, base_size, camera_angle_x)
        camtoworlds = spherical_path(n_frames)
        paths = {level: orbit_rays(camtoworlds, width, height, focal, level, config)
                 for level in range(scale)}
    for level, frames in paths.items():
        folder = os.path.join(out_dir, str(2**level))
        utils.makedirs(folder)
        for idx, rays in enumerate(tqdm.tqdm(frames, desc=f'render 1/{2**level}', unit='frame')):
            rgb, distance, acc = models.render_image(
                render_fn, rays.map(lambda r: r.to(device)), None, chunk)
            save_frame(folder, idx, rgb, distance, acc)
    return generate_video(out_dir, fps)


def main(unused_argv):
    if not FLAGS.out_dir and not FLAGS.gen_video_only:
        raise app.UsageError('name the output folder: --out_dir')
    try:
        if FLAGS.gen_video_only:
            if not FLAGS.render_images_dir:
                raise app.UsageError('--gen_video_only makes videos of --render_images_dir')
            generate_video(FLAGS.render_images_dir, FLAGS.fps)
            return
        ckpt = FLAGS.ckpt or FLAGS.train_dir
        if not ckpt:
            raise app.UsageError('name the checkpoint: --ckpt')
        render_video(ckpt, FLAGS.out_dir, FLAGS.scale, FLAGS.data_path or FLAGS.data_dir,
                     FLAGS.n_frames, FLAGS.fps, FLAGS.base_size, FLAGS.camera_angle_x,
                     FLAGS.gin_file, FLAGS.gin_param, FLAGS.chunk)
    # No checkpoint or no data: say what is missing; an unreadable checkpoint or a malformed
    # config.gin: name it.
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    app.run(main)
