"""Converts a google/mipnerf (JAX/flax) checkpoint into a torch state dict of MipNerfModel.

    python -m mipnerf.scripts.convert_flax_checkpoint IN OUT [--gin_file F.gin] [--gin_param B]

IN is one of
  - a checkpoint written by the original train.py (`flax.training.checkpoints`, msgpack), or the
    folder of them (the newest `checkpoint_<step>` is read): its tree {'optimizer': {'target':
    {'params': {'MLP_0': {'Dense_0': {'kernel', 'bias'}, ...}}}, 'state': ...}} is decoded without
    JAX or flax (data_tools.flax_checkpoints; orbax folders of newer flax need orbax-checkpoint);
  - an .npz of the flattened parameters, keys such as 'MLP_0/Dense_0/kernel' (any prefix, e.g.
    'params/', is allowed), as data_tools.flax_checkpoints.EXPORT_SNIPPET writes one where flax runs.
OUT is the model's state_dict saved with torch.save; read it with torch.load(OUT,
weights_only=True). The model's layout comes from gin (default: the paper's 8x256 MLP with a
128-wide condition layer, which every config of the release uses); pass the gin files the
checkpoint was trained with if they change MipNerfModel or MLP.
"""

import argparse
import re

import gin
import torch

from data_tools import flax_checkpoints
from mipnerf.internal import models

# A parameter leaf; the `$` leaves out the Adam moments stored under it ('.../kernel/grad_ema').
_PARAM_PATH = re.compile(r'(?:^|/)(MLP_0/Dense_\d+/(?:kernel|bias))$')


def flax_params(flat):
    """{'MLP_0/Dense_i/kernel' or '/bias': array} out of flattened checkpoint paths."""
    return flax_checkpoints.flax_params(flat, _PARAM_PATH, 'MLP_0/Dense_<i>/{kernel,bias}')


def read_flax_checkpoint(path):
    """The flax parameters of a checkpoint (folder, msgpack file, orbax folder or .npz):
    {'MLP_0/Dense_i/kernel': array}."""
    return flax_params(flax_checkpoints.flatten_tree(flax_checkpoints.read_checkpoint(path)))


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
