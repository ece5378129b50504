"""mipnerf360.eval, mipnerf360.render and scripts.demo_summary on a tiny model trained 3 steps."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import gin
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator

from common import metrics
from mipnerf360 import eval as eval_lib
from mipnerf360 import render
from mipnerf360.internal import configs, datasets, train_utils, utils
from mipnerf360.scripts import demo_summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_360 = os.path.join(REPO, 'mipnerf360', 'configs', '360.gin')
TINY = [
    'PropMLP.net_depth = 2', 'PropMLP.net_width = 16',
    'NerfMLP.net_depth = 2', 'NerfMLP.net_width = 32', 'NerfMLP.bottleneck_width = 16',
    'NerfMLP.net_width_viewdirs = 16', 'NerfMLP.max_deg_point = 4', 'PropMLP.max_deg_point = 4',
    'Model.num_prop_samples = 8', 'Model.num_nerf_samples = 6',
    # Full resolution (64x48): the smallest size AlexNet's LPIPS can read.
    'Config.factor = 0', 'Config.batch_size = 64', 'Config.max_steps = 3',
    'Config.lr_delay_steps = 0', 'Config.render_chunk_size = 4096',
    'Config.render_path_frames = 4', 'Config.render_video_fps = 10',
]
NUM_STEPS = 3
NUM_TEST = 2  # 12 views, every 8th held out: views 0 and 8.


def parse_config(run, bindings=()):
    """Config of the tiny model on run's scene, with gin cleared first."""
    gin.clear_config()
    gin.parse_config_files_and_bindings(
        [CONFIG_360],
        TINY + [f"Config.data_dir = '{run['data_dir']}'",
                f"Config.checkpoint_dir = '{run['checkpoint_dir']}'"] + list(bindings),
        skip_unknown=False)
    return configs.Config()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A synthetic 360 scene and a run directory holding a 3-step checkpoint of the tiny model."""
    root = tmp_path_factory.mktemp('eval_render')
    data_dir = str(root / 'scene')
    subprocess.run(
        [sys.executable, '-m', 'data_tools.synth', '--scene', 'unbounded360', '--res', '64x48',
         '--views', '12', '--out', data_dir], check=True, cwd=REPO, capture_output=True)
    run = {'data_dir': data_dir, 'checkpoint_dir': str(root / 'runs' / 'tiny' / 'scene')}
    config = parse_config(run)
    np.random.seed(0)
    dataset = datasets.load_dataset('train', data_dir, config)
    try:
        _, state, _, train_step, _ = train_utils.setup_model(
            config, torch.Generator().manual_seed(0), dataset=dataset)
        rng = torch.Generator().manual_seed(1)
        for step in range(1, NUM_STEPS + 1):
            train_frac = (step - 1) / (config.max_steps - 1)
            state, _, rng = train_step(rng, state, next(dataset), dataset.cameras, train_frac)
        train_utils.save_checkpoint(config, state, rng)
    finally:
        dataset.close()
        gin.clear_config()
    return run


@pytest.fixture(autouse=True)
def clean_gin():
    yield
    gin.clear_config()


def random_lpips_weights(path):
    """Writes an LPIPS weights file of randomly initialised backbones and heads."""
    state = {}
    for net in eval_lib.LPIPS_NETS:
        backbone = metrics.lpips_backbone(net)
        state.update({f'{net}.net.{k}': v for k, v in backbone.state_dict().items()})
        for k, tap in enumerate(backbone.taps):
            channels = backbone.features[tap - 1].out_channels
            state[f'{net}.lin{k}.model.1.weight'] = torch.rand(1, channels, 1, 1)
    torch.save(state, path)


@pytest.fixture(scope='module')
def evaluated(run, tmp_path_factory):
    """evaluate()'s result with random LPIPS weights, and the test images it scored."""
    weights = str(tmp_path_factory.mktemp('lpips') / 'weights.pt')
    random_lpips_weights(weights)
    config = parse_config(run)
    result = eval_lib.evaluate(config, device='cpu', lpips_weights_path=weights)
    dataset = datasets.load_dataset('test', run['data_dir'], config)
    dataset.close()
    gin.clear_config()
    return result, dataset.images


def test_eval_writes_metrics_json(run, evaluated):
    result, gt_images = evaluated
    out_dir = os.path.join(run['checkpoint_dir'], 'test_preds')  # multinerf's folder
    with open(os.path.join(out_dir, f'metrics_{NUM_STEPS}.json')) as f:
        saved = json.load(f)
    assert saved['step'] == NUM_STEPS
    names = ['psnr', 'ssim', 'lpips_vgg', 'lpips_alex', 'cc_psnr', 'cc_ssim']
    assert sorted(saved['mean']) == sorted(names)
    assert [m['index'] for m in saved['per_image']] == list(range(NUM_TEST))
    for name in names:
        values = [m[name] for m in saved['per_image']]
        assert all(np.isfinite(values)), name
        np.testing.assert_allclose(saved['mean'][name], np.mean(values), rtol=1e-12)
    protocol = saved['protocol']
    assert protocol['step'] == NUM_STEPS
    assert protocol['num_test_images'] == NUM_TEST
    assert protocol['llffhold'] == 8 and protocol['image_factor'] == 0
    assert protocol['uint8_rounding'] is True and protocol['background'] is None
    assert protocol['lpips']['backbones'] == ['vgg', 'alex'] and protocol['lpips']['note'] is None
    assert 'sigma 1.5' in protocol['ssim']
    assert os.path.basename(protocol['checkpoint']) == f'checkpoint_{NUM_STEPS:08d}.pt'
    assert result['metrics_path'] == os.path.join(out_dir, f'metrics_{NUM_STEPS}.json')

    # The metrics are those of the saved color images (8-bit: a saved PNG is within one level of
    # the rounded image the metrics were computed on).
    for m in saved['per_image']:
        idx = m['index']
        color = utils.load_img(os.path.join(out_dir, f'color_{idx:03d}.png')) / 255.
        gt = torch.from_numpy(gt_images[idx]).double()
        psnr = float(metrics.psnr(torch.from_numpy(color), gt))
        assert abs(psnr - m['psnr']) < 0.1
        ssim = float(metrics.ssim(torch.from_numpy(color), gt))
        assert abs(ssim - m['ssim']) < 0.01
        for name in ['color_cc', 'distance_mean', 'distance_median', 'acc']:
            ext = 'png' if name.startswith('color') else 'tiff'
            assert os.path.isfile(os.path.join(out_dir, f'{name}_{idx:03d}.{ext}'))
        assert utils.load_img(os.path.join(out_dir, f'acc_{idx:03d}.tiff')).shape == (48, 64)

    # multinerf's per-image text files.
    with open(os.path.join(out_dir, f'metric_psnr_{NUM_STEPS}.txt')) as f:
        np.testing.assert_allclose([float(v) for v in f.read().split()],
                                   [m['psnr'] for m in saved['per_image']])
    with open(os.path.join(out_dir, f'metric_cc_ssim_{NUM_STEPS}.txt')) as f:
        np.testing.assert_allclose([float(v) for v in f.read().split()],
                                   [m['cc_ssim'] for m in saved['per_image']])
    # LPIPS-VGG under the name multinerf's table notebook reads; AlexNet ours, beside it.
    for name, file_name in [('lpips_vgg', 'lpips'), ('lpips_alex', 'lpips_alex')]:
        with open(os.path.join(out_dir, f'metric_{file_name}_{NUM_STEPS}.txt')) as f:
            np.testing.assert_allclose([float(v) for v in f.read().split()],
                                       [m[name] for m in saved['per_image']])
    assert not glob.glob(os.path.join(out_dir, 'metric_lpips_vgg_*'))
    assert os.listdir(os.path.join(run['checkpoint_dir'], 'eval'))  # TensorBoard events


def test_eval_writes_a_sheet_per_test_view_and_logs_them(run, evaluated):
    sheet_dir = os.path.join(run['checkpoint_dir'], 'test_preds', 'sheets')
    assert sorted(os.listdir(sheet_dir)) == ['summary.png'] + [f'view_{i:03d}.png' for i in range(NUM_TEST)]
    assert evaluated[0]['summary_sheet'] == os.path.join(sheet_dir, 'summary.png')
    # 48 rows enlarged 3 times; ground truth | prediction | distance | error.
    assert imageio.imread(os.path.join(sheet_dir, 'view_000.png')).shape == (144, 4 * 192, 3)
    events = event_accumulator.EventAccumulator(
        os.path.join(run['checkpoint_dir'], 'eval'), size_guidance={event_accumulator.IMAGES: 0})
    events.Reload()
    assert {f'sheets/view_{i:03d}' for i in range(NUM_TEST)} | {'sheets/summary'} <= set(events.Tags()['images'])


def test_eval_without_lpips_weights_records_null(run, evaluated, tmp_path):
    # A copy of the run: this eval's metrics.json stays out of the run the other tests read.
    copy_dir = tmp_path / 'run_copy'
    copy_dir.mkdir()
    shutil.copy(evaluated[0]['protocol']['checkpoint'], copy_dir)
    config = parse_config(run, [f"Config.checkpoint_dir = '{copy_dir}'",
                                'Config.eval_save_output = False', 'Config.eval_dataset_limit = 1'])
    missing = str(tmp_path / 'no_weights.pt')
    result = eval_lib.evaluate(config, device='cpu', lpips_weights_path=missing)
    assert result['mean']['lpips_vgg'] is None and result['mean']['lpips_alex'] is None
    assert result['per_image'][0]['lpips_vgg'] is None
    assert 'python -m data_tools.lpips_weights' in result['protocol']['lpips']['note']
    assert missing in result['protocol']['lpips']['note']
    assert result['protocol']['lpips']['backbones'] == []
    assert result['protocol']['num_test_images'] == 1
    # Rendering is deterministic: the same checkpoint scores the same PSNR as the first run.
    assert result['per_image'][0]['psnr'] == evaluated[0]['per_image'][0]['psnr']


@pytest.mark.slow  # A fresh interpreter: about 15 s of imports and first-call set-up.
def test_eval_command_line(run, evaluated, tmp_path):
    """`python -m mipnerf360.eval --gin_configs=... --gin_bindings=...` as the Makefile calls it."""
    copy_dir = tmp_path / 'run_copy'
    copy_dir.mkdir()
    shutil.copy(evaluated[0]['protocol']['checkpoint'], copy_dir)
    bindings = TINY + [f"Config.data_dir = '{run['data_dir']}'",
                       f"Config.checkpoint_dir = '{copy_dir}'", 'Config.eval_dataset_limit = 1']
    env = {**os.environ, metrics.WEIGHTS_ENV_VAR: str(tmp_path / 'no_weights.pt')}
    out = subprocess.run(
        [sys.executable, '-m', 'mipnerf360.eval', f'--gin_configs={CONFIG_360}']
        + [f'--gin_bindings={b}' for b in bindings],
        cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    psnr = evaluated[0]['per_image'][0]['psnr']
    assert f'step {NUM_STEPS}, 1 test images: PSNR {psnr:.2f}' in out.stdout
    with open(copy_dir / 'test_preds' / f'metrics_{NUM_STEPS}.json') as f:
        assert json.load(f)['mean']['lpips_vgg'] is None


def test_eval_and_render_name_the_empty_checkpoint_dir(run, tmp_path):
    empty = str(tmp_path / 'no_run')
    config = parse_config(run, [f"Config.checkpoint_dir = '{empty}'"])
    with pytest.raises(FileNotFoundError, match=empty):
        eval_lib.evaluate(config, device='cpu')
    config = parse_config(run, [f"Config.checkpoint_dir = '{empty}'", 'Config.render_path = True'])
    with pytest.raises(FileNotFoundError, match=empty):
        render.render_video(config, device='cpu')


def test_render_needs_render_path(run):
    with pytest.raises(ValueError, match='Config.render_path=True'):
        render.render_video(parse_config(run), device='cpu')


@pytest.fixture(scope='module')
def rendered(run):
    """render_video()'s {key: video} of the 4-frame ellipse path."""
    gin.clear_config()
    config = parse_config(run, ['Config.render_path = True'])
    videos = render.render_video(config, device='cpu')
    gin.clear_config()
    return videos


def test_render_writes_videos(run, rendered):
    # 360.gin disables density normals: no normals video.
    assert sorted(rendered) == ['acc', 'color', 'distance_mean', 'distance_median']
    frames_dir = os.path.join(run['checkpoint_dir'], 'render', f'path_renders_step_{NUM_STEPS}')
    for key, video in rendered.items():
        assert os.path.dirname(video) == os.path.join(run['checkpoint_dir'], 'render')
        assert os.path.basename(video) == f'scene_tiny_path_renders_step_{NUM_STEPS}_{key}.mp4'
        frames = imageio.mimread(video)
        assert len(frames) == 4
        assert frames[0].shape == (48, 64, 3)
    # The color video shows the saved frames (up to h264's loss).
    frames = imageio.mimread(rendered['color'])
    for idx in range(4):
        png = utils.load_img(os.path.join(frames_dir, f'color_{idx:03d}.png'))
        assert np.abs(frames[idx].astype(np.float32) - png).mean() < 8
    # The path moves: consecutive frames differ.
    assert not np.array_equal(frames[0], frames[1])


def test_demo_summary_prints_metrics_and_paths(run, evaluated, rendered, capsys):
    assert demo_summary.main([run['checkpoint_dir']]) == 0
    out = capsys.readouterr().out
    mean = evaluated[0]['mean']
    assert f'PSNR {mean["psnr"]:.2f}' in out
    assert f'LPIPS (VGG) {mean["lpips_vgg"]:.3f}' in out
    assert f'checkpoint_{NUM_STEPS:08d}.pt' in out
    assert rendered['color'] in out
    assert os.path.join(run['checkpoint_dir'], 'test_preds', f'metrics_{NUM_STEPS}.json') in out
    assert os.path.join(run['checkpoint_dir'], 'test_preds', 'sheets', 'summary.png') in out


def test_demo_summary_without_metrics_fails(tmp_path, capsys):
    assert demo_summary.main([str(tmp_path)]) == 1
    assert 'make eval-mipnerf360' in capsys.readouterr().out


def test_protocol_defaults_match_the_readme_table():
    """The `protocol` block eval writes at 360.gin equals the README's "Evaluation protocol" table."""
    with open(os.path.join(REPO, 'mipnerf360', 'README.md')) as f:
        readme = f.read()
    section = readme.split('## Evaluation protocol')[1].split('\n## ')[0]
    rows = re.findall(r'^\| `([\w.]+)` \| `(.+?)` \|', section, re.M)
    assert len(rows) == 8
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([CONFIG_360], [], skip_unknown=False)
        config = configs.Config()
    finally:
        gin.clear_config()
    protocol = eval_lib.protocol(config, 0, None, 0, {'vgg': None, 'alex': None}, None)
    for field, value in rows:
        actual = protocol
        for key in field.split('.'):
            actual = actual[key]
        assert actual == json.loads(value), field
