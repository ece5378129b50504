"""Prints what `make demo` produced: `python -m mipnerf360.scripts.demo_summary RUN_DIR`.

The held-out PSNR / SSIM / LPIPS of the newest eval (RUN_DIR/test_preds_step_<step>/metrics.json),
and the paths of the checkpoints, the rendered test images and the videos (RUN_DIR/render/).
"""

import argparse
import glob
import json
import os
import re
import sys

from common import checkpoints

_TEST_PREDS = re.compile(r'^test_preds_step_(\d+)$')
_VIDEO = re.compile(r'_path_renders_step_(\d+)_[a-z_]+\.mp4$')


def newest_eval_dir(run_dir):
    """run_dir/test_preds_step_<step> with the highest step holding a metrics.json, or None."""
    steps = [
        int(m.group(1)) for m in map(_TEST_PREDS.match, os.listdir(run_dir)) if m
        and os.path.isfile(os.path.join(run_dir, m.group(0), 'metrics.json'))
    ] if os.path.isdir(run_dir) else []
    return os.path.join(run_dir, f'test_preds_step_{max(steps)}') if steps else None


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

    eval_dir = newest_eval_dir(run_dir)
    if eval_dir is None:
        print(f'No test_preds_step_*/metrics.json in {run_dir}: evaluate the run first '
              '(make eval-mipnerf360, or python -m mipnerf360.eval).')
        return 1
    with open(os.path.join(eval_dir, 'metrics.json')) as f:
        result = json.load(f)
    protocol = result['protocol']
    print(f'mip-NeRF 360 run {run_dir}')
    print(f'Held-out views ({protocol["num_test_images"]} images, step {result["step"]}): '
          f'{format_mean(result["mean"])}')
    if protocol['lpips']['note']:
        print(f'  {protocol["lpips"]["note"]}')
    print(f'Metrics (per image, with the protocol): {os.path.join(eval_dir, "metrics.json")}')
    print(f'Rendered test images: {eval_dir}')
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
