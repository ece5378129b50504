# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Evaluation script (multinerf's eval.py): `python -m mipnerf360.eval --gin_configs=... --gin_bindings=...`.

Renders every test view with the newest checkpoint of Config.checkpoint_dir and writes, to
checkpoint_dir/test_preds/ as multinerf does, the rendered images, multinerf's per-image metric
files (metric_<name>_<step>.txt, metric_cc_<name>_<step>.txt, render_times_<step>.txt; LPIPS-VGG, the
variant of the mip-NeRF 360 table, as metric_lpips_<step>.txt, which multinerf's table notebook
reads) and, ours beside them, metric_lpips_alex_<step>.txt and metrics_<step>.json: per-image and mean
PSNR, SSIM, LPIPS (VGG and AlexNet), colour-corrected PSNR and SSIM, and the protocol they were
measured with, and sheets/: a contact sheet per test view (ground truth | prediction | disparity
of the median distance | error, with its PSNR) and summary.png of all views, also logged to TensorBoard (eval/).
With Config.eval_only_once=False it evaluates each new checkpoint as training writes it, until the
last step.
"""

import functools
import json
import os
import sys
import time

import gin
import numpy as np
import torch
from absl import app

from common import checkpoints, logger, metrics, sheets
from common import device as device_utils
from mipnerf360.internal import configs, datasets, image, models, ref_utils, train_utils, utils, vis

configs.define_common_flags()

# multinerf's fixed key: the initial parameters, which the checkpoint then replaces.
SEED = 20200823
# LPIPS backbones, the paper's first: mip-NeRF 360 reports LPIPS with VGG.
LPIPS_NETS = ('vgg', 'alex')
# The smallest image side each LPIPS backbone's pooling layers take (AlexNet: 11x11 stride-4 conv and
# two 3x3 stride-2 pools before its third layer; VGG16: four 2x2 pools before its fifth).
LPIPS_MIN_SIDE = {'vgg': 16, 'alex': 31}
SSIM_VARIANT = ('multinerf / dm_pix: 11-tap Gaussian window, sigma 1.5, valid filtering, '
                'k1 0.01, k2 0.03, mean over pixels and channels')
COLOR_CORRECTION = ('image.color_correct: per-channel least-squares quadratic warp to the '
                    'ground truth, 5 iterations (cc_ metrics)')
# Seconds between looks for a new checkpoint when evaluating alongside training, as multinerf.
POLL_SECONDS = 10


def eval_train_frac(step, max_steps):
    """The training fraction multinerf's eval.py renders with: step / max_steps."""
    return step / max_steps


def load_lpips(weights_path=None):
    """({net: LPIPS module} for LPIPS_NETS, None), or ({}, a note) when the weights file is missing."""
    path = os.path.expanduser(weights_path) if weights_path else metrics.default_lpips_weights_path()
    if not os.path.isfile(path):
        return {}, (f'LPIPS not computed: no weights at {path}; make them with '
                    f'`python -m data_tools.lpips_weights --out {path}`')
    return {net: metrics.LPIPS(net, path) for net in LPIPS_NETS}, None


def image_metrics(rgb, rgb_gt, lpips_fns, device):
    """PSNR, SSIM and LPIPS of rgb vs rgb_gt, [H, W, 3] in [0, 1]: {name: float or None}.

    lpips_fns: {net: LPIPS module on device}; a net without one, or an image smaller than the net's
    pooling reaches (LPIPS_MIN_SIDE), scores None.
    """
    metric = image.MetricHarness()(rgb, rgb_gt)
    pair = [x.float().to(device) for x in (rgb, rgb_gt)]
    for net in LPIPS_NETS:
        fn = lpips_fns.get(net)
        small = min(rgb.shape[:2]) < LPIPS_MIN_SIDE[net]
        metric[f'lpips_{net}'] = None if fn is None or small else float(fn(*pair))
    return metric


def geometry_metrics(rendering, batch, config):
    """multinerf's disparity MSEs and normal MAEs of a rendering against Blender's ground truth."""
    metric = {}
    if config.compute_disp_metrics:
        for tag in ['mean', 'median']:
            key = f'distance_{tag}'
            if key in rendering:
                disparity = 1 / (1 + rendering[key])
                metric[f'disparity_{tag}_mse'] = float(((disparity - batch.disps)**2).mean())
    if config.compute_normal_metrics:
        weights = rendering['acc'] * batch.alphas
        normals_gt = ref_utils.l2_normalize(batch.normals)
        for key, val in rendering.items():
            if key.startswith('normals') and val is not None:
                metric[key + '_mae'] = float(
                    ref_utils.compute_weighted_mae(weights, ref_utils.l2_normalize(val), normals_gt))
    return metric


def mean_metrics(per_image):
    """{name: mean over images} of a list of metric dicts; None where any image has None."""
    names = [k for k in per_image[0] if k != 'index']
    return {
        k: None if any(m[k] is None for m in per_image) else float(np.mean([m[k] for m in per_image]))
        for k in names
    }


def protocol(config, step, checkpoint_path, num_images, lpips_fns, lpips_note):
    """How the metrics were measured, for metrics.json."""
    return {
        'ssim': SSIM_VARIANT,
        'lpips': {
            'backbones': [net for net in LPIPS_NETS if net in lpips_fns],
            'paper_table': 'vgg',
            'version': 'LPIPS v0.1 (linear heads), inputs scaled to [-1, 1]',
            'note': lpips_note,
        },
        'color_correction': COLOR_CORRECTION,
        'dataset_loader': config.dataset_loader,
        'data_dir': config.data_dir,
        'image_factor': config.factor,
        'llffhold': config.llffhold if config.dataset_loader == 'llff' else None,
        'uint8_rounding': config.eval_quantize_metrics,
        'crop_borders': config.eval_crop_borders,
        # Blender's RGBA images are composited on white; LLFF images have no alpha.
        'background': 'white' if config.dataset_loader == 'blender' else None,
        'step': step,
        'train_frac': eval_train_frac(step, config.max_steps),
        'checkpoint': checkpoint_path,
        'num_test_images': num_images,
    }


def save_outputs(rendering, idx, out_dir):
    """Writes multinerf's per-image outputs: color, color_cc, distances, normals, acc."""
    path_fn = lambda name: os.path.join(out_dir, name)
    utils.save_img_u8(rendering['rgb'], path_fn(f'color_{idx:03d}.png'))
    utils.save_img_u8(rendering['rgb_cc'], path_fn(f'color_cc_{idx:03d}.png'))
    for key in ['distance_mean', 'distance_median']:
        if key in rendering:
            utils.save_img_f32(rendering[key], path_fn(f'{key}_{idx:03d}.tiff'))
    if rendering.get('normals') is not None:
        utils.save_img_u8(rendering['normals'] / 2. + 0.5, path_fn(f'normals_{idx:03d}.png'))
    utils.save_img_f32(rendering['acc'], path_fn(f'acc_{idx:03d}.tiff'))


def log_showcase(log, rendering, batch, idx, step, config):
    """Logs the visualize_suite images of one test view, its ground truth and residual."""
    if config.vis_decimate > 1:
        d = config.vis_decimate
        decimate = lambda x: x[::d, ::d]
        rendering = {k: v if k.startswith('ray_') else decimate(v) for k, v in rendering.items()}
        batch = batch.map(decimate)
    for k, v in vis.visualize_suite(rendering, batch.rays).items():
        log.image(f'output_{k}_{idx}', v, step)
    log.image(f'true_color_{idx}', batch.rgb, step)
    residual = torch.clamp(rendering['rgb'] - batch.rgb + 0.5, 0, 1)
    log.image(f'true_residual_{idx}', residual, step)


# Metric names whose text file multinerf's table notebook knows by another name.
METRIC_FILE_NAMES = {'lpips_vgg': 'lpips'}


def write_metric_files(out_dir, step, per_image, render_times):
    """multinerf's text files: render_times_<step>.txt and metric_<name>_<step>.txt (one value per
    image, space separated); cc_ metrics go to metric_cc_<name>_<step>.txt as in multinerf, and
    LPIPS-VGG to metric_lpips_<step>.txt, the name multinerf's table notebook reads."""
    with utils.open_file(os.path.join(out_dir, f'render_times_{step}.txt'), 'w') as f:
        f.write(' '.join(str(t) for t in render_times))
    for name in per_image[0]:
        if name == 'index' or per_image[0][name] is None:
            continue
        file_name = f'metric_cc_{name[3:]}' if name.startswith('cc_') else f'metric_{METRIC_FILE_NAMES.get(name, name)}'
        with utils.open_file(os.path.join(out_dir, f'{file_name}_{step}.txt'), 'w') as f:
            f.write(' '.join(str(m[name]) for m in per_image))


def evaluate_checkpoint(config, dataset, render_eval_fn, step, checkpoint_path, lpips_fns,
                        lpips_note, log, device):
    """Renders and scores the test views with the restored model; writes and returns metrics.json.

    Returns:
      {'step', 'mean': {name: value}, 'per_image': [{'index', name: value}], 'protocol',
      'render_times', 'metrics_path', 'summary_sheet'}. Names: psnr, ssim, lpips_vgg, lpips_alex
      (None without LPIPS weights), cc_psnr, cc_ssim, and the disparity / normal metrics when
      enabled.
    """
    out_dir = os.path.join(config.checkpoint_dir, 'test_preds')
    utils.makedirs(out_dir)
    num_eval = min(dataset.size, config.eval_dataset_limit)
    perm = torch.randperm(
        num_eval, generator=torch.Generator().manual_seed(0 if config.deterministic_showcase else step))
    showcase_indices = set(perm[:config.num_showcase_images].tolist())
    render_fn = functools.partial(render_eval_fn, eval_train_frac(step, config.max_steps))

    per_image, render_times = [], []
    sheet_writer = sheets.SheetWriter(out_dir, log, step)
    for idx in range(num_eval):
        print(f'Evaluating image {idx + 1}/{num_eval}')
        start = time.time()
        batch = dataset.generate_ray_batch(idx)
        rendering = models.render_image(
            render_fn, batch.rays.map(lambda x: x.to(device)), None, config, verbose=False)
        rendering = {
            k: [r.cpu() for r in v] if k.startswith('ray_') else v.cpu()
            for k, v in rendering.items()
        }
        render_times.append(time.time() - start)

        # float64: the colour correction's least-squares fit needs the precision.
        rgb_gt = batch.rgb[..., :3].double()
        rendering['rgb'] = rendering['rgb'].double()
        rendering['rgb_cc'] = image.color_correct(rendering['rgb'], rgb_gt)
        rgb, rgb_cc = rendering['rgb'], rendering['rgb_cc']
        if config.eval_quantize_metrics:
            # Score the 8-bit images a viewer would see, as multinerf does.
            rgb = torch.round(rgb * 255) / 255
            rgb_cc = torch.round(rgb_cc * 255) / 255
        if config.eval_crop_borders > 0:
            c = config.eval_crop_borders
            rgb, rgb_cc, rgb_gt = (x[c:-c, c:-c] for x in (rgb, rgb_cc, rgb_gt))

        metric = {'index': idx, **image_metrics(rgb, rgb_gt, lpips_fns, device)}
        cc = image.MetricHarness()(rgb_cc, rgb_gt, name_fn=lambda s: f'cc_{s}')
        metric.update(cc)
        metric.update(geometry_metrics(rendering, batch, config))
        per_image.append(metric)
        # Disparity: distances of an unbounded scene reach Config.far and would flatten the near ones.
        sheet_writer.add(gt=batch.rgb[..., :3], pred=rendering['rgb'],
                         depth=1 / rendering['distance_median'], psnr=metric['psnr'], label=f'test {idx}')
        print('  ' + '  '.join(
            f'{k} {v:.4f}' for k, v in metric.items() if k != 'index' and v is not None))

        if config.eval_save_output and config.eval_render_interval > 0:
            if idx % config.eval_render_interval == 0:
                save_outputs(rendering, idx, out_dir)
        # As multinerf, only a continuous eval (alongside training) logs the visualizations.
        if not config.eval_only_once and idx in showcase_indices:
            log_showcase(log, rendering, batch, idx, step, config)

    mean = mean_metrics(per_image)
    summary_sheet = sheet_writer.finish()
    log.scalar('eval_median_render_time', float(np.median(render_times)), step)
    log.scalars({k: v for k, v in mean.items() if v is not None}, step, prefix='eval_metrics/')
    log.flush()

    json_path = os.path.join(out_dir, f'metrics_{step}.json')
    result = {
        'step': step,
        'mean': mean,
        'per_image': per_image,
        'protocol': protocol(config, step, checkpoint_path, num_eval, lpips_fns, lpips_note),
        'render_times': render_times,
    }
    with utils.open_file(json_path, 'w') as f:
        json.dump(result, f, indent=2)
    if config.eval_save_output:
        write_metric_files(out_dir, step, per_image, render_times)

    fmt = lambda v: 'n/a' if v is None else f'{v:.4f}'
    print(f'step {step}, {num_eval} test images: PSNR {mean["psnr"]:.2f}  SSIM {mean["ssim"]:.4f}  '
          f'LPIPS(vgg) {fmt(mean["lpips_vgg"])}  LPIPS(alex) {fmt(mean["lpips_alex"])}  '
          f'cc-PSNR {mean["cc_psnr"]:.2f}  cc-SSIM {mean["cc_ssim"]:.4f}')
    if lpips_note:
        print(lpips_note)
    print(f'metrics in {json_path}')
    print(f'contact sheets in {os.path.dirname(summary_sheet)} (all views: {summary_sheet})')
    return {**result, 'metrics_path': json_path, 'summary_sheet': summary_sheet}


def missing_checkpoint_message(config):
    """The error of a run directory without a (readable) checkpoint."""
    return (f'No readable checkpoint (checkpoint_*.pt) in Config.checkpoint_dir '
            f'{config.checkpoint_dir}; train first with `python -m mipnerf360.train`')


def evaluate(config, device=None, lpips_weights_path=None):
    """Evaluates the checkpoints of config.checkpoint_dir (see the module docstring).

    Args:
      config: the Config.
      device: where to render (default: CUDA when available, else the CPU).
      lpips_weights_path: the LPIPS weights file (default: common.metrics' default path).

    Returns:
      evaluate_checkpoint's result for the last checkpoint evaluated.
    """
    if config.render_path:
        raise ValueError('eval.py scores the test views; render a camera path (Config.render_path'
                         '=True) with `python -m mipnerf360.render`')
    if config.checkpoint_dir is None:
        raise ValueError('Config.checkpoint_dir must name the training run to evaluate')
    if config.eval_only_once and checkpoints.latest_checkpoint(config.checkpoint_dir) is None:
        raise FileNotFoundError(missing_checkpoint_message(config))  # Before loading anything.
    device = torch.device(device) if device is not None else device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    dataset = datasets.load_dataset('test', config.data_dir, config)
    dataset.close()  # Views are cast with generate_ray_batch; the prefetch thread is not needed.
    lpips_fns, lpips_note = load_lpips(lpips_weights_path)
    lpips_fns = {net: fn.to(device) for net, fn in lpips_fns.items()}
    _, state, render_eval_fn, _, _ = train_utils.setup_model(
        config, torch.Generator().manual_seed(SEED), device=device)
    last_step = 0
    # Restored before the logger writes anything: unreadable checkpoints leave the folder as it was.
    checkpoint_path = train_utils.restore_checkpoint(config, state, device=device)
    with logger.Logger(os.path.join(config.checkpoint_dir, 'eval')) as log:
        waiting_since = None
        while True:
            if checkpoint_path is None and config.eval_only_once:
                raise FileNotFoundError(missing_checkpoint_message(config))
            step = state.step if checkpoint_path is not None else 0
            if step <= last_step:
                waiting_since = wait_for_checkpoint(config, last_step, waiting_since)
                checkpoint_path = train_utils.restore_checkpoint(config, state, device=device)
                continue
            waiting_since = None
            print(f'Evaluating checkpoint {checkpoint_path} at step {step}.')
            result = evaluate_checkpoint(config, dataset, render_eval_fn, step, checkpoint_path,
                                         lpips_fns, lpips_note, log, device)
            num_steps = config.early_exit_steps or config.max_steps
            if config.eval_only_once or step >= num_steps:
                return result
            last_step = step
            checkpoint_path = train_utils.restore_checkpoint(config, state, device=device)

def wait_for_checkpoint(config, last_step, waiting_since):
    """One poll of a continuous eval with nothing new: says once what it waits for, sleeps, and
    raises TimeoutError after Config.eval_wait_timeout seconds. Returns when the wait began."""
    now = time.monotonic()
    if waiting_since is None:
        waiting_since = now
        print(f'Waiting for a checkpoint after step {last_step} in {config.checkpoint_dir} '
              f'(polling every {POLL_SECONDS} s'
              + (f', for up to {config.eval_wait_timeout} s)' if config.eval_wait_timeout else ', until one appears)'))
    elif config.eval_wait_timeout is not None and now - waiting_since >= config.eval_wait_timeout:
        raise TimeoutError(f'no checkpoint after step {last_step} appeared in {config.checkpoint_dir} '
                           f'within Config.eval_wait_timeout = {config.eval_wait_timeout} s')
    time.sleep(POLL_SECONDS if config.eval_wait_timeout is None
               else min(POLL_SECONDS, max(0., waiting_since + config.eval_wait_timeout - now)))
    return waiting_since


def main(unused_argv):
    config = configs.load_config(save_config=False)
    try:
        evaluate(config)
    except FileNotFoundError as error:  # no checkpoint or no data: say what is missing, no traceback
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    except checkpoints.UnreadableCheckpointsError as error:
        what = 'eval' if config.eval_only_once else 'continuous eval'
        print(f'error: {train_utils.unreadable_checkpoints_message(error, what)}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    with gin.config_scope('eval'):
        app.run(main)
