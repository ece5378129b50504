"""Checkpoint interchange: google/mipnerf flax parameters and hjxwhy/mipnerf_pl state dicts."""

import json
import pathlib
import re

import gin
import numpy as np
import pytest
import torch

from data_tools import flax_checkpoints
from mipnerf.internal import models, utils
from mipnerf.scripts import convert_flax_checkpoint as flax_convert
from mipnerf.scripts import convert_mipnerf_pl_checkpoint as pl_convert

GOLDEN = pathlib.Path(__file__).parents[1] / 'golden' / 'mipnerf'
CASE = 'models_mipnerf_forward_small.npz'
RAY_FIELDS = ('origins', 'directions', 'viewdirs', 'radii', 'lossmult', 'near', 'far')


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def golden_case():
    """The golden forward case: its gin bindings, flax parameters, rays and outputs."""
    case = next(c for c in json.loads((GOLDEN / 'manifest.json').read_text()) if c['case'] == CASE)
    arrays = np.load(GOLDEN / CASE)
    bindings = [f'mipnerf.internal.models.MLP.{k[4:]} = {v!r}'
                for k, v in case['static'].items() if k.startswith('MLP.')]
    bindings.append(f"mipnerf.internal.models.MipNerfModel.num_samples = {case['static']['num_samples']}")
    params = {}
    for name in arrays.files:
        if match := re.fullmatch(r'in_params_MLP_0_Dense_(\d+)_(kernel|bias)', name):
            params[f'MLP_0/Dense_{match[1]}/{match[2]}'] = arrays[name]
    rays = utils.Rays(**{f: torch.from_numpy(arrays[f'in_{f}']) for f in RAY_FIELDS})
    outputs = [torch.from_numpy(arrays[f'out_{n}']) for n in case['outputs']]
    return bindings, params, rays, outputs


def render(model, rays):
    """Every level's (rgb, distance, acc), deterministic, flattened."""
    with torch.no_grad():
        return [x for level in model(None, rays, False, True) for x in level]


def test_flax_npz_converts_to_a_weights_only_state_dict_that_reproduces_the_original(tmp_path):
    bindings, params, rays, outputs = golden_case()
    npz = tmp_path / 'params.npz'
    np.savez(npz, **{f'params/{k}': v for k, v in params.items()})
    out = tmp_path / 'model.pt'
    flax_convert.main([str(npz), str(out)] + [f'--gin_param={b}' for b in bindings])

    gin.clear_config()
    gin.parse_config(bindings)
    model = models.MipNerfModel()
    model.load_state_dict(torch.load(out, weights_only=True))
    for got, want in zip(render(model, rays), outputs):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_flax_train_state_tree_keeps_the_parameters_not_the_adam_moments():
    _, params, _, _ = golden_case()
    moments = {f'{k}/grad_ema': np.zeros_like(v) for k, v in params.items()}
    tree = {'optimizer': {
        'target': {'params': flax_checkpoints.nest(params)},
        'state': {'step': np.int64(5), 'param_states': {'params': flax_checkpoints.nest(moments)}}}}
    found = flax_convert.flax_params(flax_checkpoints.flatten_tree(tree))
    assert found.keys() == params.keys()
    for k in params:
        np.testing.assert_array_equal(found[k], params[k])


def test_flax_kernels_are_transposed_into_torch_weights():
    bindings, params, _, _ = golden_case()
    gin.parse_config(bindings)
    state_dict = flax_convert.convert(params, models.MipNerfModel())
    np.testing.assert_array_equal(
        state_dict['MLP_0.pts_layers.5.weight'].numpy(), params['MLP_0/Dense_5/kernel'].T)
    np.testing.assert_array_equal(
        state_dict['MLP_0.density_layer.bias'].numpy(), params['MLP_0/Dense_8/bias'])
    np.testing.assert_array_equal(
        state_dict['MLP_0.rgb_layer.weight'].numpy(), params['MLP_0/Dense_11/kernel'].T)


def test_flax_parameters_of_another_layout_are_refused():
    _, params, _, _ = golden_case()
    with pytest.raises(ValueError, match='Dense_0/kernel'):
        flax_convert.convert(params, models.MipNerfModel())  # The paper-size model.
    with pytest.raises(ValueError, match='missing'):
        flax_convert.convert({k: v for k, v in params.items() if 'Dense_11' not in k},
                             models.MipNerfModel())
    with pytest.raises(ValueError, match='no MLP_0'):
        flax_convert.flax_params({'params/Dense_0/kernel': np.zeros((2, 2))})


def test_flax_msgpack_train_state_converts_without_flax(tmp_path):
    """The original train.py's checkpoint folder (msgpack TrainState with Adam moments): the newest
    checkpoint_<step> is read, the parameters land in the model, and it renders the golden case."""
    bindings, params, rays, outputs = golden_case()
    moments = {f'{k}/grad_ema': np.zeros_like(v) for k, v in params.items()}
    tree = {'optimizer': {
        'target': {'params': flax_checkpoints.nest(params)},
        'state': {'step': np.int64(5), 'param_states': {'params': flax_checkpoints.nest(moments)}}}}
    (tmp_path / 'checkpoint_5').write_bytes(flax_checkpoints.msgpack_serialize(tree))
    (tmp_path / 'checkpoint_3').write_bytes(b'older')
    out = tmp_path / 'model.pt'
    flax_convert.main([str(tmp_path), str(out)] + [f'--gin_param={b}' for b in bindings])
    gin.clear_config()
    gin.parse_config(bindings)
    model = models.MipNerfModel()
    model.load_state_dict(torch.load(out, weights_only=True))
    for got, want in zip(render(model, rays), outputs):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_file_that_is_no_flax_checkpoint_is_named(tmp_path):
    path = tmp_path / 'checkpoint_1000000'
    path.write_bytes(b'\x80\x81')
    with pytest.raises(ValueError, match='checkpoint_1000000 is not a flax msgpack checkpoint'):
        flax_convert.read_flax_checkpoint(str(path))


# hjxwhy/mipnerf_pl (master bd88427), models/mip_nerf.py: MipNeRFSystem.mip_nerf = MipNerf(...),
# MipNerf.mlp = MLP(...) with `layers` (Sequential(Linear, ReLU) each; layer i > 1 with
# (i - 1) % skip_index == 0 takes net_width + xyz_dim), `density_layer`, `extra_layer`,
# `view_layers` (Sequential(Linear, ReLU) each; the first takes net_width + view_dim) and
# `color_layer`. xyz_dim = 6 (max_deg - min_deg), view_dim = 6 deg_view + 3.
PL = dict(net_depth=8, net_width=16, net_depth_condition=2, net_width_condition=8, skip_index=4,
          xyz_dim=6 * 5, view_dim=6 * 4 + 3)
OUR_BINDINGS = [
    'mipnerf.internal.models.MLP.net_width = 16',
    'mipnerf.internal.models.MLP.net_depth_condition = 2',
    'mipnerf.internal.models.MLP.net_width_condition = 8',
    'mipnerf.internal.models.MipNerfModel.max_deg_point = 5',
    'mipnerf.internal.models.MipNerfModel.num_samples = 6',
]


def mipnerf_pl_state_dict(seed=0):
    """A Lightning state dict with mipnerf_pl's exact names and shapes, random values."""
    g = torch.Generator().manual_seed(seed)
    shapes = {}
    w = PL['net_width']
    for i in range(PL['net_depth']):
        skip = (i - 1) % PL['skip_index'] == 0 and i > 1
        fan_in = PL['xyz_dim'] if i == 0 else w + (PL['xyz_dim'] if skip else 0)
        shapes[f'mlp.layers.{i}.0'] = (w, fan_in)
    shapes['mlp.density_layer'] = (1, w)
    shapes['mlp.extra_layer'] = (w, w)
    for i in range(PL['net_depth_condition']):
        fan_in = w + PL['view_dim'] if i == 0 else PL['net_width_condition']
        shapes[f'mlp.view_layers.{i}.0'] = (PL['net_width_condition'], fan_in)
    shapes['mlp.color_layer'] = (3, PL['net_width_condition'])
    state_dict = {}
    for name, (fan_out, fan_in) in shapes.items():
        state_dict[f'mip_nerf.{name}.weight'] = 0.3 * torch.randn(fan_out, fan_in, generator=g)
        state_dict[f'mip_nerf.{name}.bias'] = 0.1 * torch.randn(fan_out, generator=g)
    return state_dict


def mipnerf_pl_mlp(sd, x, view_direction):
    """mipnerf_pl's MLP.forward, written out on its state dict: (raw_rgb, raw_density)."""
    def linear(name, v):
        return torch.nn.functional.linear(v, sd[f'mip_nerf.{name}.weight'], sd[f'mip_nerf.{name}.bias'])

    inputs = x
    for i in range(PL['net_depth']):
        x = torch.relu(linear(f'mlp.layers.{i}.0', x))
        if i % PL['skip_index'] == 0 and i > 0:
            x = torch.cat([x, inputs], dim=-1)
    raw_density = linear('mlp.density_layer', x)
    view = view_direction[:, None, :].expand(-1, x.shape[1], -1)
    x = torch.cat([linear('mlp.extra_layer', x), view], dim=-1)
    for i in range(PL['net_depth_condition']):
        x = torch.relu(linear(f'mlp.view_layers.{i}.0', x))
    return linear('mlp.color_layer', x), raw_density


def test_mipnerf_pl_weights_land_in_the_layers_that_compute_the_same_mlp():
    sd = mipnerf_pl_state_dict()
    gin.parse_config(OUR_BINDINGS)
    model = models.MipNerfModel()
    model.load_state_dict(pl_convert.load_mipnerf_pl_state_dict(sd))  # strict: every name fits.
    x = torch.randn(4, 6, PL['xyz_dim'])
    view = torch.randn(4, PL['view_dim'])
    with torch.no_grad():
        for got, want in zip(model.MLP_0(x, view), mipnerf_pl_mlp(sd, x, view)):
            torch.testing.assert_close(got, want)


def test_mipnerf_pl_checkpoint_renders_as_with_directly_assigned_weights(tmp_path):
    sd = mipnerf_pl_state_dict(seed=1)
    ckpt = tmp_path / 'last.ckpt'
    torch.save({'epoch': 3, 'global_step': 1000, 'state_dict': sd,
                'hyper_parameters': {'nerf.mlp.net_width': 16}}, ckpt)
    out = tmp_path / 'model.pt'
    pl_convert.main([str(ckpt), str(out)])

    gin.parse_config(OUR_BINDINGS)
    converted = models.MipNerfModel()
    converted.load_state_dict(torch.load(out, weights_only=True))
    direct = models.MipNerfModel()
    mlp = direct.MLP_0
    layers = ([(f'mlp.layers.{i}.0', m) for i, m in enumerate(mlp.pts_layers)]
              + [('mlp.density_layer', mlp.density_layer), ('mlp.extra_layer', mlp.bottleneck_layer)]
              + [(f'mlp.view_layers.{i}.0', m) for i, m in enumerate(mlp.condition_layers)]
              + [('mlp.color_layer', mlp.rgb_layer)])
    with torch.no_grad():
        for name, layer in layers:
            layer.weight.copy_(sd[f'mip_nerf.{name}.weight'])
            layer.bias.copy_(sd[f'mip_nerf.{name}.bias'])
    rays = utils.Rays(**{
        'origins': torch.tensor([[0., 0., -4.], [0.5, 0., -4.]]),
        'directions': torch.tensor([[0., 0.1, 1.], [-0.1, 0., 1.]]),
        'viewdirs': torch.nn.functional.normalize(torch.tensor([[0., 0.1, 1.], [-0.1, 0., 1.]])),
        'radii': torch.full((2, 1), 1e-3), 'lossmult': torch.ones(2, 1),
        'near': torch.full((2, 1), 2.), 'far': torch.full((2, 1), 6.)})
    for got, want in zip(render(converted, rays), render(direct, rays)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_mipnerf_pl_foreign_names_are_refused():
    sd = mipnerf_pl_state_dict()
    sd['mip_nerf.depth_network.variance'] = torch.zeros(1)
    with pytest.raises(ValueError, match='depth_network'):
        pl_convert.load_mipnerf_pl_state_dict(sd)
