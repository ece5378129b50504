# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Evaluation on the test split: PSNR, SSIM (11-tap Gaussian, valid filtering) and depth error per
image, with zero GLO codes (the fork's eval); images and metrics.json in <checkpoint_dir>/eval.

    python -m depth_mipnerf.eval --gin_configs=depth_mipnerf/configs/lego.gin \
        --gin_bindings="Config.data_dir='data/lego'" --gin_bindings="Config.checkpoint_dir='runs/lego'"

The run's saved config.gin is read first, so only data_dir / checkpoint_dir need binding. The
fork's test_step histogram-equalises both images before its PSNR (a bug); this reports plain PSNR.
"""

import argparse
import json
import os
import sys

import gin
import imageio.v3 as iio
import numpy as np

from common import checkpoints, metrics, sheets
from common import device as device_utils
from common.logger import Logger
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import datasets
from depth_mipnerf.models import loss as loss_lib
from depth_mipnerf.models import nerf_system
from depth_mipnerf.utils import metrics as fork_metrics


def parse_args(argv=None):
    """--gin_configs / --gin_bindings (to find the run), --out_dir, --device, --no_images."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gin_configs', action='append', default=[])
    parser.add_argument('--gin_bindings', action='append', default=[])
    parser.add_argument('--out_dir', default=None, help='default: <checkpoint_dir>/eval')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--no_images', action='store_true', help='write metrics only (no images, no sheets)')
    return parser.parse_args(argv)


def to8b(x):
    """[H, W(, 3)] in [0, 1] -> uint8."""
    return (np.clip(np.nan_to_num(x), 0, 1) * 255).astype(np.uint8)


def protocol(sections, split, lpips_ok=True):
    """How eval measures, for metrics.json: the split, background, rounding, crop and metric variants."""
    return {
        'split': split,
        'background': 'white' if sections['val'].white_bkgd else 'black',
        'uint8_rounding': False,  # the fork scores the float renderings
        'crop_borders': 0,
        'psnr': "-10 log10(mse) of the float images (the fork's calc_psnr)",
        'ssim': "the fork's (11x11 Gaussian sigma 1.5, zero padding, mean of the whole map)",
        'ssim_mipnerf': 'mip-NeRF (11-tap Gaussian sigma 1.5, valid filtering)',
        'lpips': 'LPIPS v0.1 linear heads, VGG16 and AlexNet' if lpips_ok else
                 f'null: no weights at {metrics.default_lpips_weights_path()} (python -m data_tools.lpips_weights)',
        'depth_error': 'mean |sum(w t) - depth| over pixels with depth > 0',
    }


def evaluate(checkpoint_dir, data_dir, out_dir=None, device='cpu', write_images=True, split='test',
             gin_bindings=()):
    """Renders every image of `split` (the run's config.gin + gin_bindings) and writes metrics.json
    (and, with write_images, the renders and contact sheets, also logged to TensorBoard in out_dir);
    returns {'psnr', 'ssim', 'ssim_mipnerf', 'lpips_vgg', 'lpips_alex', 'depth_abs_err', per-image lists}.
    `ssim` is the fork's (utils/metrics.ssim: zero-padded Gaussian window, the whole map's mean), what
    its eval.py writes to ssims.txt; `ssim_mipnerf` is mip-NeRF's ('valid' window), beside it."""
    device = device_utils.pick_device(device)
    config, sections, model, step = nerf_system.load_run(checkpoint_dir, device=device,
                                                   gin_bindings=[*gin_bindings, f'Config.data_dir = {data_dir!r}'])
    dataset = nerf_system.build_dataset(config, sections, split)
    out_dir = out_dir or os.path.join(checkpoint_dir, 'eval')
    os.makedirs(out_dir, exist_ok=True)
    per_image = {'psnr': [], 'ssim': [], 'ssim_mipnerf': [], 'lpips_vgg': [], 'lpips_alex': [], 'depth_abs_err': []}
    lpips_ok = os.path.isfile(metrics.default_lpips_weights_path())
    log = Logger(out_dir) if write_images else None
    sheet_writer = sheets.SheetWriter(out_dir, log, step) if write_images else None
    for i in range(dataset.n_examples):
        rays, gt = dataset[i]
        out = nerf_system.render_image(model, datasets.namedtuple_map(lambda r: r.to(device), rays),
                                       sections['val'].chunk_size, sections['val'].randomized,
                                       sections['val'].white_bkgd)
        rgb, depth = out['rgb_fine'].cpu().clamp(0, 1), out['depth'].cpu()
        per_image['psnr'].append(float(loss_lib.calc_psnr(rgb, gt)))
        per_image['ssim'].append(float(fork_metrics.ssim(rgb.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None],
                                                          window_size=11, reduction='mean')))
        per_image['ssim_mipnerf'].append(float(metrics.ssim(rgb, gt)) if min(gt.shape[:2]) >= 11 else float('nan'))
        for net in ('vgg', 'alex'):
            # LPIPS needs the weights file of data_tools.lpips_weights and 32 pixels (AlexNet's stride).
            ok = lpips_ok and min(gt.shape[:2]) >= 32
            per_image[f'lpips_{net}'].append(float(metrics.lpips(rgb, gt, net)) if ok else float('nan'))
        valid = rays.depth[..., 0] > 0
        per_image['depth_abs_err'].append(float((depth - rays.depth[..., 0]).abs()[valid].mean())
                                          if valid.any() else float('nan'))
        if write_images:
            iio.imwrite(os.path.join(out_dir, f'color_{i:03d}.png'), to8b(rgb.numpy()))
            iio.imwrite(os.path.join(out_dir, f'depth_{i:03d}.png'),
                        to8b((depth / max(float(depth.max()), 1e-6)).numpy()))
            sheet_writer.add(gt=gt, pred=rgb, depth=depth, psnr=per_image['psnr'][-1], label=f'{split} {i}')
    if write_images:
        sheet_writer.finish()
        log.close()
    # None (JSON null) where no image has the value (no depth map, images below the SSIM window).
    result = {k: float(np.nanmean(v)) if not np.isnan(v).all() else None for k, v in per_image.items()}
    result.update({'per_image': per_image, 'n_images': dataset.n_examples, 'step': step,
                   'protocol': protocol(sections, split, lpips_ok)})
    with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def main(argv=None):
    args = parse_args(argv)
    config, _ = config_lib.parse(args.gin_configs, args.gin_bindings)
    gin.clear_config()
    try:
        result = evaluate(config.checkpoint_dir, config.data_dir, args.out_dir, args.device, not args.no_images,
                          gin_bindings=args.gin_bindings)
    except (FileNotFoundError, ValueError, checkpoints.UnreadableCheckpointsError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    print(f"PSNR {result['psnr']:.3f}  SSIM {result['ssim']}  depth abs err {result['depth_abs_err']} "
          f"over {result['n_images']} test images")


if __name__ == '__main__':
    main()
