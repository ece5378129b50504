"""Prints what `make demo` produced: `python -m mipnerf360.scripts.demo_summary RUN_DIR`.

The held-out PSNR / SSIM / LPIPS of the newest eval (RUN_DIR/test_preds/metrics_<step>.json),
and the paths of its contact sheets (test_preds/sheets/summary.png: every test view), the
checkpoints, the rendered test images and the videos (RUN_DIR/render/).
"""

import argparse
import glob
import json
import os
import re
import sys

from common import checkpoints

_METRICS = re.compile(r'^metrics_(\d+)\.json$')
_VIDEO = re.compile(r'_path_renders_step_(\d+)_[a-z_]+\.mp4$')


def newest_metrics(run_dir):
    """run_dir/test_preds/metrics_<step>.json of the highest step, or None."""
    eval_dir = os.path.join(run_dir, 'test_preds')
    steps = [int(m.group(1)) for m in map(_METRICS.match, os.listdir(eval_dir)) if m] \
        if os.path.isdir(eval_dir) else []
    return os.path.join(eval_dir, f'metrics_{max(steps)}.json') if steps else None


def newest_videos(run_dir):
    """The mp4 files of the newest rendered step in run_dir/render, sorted."""
    videos = [(int(m.group(1)), path) for path in glob.glob(os.path.join(run_dir, 'render', '*.mp4'))
              if (m := _VIDEO.search(path))]
    if not videos:
        return []
    step = max(s for s, _ in videos)
    return sorted(path for s, path in videos if s == step)


def format_mean(mean):
    """One line of the mean metrics; LPIPS is 'n/a' when it was not computed."""
    fmt = lambda v, digits: 'n/a' if v is None else f'{v:.{digits}f}'
    return (f'PSNR {mean["psnr"]:.2f}  SSIM {mean["ssim"]:.4f}  '
            f'LPIPS (VGG) {fmt(mean["lpips_vgg"], 3)}  LPIPS (AlexNet) {fmt(mean["lpips_alex"], 3)}  '
            f'(colour-corrected: PSNR {mean["cc_psnr"]:.2f}  SSIM {mean["cc_ssim"]:.4f})')


def main(argv=None):
    """Prints the summary of the run in argv[0]; returns 1 when it holds no eval results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run_dir', help='Config.checkpoint_dir of the run')
    run_dir = parser.parse_args(argv).run_dir

    metrics_file = newest_metrics(run_dir)
    if metrics_file is None:
        print(f'No test_preds/metrics_*.json in {run_dir}: evaluate the run first '
              '(make eval-mipnerf360, or python -m mipnerf360.eval).')
        return 1
    with open(metrics_file) as f:
        result = json.load(f)
    protocol = result['protocol']
    print(f'mip-NeRF 360 run {run_dir}')
    print(f'Held-out views ({protocol["num_test_images"]} images, step {result["step"]}): '
          f'{format_mean(result["mean"])}')
    if protocol['lpips']['note']:
        print(f'  {protocol["lpips"]["note"]}')
    print(f'Metrics (per image, with the protocol): {metrics_file}')
    summary_sheet = os.path.join(os.path.dirname(metrics_file), 'sheets', 'summary.png')
    if os.path.isfile(summary_sheet):
        print(f'Summary sheet (ground truth | prediction | disparity | error of every test view): '
              f'{summary_sheet}')
    print(f'Rendered test images: {os.path.dirname(metrics_file)}')
    print('Checkpoints:')
    for path in checkpoints.list_checkpoints(run_dir):
        print(f'  {path}')
    videos = newest_videos(run_dir)
    print('Videos:' if videos else 'Videos: none yet (make render-mipnerf360)')
    for path in videos:
        print(f'  {path}')
    print(f'TensorBoard: tensorboard --logdir {run_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
