# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
# Command line after hjxwhy/mipnerf_pl (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Evaluation script (google/mipnerf's eval.py with mipnerf_pl's command line).

    python -m mipnerf.eval --ckpt RUN_OR_FILE --data_path SCENE --out_dir D --scale {1,4}
        [--save_image] [--summa_only] [--gin_file F.gin] [--gin_param B] [--chunk 8192]

--ckpt is a train_dir (its newest checkpoint), a checkpoint file written by train.py, or a
state dict from scripts/convert_*_checkpoint.py; the config.gin that train.py wrote next to it is
read first, then --gin_file and --gin_param. Renders every test image deterministically and
scores it with PSNR, SSIM (math.compute_ssim: 11-tap Gaussian, valid filtering), LPIPS VGG (the
paper's) and AlexNet when the weights file exists, and the paper's "Avg." error. With --scale 4
the multi-scale test split (the multicam loader) is grouped by label: full, 1/2, 1/4 and 1/8
resolution. Writes metrics.json and metrics.md to D and prints the table, and D/sheets/: a contact
sheet per test view (ground truth | prediction | distance | error, with its PSNR) and summary.png
of all views, also logged to TensorBoard in D/tensorboard; --save_image also
writes D/<1,2,4,8>/color_<view>.png, distance_<view>.tiff and acc_<view>.tiff. --summa_only
re-tabulates D/metrics.json without rendering.
"""

import json
import os
import sys

import numpy as np
import torch
from absl import app, flags

from common import checkpoints, logger, metrics, sheets
from common import device as device_utils
from mipnerf import train
from mipnerf.internal import datasets, math, models, utils

FLAGS = flags.FLAGS
train.define_flag('string', 'ckpt', None, 'A train_dir, a checkpoint file or a converted state dict.')
train.define_flag('string', 'data_path', None, 'The scene folder (--data_dir).')
train.define_flag('string', 'out_dir', None, 'Where metrics and images go (default: train_dir/test_preds).')
train.define_flag('integer', 'scale', 1, 'Resolutions of the test split: 1, or 4 (multi-scale).')
train.define_flag('bool', 'save_image', False, 'Write the rendered images.')
train.define_flag('bool', 'summa_only', False, 'Only tabulate the metrics.json already in --out_dir.')

SCALE_NAMES = ('Full', '1/2', '1/4', '1/8')
LPIPS_NETS = ('vgg', 'alex')  # The first is the paper's (the original's TF-Hub net-lin VGG).
METRICS = ('psnr', 'ssim', 'lpips_vgg', 'lpips_alex', 'avg_error')
SSIM_WINDOW = 11
PROTOCOL = {
    'psnr': 'mse_to_psnr of the mean squared error over pixels and channels, images in [0, 1]',
    'ssim': ('math.compute_ssim (google/mipnerf): 11-tap Gaussian window, sigma 1.5, valid '
             'filtering, k1 0.01, k2 0.03; null for images smaller than the window'),
    'lpips': 'LPIPS v0.1 (linear heads), inputs scaled to [-1, 1]; vgg is the paper\'s',
    'avg_error': ('math.compute_avg_error: geometric mean of MSE, sqrt(1 - SSIM) and LPIPS VGG; '
                  'per scale and overall of the mean PSNR, SSIM and LPIPS, as the paper\'s "Avg."'),
    'rendering': 'deterministic (randomized=False), last level, composited as the loader does',
}


def protocol(config, scale):
    """How the metrics were measured, for metrics.json: PROTOCOL and the split, resolutions,
    background, rounding and crop of this config."""
    return {
        **PROTOCOL,
        'split': 'test',
        'scales': ['Full', '1/2', '1/4', '1/8'] if scale == 4 else ['Full'],
        'image_factor': config.factor,
        'background': 'white' if config.white_bkgd else 'black',
        'uint8_rounding': False,  # The float renderings are scored, as google/mipnerf's eval.py does.
        'crop_borders': 0,
    }


def find_checkpoint(ckpt):
    """(checkpoint file, its folder) of a train_dir or a file; FileNotFoundError when missing."""
    if os.path.isdir(ckpt):
        path = checkpoints.latest_checkpoint(ckpt)
        if path is None:
            raise FileNotFoundError(f'No checkpoint (checkpoint_*.pt) in {ckpt}; train first with '
                                    '`python -m mipnerf.train`')
        return path, ckpt
    if not os.path.isfile(ckpt):
        raise FileNotFoundError(f'Checkpoint {ckpt} does not exist')
    return ckpt, os.path.dirname(ckpt)


def load_config(ckpt, gin_files=(), gin_params=()):
    """The Config of the config.gin next to ckpt (if any), then gin_files and gin_params; a
    malformed file is a ValueError naming it."""
    _, run_dir = find_checkpoint(ckpt)
    run_config = os.path.join(run_dir, 'config.gin')
    files = ([run_config] if os.path.isfile(run_config) else []) + list(gin_files or [])
    return train.parse_config(files, gin_params)


def read_checkpoint(ckpt, device):
    """(the loaded checkpoint, its path) of a file, or of a train_dir's newest readable one
    (unreadable newer ones are skipped with a warning naming them, and left in place).

    Raises:
      ValueError naming the file (or, for a train_dir, every file) when none can be read.
    """
    path, run_dir = find_checkpoint(ckpt)
    if os.path.isdir(ckpt):
        try:
            return checkpoints.restore_latest(run_dir, map_location=device)
        except checkpoints.UnreadableCheckpointsError as error:
            raise ValueError(f'no checkpoint in {run_dir} is readable ({", ".join(error.paths)}); '
                             'replace them with readable copies or train again') from None
    try:
        return checkpoints.load_checkpoint(path, map_location=device), path
    except MemoryError:
        raise
    except Exception as error:  # Whatever a damaged or foreign file raises.
        first_line = (str(error).strip().splitlines() or [''])[0][:200]
        raise ValueError(f'checkpoint {path} is unreadable ({type(error).__name__}: {first_line})') from None


def load_model(ckpt, config, device):
    """(model in eval mode on device, step or None, checkpoint path) of a checkpoint.

    Reads train.py's checkpoints ({'model', 'step', ...}) and plain state dicts (converters').
    """
    saved, path = read_checkpoint(ckpt, device)
    state_dict, step = (saved['model'], int(saved['step'])) if 'model' in saved else (saved, None)
    # The example batch only names the device.
    example = {'rays': utils.Rays(*[torch.zeros(1, 3, device=device)] * 7)}
    model = models.construct_mipnerf(None, example)
    model.load_state_dict(state_dict)
    model.use_bf16_autocast = config.use_bf16_autocast
    return model.eval(), step, path


def load_lpips(device):
    """({net: LPIPS module}, None), or ({}, a note naming the command that makes the weights)."""
    path = metrics.default_lpips_weights_path()
    if not os.path.isfile(path):
        return {}, (f'LPIPS not computed: no weights at {path}; make them with '
                    f'`python -m data_tools.lpips_weights --out {path}`')
    return {net: metrics.LPIPS(net, path).to(device) for net in LPIPS_NETS}, None


def lpips_or_none(fn, rgb, gt):
    """LPIPS of two images [H, W, 3], or None when the image is too small for the backbone."""
    try:
        return float(fn(rgb, gt))
    except RuntimeError:  # A feature map shrank below a pooling or convolution window.
        return None


def image_metrics(rgb, gt, lpips_fns):
    """{psnr, ssim, lpips_vgg, lpips_alex, avg_error} of rgb vs gt, [H, W, 3]; None where unknown."""
    result = {'psnr': float(math.mse_to_psnr(((rgb - gt)**2).mean()))}
    big_enough = min(rgb.shape[:2]) >= SSIM_WINDOW
    result['ssim'] = float(math.compute_ssim(rgb, gt, max_val=1.)) if big_enough else None
    for net in LPIPS_NETS:
        fn = lpips_fns.get(net)
        result[f'lpips_{net}'] = None if fn is None else lpips_or_none(fn, rgb, gt)
    result['avg_error'] = avg_error(result)
    return result


def avg_error(values):
    """The paper's Avg. error of {psnr, ssim, lpips_vgg}, or None when one is unknown."""
    if any(values.get(k) is None for k in ('psnr', 'ssim', 'lpips_vgg')):
        return None
    return float(math.compute_avg_error(values['psnr'], values['ssim'], values['lpips_vgg']))


def mean_or_none(values):
    """Mean of a list of numbers, None if the list is empty or holds a None."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def summarize(per_image, num_scales):
    """{'per_scale': {name: {metric: mean}}, 'average': {metric: mean over scales}} of per-image
    metrics with a 'label' (0 = full resolution)."""
    names = SCALE_NAMES[:num_scales] if num_scales > 1 else ('Full',)
    per_scale = {}
    for label, name in enumerate(names):
        images = [m for m in per_image if (m['label'] if num_scales > 1 else 0) == label]
        scale = {k: mean_or_none([m[k] for m in images]) for k in METRICS if k != 'avg_error'}
        scale['avg_error'] = avg_error(scale)
        scale['num_images'] = len(images)
        per_scale[name] = scale
    average = {k: mean_or_none([s[k] for s in per_scale.values()])
               for k in METRICS if k != 'avg_error'}
    average['avg_error'] = avg_error(average)
    return {'per_scale': per_scale, 'average': average}


def markdown_table(summary):
    """The Full / 1/2 / 1/4 / 1/8 / average table of a summary, as markdown."""
    columns = list(summary['per_scale']) + ['Average']
    rows = [('PSNR', 'psnr', '{:.3f}'), ('SSIM', 'ssim', '{:.4f}'),
            ('LPIPS (VGG)', 'lpips_vgg', '{:.4f}'), ('LPIPS (AlexNet)', 'lpips_alex', '{:.4f}'),
            ('Avg. error', 'avg_error', '{:.4f}')]
    values = list(summary['per_scale'].values()) + [summary['average']]
    lines = ['| Metric | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
    for title, key, fmt in rows:
        cells = ['n/a' if v[key] is None else fmt.format(v[key]) for v in values]
        lines.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_summary(out_dir, result):
    """Writes metrics.json and metrics.md into out_dir and prints the table; returns the table."""
    utils.makedirs(out_dir)
    with utils.open_file(os.path.join(out_dir, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=2)
    table = markdown_table(result)
    with utils.open_file(os.path.join(out_dir, 'metrics.md'), 'w') as f:
        f.write(f'step {result["step"]}, {len(result["per_image"])} test images\n\n' + table)
    print(table, end='')
    if result['protocol'].get('lpips_note'):
        print(result['protocol']['lpips_note'])
    print(f'metrics in {os.path.join(out_dir, "metrics.json")}')
    return table


def summarize_only(out_dir):
    """--summa_only: re-tabulates out_dir/metrics.json (rewriting metrics.md); returns it."""
    path = os.path.join(out_dir, 'metrics.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'No metrics.json in {out_dir}; evaluate without --summa_only first')
    with utils.open_file(path) as f:
        result = json.load(f)
    result.update(summarize(result['per_image'], result['num_scales']))
    write_summary(out_dir, result)
    return result


def save_images(out_dir, label, view, rgb, distance, acc):
    """The original's color/distance/acc images of one view, in out_dir/<2^label>/."""
    folder = os.path.join(out_dir, str(2**label))
    utils.makedirs(folder)
    utils.save_img_uint8(rgb, os.path.join(folder, f'color_{view:03d}.png'))
    utils.save_img_float32(distance, os.path.join(folder, f'distance_{view:03d}.tiff'))
    utils.save_img_float32(acc, os.path.join(folder, f'acc_{view:03d}.tiff'))


def evaluate_view(dataset, idx, label, view, render_fn, chunk, lpips_fns, sheet_writer,
                  image_dir, device):
    """Renders and scores test image idx (the view-th of scale `label`), adds its contact sheet,
    and with an image_dir saves its images there; returns its metrics."""
    rays = dataset.rays.map(lambda r: r[idx].to(device))
    rgb, distance, acc = models.render_image(render_fn, rays, None, chunk)
    gt = dataset.images[idx][..., :3].to(device)
    metric = {'index': idx, 'label': label, 'view': view, **image_metrics(rgb, gt, lpips_fns)}
    print('  ' + '  '.join(f'{k}={v:.4f}' for k, v in metric.items()
                           if k in METRICS and v is not None))
    sheet_writer.add(gt=gt, pred=rgb, depth=distance, psnr=metric['psnr'],
                     label=f'{SCALE_NAMES[label]} view {view}')
    if image_dir is not None:
        save_images(image_dir, label, view, rgb, distance, acc)
    return metric


def evaluate(ckpt, data_path, out_dir=None, scale=1, save_image=False, gin_files=(),
             gin_params=(), chunk=8192, device=None):
    """Scores the test split of data_path with checkpoint ckpt (see the module docstring).

    Returns:
      The metrics.json dict: step, checkpoint, num_scales, per_image [{index, label, view,
      psnr, ssim, lpips_vgg, lpips_alex, avg_error}], per_scale {Full, 1/2, ...: {metric: mean,
      num_images}}, average {metric}, protocol.
    """
    if scale not in (1, 4):
        raise ValueError(f'--scale must be 1 or 4, got {scale}')
    config = load_config(ckpt, gin_files, gin_params)
    if scale == 4:
        config.dataset_loader = 'multicam'  # The multi-scale test split.
    device = torch.device(device) if device is not None else device_utils.pick_device()
    model, step, path = load_model(ckpt, config, device)
    out_dir = out_dir or os.path.join(find_checkpoint(ckpt)[1], 'test_preds')
    dataset = datasets.get_dataset('test', data_path, config)
    dataset.close()  # Images are read by index below; the prefetch thread is not needed.
    labels = dataset.meta['label'].tolist() if scale == 4 else [0] * dataset.size
    if scale == 4 and sorted(set(labels)) != [0, 1, 2, 3]:
        raise ValueError(f'--scale 4 needs test labels 0..3 in {data_path}, found {sorted(set(labels))}')
    lpips_fns, lpips_note = load_lpips(device)
    render_fn = train.render_eval_fn(model, config)

    per_image, views = [], [0] * 4
    with logger.Logger(os.path.join(out_dir, 'tensorboard')) as log:
        sheet_writer = sheets.SheetWriter(out_dir, log, step or 0)
        for idx in range(dataset.size):
            print(f'Evaluating {idx + 1}/{dataset.size}')
            label, view = labels[idx], views[labels[idx]]
            views[label] += 1
            per_image.append(evaluate_view(
                dataset, idx, label, view, render_fn, chunk, lpips_fns, sheet_writer,
                out_dir if save_image else None, device))
        summary_sheet = sheet_writer.finish()

    result = {
        'step': step, 'checkpoint': path, 'data_path': data_path, 'num_scales': scale,
        'dataset_loader': config.dataset_loader, 'per_image': per_image,
        **summarize(per_image, scale),
        'protocol': {**protocol(config, scale), 'lpips_backbones': sorted(lpips_fns), 'lpips_note': lpips_note},
    }
    write_summary(out_dir, result)
    print(f'contact sheets in {os.path.dirname(summary_sheet)} (all views: {summary_sheet})')
    return result


def main(unused_argv):
    out_dir, ckpt = FLAGS.out_dir, FLAGS.ckpt or FLAGS.train_dir
    try:
        if FLAGS.summa_only:
            if not out_dir:
                raise app.UsageError('--summa_only reads --out_dir/metrics.json: name --out_dir')
            summarize_only(out_dir)
            return
        data_path = FLAGS.data_path or FLAGS.data_dir
        if not ckpt or not data_path:
            raise app.UsageError('name the checkpoint (--ckpt) and the scene (--data_path)')
        evaluate(ckpt, data_path, out_dir, FLAGS.scale, FLAGS.save_image, FLAGS.gin_file,
                 FLAGS.gin_param, FLAGS.chunk)
    # No checkpoint or no data: say what is missing; an unreadable checkpoint or a malformed
    # config.gin: name it.
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    app.run(main)
