"""Config defaults, the published gin files and demo.gin, flags and load_config, image I/O.

The gin files are parsed in a subprocess that imports mipnerf alone: gin resolves the files'
`Config.x` by class name, which is ambiguous in a process that has also imported mipnerf360's Config.
"""

import dataclasses
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import torch
from absl import flags
from PIL import Image

from mipnerf.internal import utils

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(utils.__file__)))
CONFIG_DIR = os.path.join(PACKAGE_DIR, 'configs')

# Every field of google/mipnerf's Config (internal/utils.py at 84c969e) with its default.
ORIGINAL_DEFAULTS = {
    'dataset_loader': 'multicam', 'batching': 'all_images', 'batch_size': 4096, 'factor': 0,
    'spherify': False, 'render_path': False, 'llffhold': 8, 'lr_init': 5e-4, 'lr_final': 5e-6,
    'lr_delay_steps': 2500, 'lr_delay_mult': 0.01, 'grad_max_norm': 0., 'grad_max_val': 0.,
    'max_steps': 1000000, 'save_every': 100000, 'print_every': 100, 'gc_every': 10000,
    'test_render_interval': 1, 'disable_multiscale_loss': False, 'randomized': True, 'near': 2.,
    'far': 6., 'coarse_loss_mult': 0.1, 'weight_decay_mult': 0., 'white_bkgd': True,
}
PORT_DEFAULTS = {
    'checkpoint_keep': 100, 'use_tf32': True, 'use_bf16_autocast': False, 'use_compile': False,
    'nan_check': True, 'prefetch_batches': 3, 'grad_accum_steps': 1, 'data_on_device': None,
}
ORIGINAL_FILES = [
    'blender.gin', 'blender_noextras.gin', 'blender_noipe.gin', 'llff.gin', 'multiblender.gin',
    'multiblender_noextras.gin', 'multiblender_noipe.gin', 'multiblender_noloss.gin',
]

# Parses each gin file strictly (with load_config for one of them) and prints what it configures.
_PARSE_SCRIPT = r'''
import dataclasses, json, os, sys
import gin, torch
from absl import flags
from mipnerf.internal import models, utils

config_dir, names = sys.argv[1], sys.argv[2:]
out = {}
for name in names:
    gin.clear_config()
    gin.parse_config_file(os.path.join(config_dir, name))
    model = models.MipNerfModel()
    mlp = model.MLP_0
    out[name] = {
        'config': dataclasses.asdict(utils.Config()),
        'model': {k: getattr(model, k) for k in (
            'num_samples', 'num_levels', 'max_deg_point', 'ray_shape', 'density_noise',
            'density_bias', 'rgb_padding', 'disable_integration', 'use_viewdirs')},
        'density_at_minus_one': float(model.density_activation(torch.tensor(-1.))),
        'mlp': [len(mlp.pts_layers), mlp.pts_layers[0].out_features,
                mlp.condition_layers[0].out_features],
    }
gin.clear_config()
utils.define_common_flags()
flags.FLAGS(['prog', '--gin_file=configs/llff.gin', '--gin_param=Config.batch_size = 7',
             '--gin_param=MLP.net_depth = 2'])
config = utils.load_config()
out['load_config'] = [config.dataset_loader, config.batch_size, config.factor,
                      len(models.MipNerfModel().MLP_0.pts_layers)]
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def parsed():
    """{gin file: {'config', 'model', 'density_at_minus_one', 'mlp'}} and 'load_config'."""
    names = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith('.gin'))
    result = subprocess.run([sys.executable, '-c', _PARSE_SCRIPT, CONFIG_DIR, *names],
                            capture_output=True, text=True, cwd=os.path.dirname(PACKAGE_DIR))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def clean_gin():
    """Bindings other tests of this process have parsed would change Config's defaults."""
    gin.clear_config()
    yield
    gin.clear_config()


def test_config_defaults_are_the_originals():
    config = dataclasses.asdict(utils.Config())
    assert config == {**ORIGINAL_DEFAULTS, **PORT_DEFAULTS}
    # The original's fields come first, in its order; the port's are grouped at the end.
    assert list(config)[:len(ORIGINAL_DEFAULTS)] == list(ORIGINAL_DEFAULTS)


def test_every_original_config_file_is_ported():
    assert sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith('.gin')) == sorted(
        ORIGINAL_FILES + ['demo.gin'])


def _changed(entry):
    """{Config field: value} where a parsed file differs from the defaults."""
    defaults = {**ORIGINAL_DEFAULTS, **PORT_DEFAULTS}
    return {k: v for k, v in entry['config'].items() if v != defaults[k]}


def test_dataset_bindings(parsed):
    blender = {'dataset_loader': 'blender', 'batching': 'single_image'}
    assert _changed(parsed['blender.gin']) == blender
    assert _changed(parsed['blender_noextras.gin']) == blender
    assert _changed(parsed['blender_noipe.gin']) == blender
    for name in ('multiblender.gin', 'multiblender_noextras.gin', 'multiblender_noipe.gin'):
        assert _changed(parsed[name]) == {}
    assert _changed(parsed['multiblender_noloss.gin']) == {'disable_multiscale_loss': True}
    assert _changed(parsed['llff.gin']) == {
        'dataset_loader': 'llff', 'white_bkgd': False, 'near': 0., 'far': 1., 'factor': 4}


def test_model_bindings(parsed):
    default = parsed['multiblender.gin']
    assert default['model'] == {
        'num_samples': 128, 'num_levels': 2, 'max_deg_point': 16, 'ray_shape': 'cone',
        'density_noise': 0., 'density_bias': -1., 'rgb_padding': 0.001,
        'disable_integration': False, 'use_viewdirs': True}
    assert default['density_at_minus_one'] == pytest.approx(np.log1p(np.exp(-1.)))
    assert default['mlp'] == [8, 256, 128]
    for name in ('blender_noextras.gin', 'multiblender_noextras.gin'):
        # @flax.nn.relu is torch's relu.
        assert parsed[name]['density_at_minus_one'] == 0.
        assert parsed[name]['model']['density_bias'] == 0.
        assert parsed[name]['model']['rgb_padding'] == 0.
    for name in ('blender_noipe.gin', 'multiblender_noipe.gin'):
        assert parsed[name]['model']['disable_integration'] is True
    llff = parsed['llff.gin']['model']
    assert (llff['ray_shape'], llff['density_noise'], llff['use_viewdirs']) == ('cylinder', 1., True)


def test_demo_is_small_multiscale(parsed):
    demo = parsed['demo.gin']
    assert demo['config']['dataset_loader'] == 'multicam'
    assert demo['config']['max_steps'] <= 5000 and demo['config']['batch_size'] <= 4096
    assert demo['model']['num_samples'] < 128 and demo['mlp'][:2] == [4, 128]


def test_load_config_reads_files_and_params(parsed):
    assert parsed['load_config'] == ['llff', 7, 4, 2]


def test_common_flags():
    utils.define_common_flags()
    utils.define_common_flags()  # a second call is harmless
    for name in ('gin_file', 'gin_param', 'train_dir', 'data_dir', 'chunk'):
        assert name in flags.FLAGS
    assert flags.FLAGS['chunk'].default == 8192


def test_save_images(tmp_path):
    img = torch.tensor([[[0., .5, 1.], [float('nan'), 2., -1.]]])
    utils.save_img_uint8(img, tmp_path / 'a.png')
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / 'a.png')),
                                  [[[0, 127, 255], [0, 255, 0]]])
    depth = torch.tensor([[1.5, float('nan')], [3., 4.25]])
    utils.save_img_float32(depth, tmp_path / 'd.tiff')
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / 'd.tiff')), [[1.5, 0.], [3., 4.25]])
