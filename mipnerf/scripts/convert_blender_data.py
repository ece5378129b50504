# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified by the nerf-ports authors.
"""Converts Blender scenes to mip-NeRF's multi-scale dataset (the `multicam` loader's layout).

    python -m mipnerf.scripts.convert_blender_data --blender_dir IN --out_dir OUT \
        [--object_name lego] [--n_down 4]

(`--blenderdir` and `--outdir`, the original's flag names, work too.) Every scene folder of IN
(one holding transforms_{train,val,test}.json) is written to OUT/<scene>; --object_name converts
only IN/<object_name>; when IN is itself a scene folder it is written to OUT. Each image i of a
split becomes n_down images images_<split>/<i:03d>_d<j>.png, image j box-filtered to 1/2^j of the
full size, with focal/2^j, label j, loss multiplier 4^j, near 2 and far 6, all listed in one
metadata.json. Images keep their alpha; the loader composites them on white.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

SPLITS = ('train', 'val', 'test')
SYNTH = 'python -m data_tools.synth --scene object360 --res 128x128 --out DIR'


def load_renderings(data_dir, split):
    """{'images' [N, H, W, C] float32 in [0, 1], 'camtoworlds' [N, 4, 4], 'focal'} of a split."""
    pose_file = os.path.join(data_dir, f'transforms_{split}.json')
    if not os.path.isfile(pose_file):
        raise FileNotFoundError(f'{pose_file} does not exist; a Blender scene folder holds '
                                f'transforms_{{train,val,test}}.json (`{SYNTH}` makes one)')
    with open(pose_file, 'r') as fp:
        meta = json.load(fp)
    images, cams = [], []
    for frame in meta['frames']:
        fname = os.path.join(data_dir, frame['file_path'] + '.png')
        if not os.path.isfile(fname):
            raise FileNotFoundError(f'Image {fname} named by {pose_file} does not exist')
        with open(fname, 'rb') as imgin:
            images.append(np.array(Image.open(imgin), dtype=np.float32) / 255.)
        cams.append(frame['transform_matrix'])
    images = np.stack(images, axis=0)
    w = images.shape[2]
    focal = .5 * w / np.tan(.5 * float(meta['camera_angle_x']))
    return {'images': images, 'camtoworlds': np.stack(cams, axis=0), 'focal': focal}


def down2(img):
    """Halves an image with a 2x2 box filter: img [H, W, C] -> [H // 2, W // 2, C]."""
    sh = img.shape
    blocks = img.reshape(sh[0] // 2, 2, sh[1] // 2, 2, -1)
    top_left, top_right = blocks[:, 0, :, 0], blocks[:, 0, :, 1]
    bottom_left, bottom_right = blocks[:, 1, :, 0], blocks[:, 1, :, 1]
    # Summed in the order of the original's np.mean, so that the truncation to 8 bits that
    # follows gives the original's bytes (numpy pairs the terms for one channel).
    if blocks.shape[-1] == 1:
        total = (top_left + top_right) + (bottom_left + bottom_right)
    else:
        total = ((top_left + top_right) + bottom_left) + bottom_right
    return total / 4


def _pix2cam(focals, widths, heights):
    """Inverse intrinsics [N, 3, 3] into NeRF's camera axes (y up, z backward), as nested lists."""
    fx = fy = np.array(focals)
    cx, cy = np.array(widths) * .5, np.array(heights) * .5
    arr0, arr1 = np.zeros_like(cx), np.ones_like(cx)
    k_inv = np.array([
        [arr1 / fx, arr0, -cx / fx],
        [arr0, -arr1 / fy, cy / fy],
        [arr0, arr0, -arr1],
    ])
    return np.moveaxis(k_inv, -1, 0).tolist()


def convert_to_nerfdata(basedir, newdir, n_down):
    """Writes the multi-scale version of Blender scene basedir into newdir."""
    bigmeta = {}
    for split in SPLITS:
        data = load_renderings(basedir, split)
        height, width = data['images'].shape[1:3]
        if height % 2**(n_down - 1) or width % 2**(n_down - 1):
            raise ValueError(
                f'{basedir} ({split}) images are {width}x{height}: n_down={n_down} needs both sides '
                f'divisible by {2**(n_down - 1)} (use fewer levels, or --res 128x128 with data_tools.synth)')
        imgdir = f'images_{split}'
        os.makedirs(os.path.join(newdir, imgdir), exist_ok=True)
        meta = {k: [] for k in (
            'file_path', 'cam2world', 'width', 'height', 'focal', 'label', 'near', 'far', 'lossmult')}
        for i, img in enumerate(data['images']):
            for j in range(n_down):
                fname = f'{imgdir}/{i:03d}_d{j}.png'
                with open(os.path.join(newdir, fname), 'wb') as imgout:
                    # np.uint8 truncates, as the original does.
                    Image.fromarray(np.uint8(img * 255)).save(imgout)
                meta['file_path'].append(fname)
                meta['cam2world'].append(data['camtoworlds'][i].tolist())
                meta['width'].append(img.shape[1])
                meta['height'].append(img.shape[0])
                meta['focal'].append(data['focal'] / 2**j)
                meta['label'].append(j)
                meta['near'].append(2.)
                meta['far'].append(6.)
                meta['lossmult'].append(4.**j)
                img = down2(torch.from_numpy(img)).numpy()
        meta['pix2cam'] = _pix2cam(meta['focal'], meta['width'], meta['height'])
        bigmeta[split] = meta
        print(f'{split}: {len(data["images"])} views x {n_down} scales')
    with open(os.path.join(newdir, 'metadata.json'), 'w') as f:
        json.dump(bigmeta, f, ensure_ascii=False, indent=4)


def _is_scene(folder):
    return os.path.isfile(os.path.join(folder, 'transforms_train.json'))


def scene_dirs(blender_dir, out_dir, object_name=None):
    """[(scene folder, output folder)] that the command line names."""
    if not os.path.isdir(blender_dir):
        raise FileNotFoundError(f'--blender_dir {blender_dir} does not exist (`{SYNTH}` makes a scene)')
    if object_name is not None:
        return [(os.path.join(blender_dir, object_name), os.path.join(out_dir, object_name))]
    if _is_scene(blender_dir):
        return [(blender_dir, out_dir)]
    scenes = [os.path.join(blender_dir, f) for f in sorted(os.listdir(blender_dir))]
    scenes = [d for d in scenes if _is_scene(d)]
    if not scenes:
        raise FileNotFoundError(f'{blender_dir} holds no Blender scene (a folder with '
                                f'transforms_train.json); `{SYNTH}` makes one')
    return [(d, os.path.join(out_dir, os.path.basename(d))) for d in scenes]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--blender_dir', '--blenderdir', required=True,
                        help='a Blender scene folder, or a folder of them')
    parser.add_argument('--out_dir', '--outdir', required=True, help='where to write the scenes')
    parser.add_argument('--object_name', default=None, help='convert only this scene of --blender_dir')
    parser.add_argument('--n_down', type=int, default=4, help='how many scales to write')
    args = parser.parse_args(argv)
    if args.n_down < 1:
        parser.error(f'--n_down must be at least 1, got {args.n_down}')
    for basedir, newdir in scene_dirs(args.blender_dir, args.out_dir, args.object_name):
        print('Converting from', basedir, 'to', newdir)
        convert_to_nerfdata(basedir, newdir, args.n_down)


if __name__ == '__main__':
    sys.exit(main())
