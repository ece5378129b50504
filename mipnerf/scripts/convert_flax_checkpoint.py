"""Converts a google/mipnerf (JAX/flax) checkpoint into a torch state dict of MipNerfModel.

    python -m mipnerf.scripts.convert_flax_checkpoint IN OUT [--gin_file F.gin] [--gin_param B]

IN is one of
  - a checkpoint written by the original train.py (`flax.training.checkpoints`, msgpack): its
    tree {'optimizer': {'target': {'params': {'MLP_0': {'Dense_0': {'kernel', 'bias'}, ...}}},
    'state': ...}} is read with flax.serialization.msgpack_restore, so flax must be installed;
  - an .npz of the flattened parameters, keys such as 'MLP_0/Dense_0/kernel' (any prefix, e.g.
    'params/', is allowed). Where flax is installed, write one from a checkpoint with
        tree = flax.serialization.msgpack_restore(open(ckpt, 'rb').read())
        flat = flax.traverse_util.flatten_dict(tree['optimizer']['target'], sep='/')
        numpy.savez('params.npz', **flat)
OUT is the model's state_dict saved with torch.save; read it with torch.load(OUT,
weights_only=True). The model's layout comes from gin (default: the paper's 8x256 MLP with a
128-wide condition layer, which every config of the release uses); pass the gin files the
checkpoint was trained with if they change MipNerfModel or MLP.
"""

import argparse
import re

import gin
import numpy as np
import torch

from mipnerf.internal import models

# A parameter leaf; the `$` leaves out the Adam moments stored under it ('.../kernel/grad_ema').
_PARAM_PATH = re.compile(r'(?:^|/)(MLP_0/Dense_\d+/(?:kernel|bias))$')


def flatten_tree(tree, prefix=''):
    """{'a': {'b': leaf}} -> {'a/b': leaf}: the '/'-joined paths of a nested dict's leaves."""
    flat = {}
    for key, value in tree.items():
        path = f'{prefix}/{key}' if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_tree(value, path))
        else:
            flat[path] = value
    return flat


def flax_params(flat):
    """{'MLP_0/Dense_i/kernel' or '/bias': array} out of flattened checkpoint paths."""
    params = {}
    for path, value in flat.items():
        match = _PARAM_PATH.search(path)
        if match is None:
            continue
        if match[1] in params:
            raise ValueError(f'{match[1]} appears twice in the checkpoint (second at {path})')
        params[match[1]] = np.asarray(value)
    if not params:
        raise ValueError('no MLP_0/Dense_<i>/{kernel,bias} parameters in the checkpoint')
    return params


def read_flax_checkpoint(path):
    """The flax parameters of a msgpack checkpoint or an .npz: {'MLP_0/Dense_i/kernel': array}."""
    if path.endswith('.npz'):
        with np.load(path) as arrays:
            return flax_params(dict(arrays))
    try:
        from flax import serialization
    except ImportError as e:
        raise ImportError(
            f'{path} is not an .npz, so it is read as a flax msgpack checkpoint, which needs flax '
            '(pip install flax); or export its parameters to an .npz (see this module\'s doc)'
        ) from e
    with open(path, 'rb') as f:
        return flax_params(flatten_tree(serialization.msgpack_restore(f.read())))


def convert(params, model):
    """The state dict of `model` holding the flax parameters {'MLP_0/Dense_i/kernel': array}."""
    models.load_flax_params(model, params)
    return model.state_dict()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='flax msgpack checkpoint, or .npz of flattened parameters')
    parser.add_argument('output', help='torch state dict to write')
    parser.add_argument('--gin_file', action='append', default=[], help='gin config file(s)')
    parser.add_argument('--gin_param', action='append', default=[], help='gin binding(s)')
    args = parser.parse_args(argv)
    gin.parse_config_files_and_bindings(args.gin_file, args.gin_param)
    state_dict = convert(read_flax_checkpoint(args.input), models.MipNerfModel())
    torch.save(state_dict, args.output)
    print(f'wrote {len(state_dict)} tensors to {args.output}')


if __name__ == '__main__':
    main()
