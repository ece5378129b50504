"""mipnerf360.scripts.convert_flax_checkpoint: multinerf msgpack checkpoints -> this port's checkpoints.

No JAX or flax here: the checkpoint files are written by data_tools.flax_checkpoints.msgpack_serialize
(flax's format; its reader is tested on bytes flax itself wrote in tests/common/test_flax_checkpoints.py).
"""

import os
import sys

import numpy as np
import pytest
import torch

from common import checkpoints
from data_tools import flax_checkpoints
from mipnerf360.internal import configs, train_utils
from mipnerf360.scripts import convert_flax_checkpoint as convert

CONFIG_360 = os.path.join(os.path.dirname(configs.__file__), '..', 'configs', '360.gin')
TINY = [
    'PropMLP.net_depth = 2', 'PropMLP.net_width = 16',
    'NerfMLP.net_depth = 2', 'NerfMLP.net_width = 32', 'NerfMLP.bottleneck_width = 16',
    'NerfMLP.net_width_viewdirs = 16', 'NerfMLP.max_deg_point = 4', 'PropMLP.max_deg_point = 4',
]

def setup(bindings=(), seed=0):
    """The port's model and TrainState for 360.gin + TINY (+ bindings)."""
    import gin
    gin.clear_config()
    gin.parse_config_files_and_bindings([CONFIG_360], TINY + list(bindings))
    config = configs.Config()
    model, state, _, _, _ = train_utils.setup_model(config, torch.Generator().manual_seed(seed))
    return config, model, state


def flax_tree(model, rng, step=12):
    """A multinerf TrainState tree for `model`'s layout with random params and Adam moments."""
    shapes = {}
    params = dict(model.named_parameters())
    for name, path in model.flax_names().items():
        shape = tuple(params[name].shape)
        shapes[path] = shape[::-1] if path.endswith('/kernel') else shape
    draw = lambda positive=False: flax_checkpoints.nest({
        p: (np.abs if positive else np.asarray)(rng.normal(size=s)).astype(np.float32)
        for p, s in shapes.items()})
    return {
        'step': step,
        'params': {'params': draw()},
        'opt_state': {'0': {'count': np.array(step, np.int32), 'mu': {'params': draw()},
                            'nu': {'params': draw(positive=True)}},
                      '1': {'count': np.array(step, np.int32)}},
    }


def test_round_trip_through_train_checkpoint(tmp_path):
    config, model, state = setup()
    tree = flax_tree(model, np.random.default_rng(0))
    src = tmp_path / 'multinerf'
    src.mkdir()
    (src / 'checkpoint_5').write_bytes(flax_checkpoints.msgpack_serialize(dict(tree, step=5)))  # Older: not the one read.
    (src / 'checkpoint_12').write_bytes(flax_checkpoints.msgpack_serialize(tree))
    out = tmp_path / 'port'
    import gin
    gin.clear_config()  # main parses the gin files as the command line does.
    convert.main([str(src), str(out), f'--gin_configs={CONFIG_360}'] +
                 [f'--gin_bindings={b}' for b in TINY])
    assert os.path.exists(checkpoints.checkpoint_path(str(out), 12))

    # train.py's own restore reads it: parameters, Adam moments and step.
    config = configs.Config(**{**config.__dict__, 'checkpoint_dir': str(out)})
    _, model, state = setup(seed=3)
    assert train_utils.restore_checkpoint(config, state) is not None
    assert state.step == 12
    flat = flax_checkpoints.flatten_tree(tree['params']['params'])
    mu = flax_checkpoints.flatten_tree(tree['opt_state']['0']['mu']['params'])
    nu = flax_checkpoints.flatten_tree(tree['opt_state']['0']['nu']['params'])
    names = model.flax_names()
    for name, p in model.named_parameters():
        path = names[name]
        layout = (lambda a: a.T) if path.endswith('/kernel') else (lambda a: a)
        np.testing.assert_array_equal(p.detach().numpy(), layout(flat[path]))
        adam = state.optimizer.state[p]
        np.testing.assert_array_equal(adam['exp_avg'].numpy(), layout(mu[path]))
        np.testing.assert_array_equal(adam['exp_avg_sq'].numpy(), layout(nu[path]))
        assert float(adam['step']) == 12


def test_npz_of_parameters(tmp_path):
    _, model, _ = setup()
    tree = flax_tree(model, np.random.default_rng(1))
    flat = flax_checkpoints.flatten_tree(tree['params'])  # 'params/NerfMLP_0/...': a prefix is allowed.
    np.savez(tmp_path / 'params.npz', **flat)
    state_dict = convert.convert(convert.read_checkpoint(str(tmp_path / 'params.npz')),
                                 configs.Config())
    assert state_dict['step'] == 0
    w = state_dict['model']['NerfMLP_0.pts_layers.0.weight']
    np.testing.assert_array_equal(w.numpy(), flat['params/NerfMLP_0/Dense_0/kernel'].T)

    # A whole flattened TrainState: the Adam moments and the step come along.
    np.savez(tmp_path / 'state.npz', **flax_checkpoints.flatten_tree(tree))
    state_dict = convert.convert(convert.read_checkpoint(str(tmp_path / 'state.npz')),
                                 configs.Config())
    assert state_dict['step'] == 12
    mu = tree['opt_state']['0']['mu']['params']['NerfMLP_0']['Dense_0']['kernel']
    index = list(state_dict['model']).index('NerfMLP_0.pts_layers.0.weight')
    np.testing.assert_array_equal(state_dict['optimizer']['state'][index]['exp_avg'].numpy(), mu.T)


@pytest.mark.parametrize('damage', ['shape', 'missing', 'unknown'])
def test_key_and_shape_checked(tmp_path, damage):
    config, model, _ = setup()
    tree = flax_tree(model, np.random.default_rng(2))
    layer = tree['params']['params']['NerfMLP_0']
    if damage == 'shape':
        layer['Dense_0']['kernel'] = layer['Dense_0']['kernel'][:-1]
    elif damage == 'missing':
        del layer['Dense_1']
    else:
        layer['Dense_99'] = layer['Dense_0']
    with pytest.raises(ValueError, match='Dense_'):
        convert.convert(flax_checkpoints.msgpack_restore(flax_checkpoints.msgpack_serialize(tree)), config)


def test_folder_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        convert.read_checkpoint(str(tmp_path))


def test_orbax_folder_needs_orbax_or_an_export(tmp_path, monkeypatch):
    # Newer flax writes checkpoint_<step>/ folders with orbax metadata instead of msgpack files.
    (tmp_path / 'checkpoint_4').mkdir()
    (tmp_path / 'checkpoint_4' / '_METADATA').write_text('{}')
    monkeypatch.setitem(sys.modules, 'orbax', None)
    monkeypatch.setitem(sys.modules, 'orbax.checkpoint', None)
    with pytest.raises(ImportError, match='orbax') as error:
        convert.read_checkpoint(str(tmp_path))
    assert flax_checkpoints.EXPORT_SNIPPET in str(error.value)


def test_adam_moments_of_an_orbax_restore(tmp_path):
    # orbax restores optax's chain state as a list, msgpack as {'0': ..., '1': ...}.
    config, model, _ = setup()
    tree = flax_tree(model, np.random.default_rng(3))
    tree['opt_state'] = [tree['opt_state']['0'], tree['opt_state']['1']]
    state_dict = convert.convert(tree, config)
    index = list(state_dict['model']).index('PropMLP_0.pts_layers.1.weight')
    mu = tree['opt_state'][0]['mu']['params']['PropMLP_0']['Dense_1']['kernel']
    np.testing.assert_array_equal(state_dict['optimizer']['state'][index]['exp_avg'].numpy(), mu.T)
