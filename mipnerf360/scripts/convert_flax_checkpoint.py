"""Converts a multinerf (JAX/flax) checkpoint into a checkpoint of this port's train.py.

    python -m mipnerf360.scripts.convert_flax_checkpoint IN OUT_DIR \
        --gin_configs=mipnerf360/configs/360.gin [--gin_bindings='...']

IN is one of
  - the checkpoint folder multinerf's train.py writes (Config.checkpoint_dir; its newest
    `checkpoint_<step>` is read) or one such checkpoint. They hold multinerf's TrainState:
    {'step', 'params': {'params': {'NerfMLP_0': {'Dense_0': {'kernel', 'bias'}, ...},
    'PropMLP_0': ...}}, 'opt_state': {'0': {'count', 'mu', 'nu'}, '1': ...}}. The flax of
    multinerf's time writes msgpack files, decoded here without JAX or flax (data_tools.flax_checkpoints,
    with the msgpack package). Newer flax writes orbax folders instead, read here with
    orbax-checkpoint when it is installed (it needs JAX); else export them to an .npz with
    data_tools.flax_checkpoints.EXPORT_SNIPPET, where multinerf runs;
  - an .npz of the flattened parameters, keys such as 'NerfMLP_0/Dense_0/kernel' (a prefix such
    as 'params/' is allowed), which converts the parameters only; or of a whole flattened
    TrainState (keys 'step', 'params/params/...', 'opt_state/0/mu/params/...', as
    flax.traverse_util.flatten_dict(flax.serialization.to_state_dict(state), sep='/') gives).
OUT_DIR receives `checkpoint_<step>.pt` in the format of common/checkpoints.py, as
mipnerf360/train.py writes it: {'state': {'model', 'optimizer', 'step'}, 'rng_state'}. With
Config.checkpoint_dir = OUT_DIR, train.py resumes from it and eval.py / render.py render it.
The Adam moments (optax mu and nu, its count) become torch Adam's exp_avg, exp_avg_sq and step,
which follow the same update rule, so training resumes where multinerf stopped.

The model's layout comes from the gin configs (pass those the checkpoint was trained with);
every parameter is key- and shape-checked against it.
"""

import argparse
import re

import gin
import numpy as np
import torch

from common import checkpoints
from data_tools import flax_checkpoints
from mipnerf360.internal import configs, models, train_utils

# A parameter leaf of the model; the `$` leaves out the Adam moments stored under other roots.
_PARAM_PATH = re.compile(r'(?:^|/)((?:NerfMLP_0|PropMLP_0)/Dense_\d+/(?:kernel|bias)'
                         r'|Embed_0/embedding|exposure_scaling_offsets/embedding)$')


def flax_params(flat):
    """{'NerfMLP_0/Dense_i/kernel': array, ...} out of flattened paths (any prefix)."""
    return flax_checkpoints.flax_params(flat, _PARAM_PATH, 'NerfMLP_0/... or PropMLP_0/...')


def read_checkpoint(path):
    """A multinerf checkpoint (folder, msgpack file, orbax folder or .npz) -> nested dict in the
    TrainState layout.

    An .npz of flattened parameter paths gives {'params': {...}} (no step, no optimizer state);
    one of a flattened TrainState ('step', 'params/params/...', 'opt_state/0/mu/...') gives it all.
    """
    tree = flax_checkpoints.read_checkpoint(path)
    return tree if 'params' in tree else {'params': tree}


def _adam_state(opt_state):
    """(count, {flax path: mu}, {flax path: nu}) of optax.adam's state, or None if absent."""
    # optax.chain's state: a tuple, stored as {'0': ..., '1': ...} (msgpack) or a list (orbax).
    if isinstance(opt_state, dict):
        opt_state = list(opt_state.values())
    if not isinstance(opt_state, (list, tuple)):
        return None
    for part in opt_state:
        if isinstance(part, dict) and {'count', 'mu', 'nu'} <= set(part):
            mu, nu = (flax_params(flax_checkpoints.flatten_tree(part[k])) for k in ('mu', 'nu'))
            return int(np.asarray(part['count'])), mu, nu
    return None


def _torch_layout(flax_name, value, like):
    """A flax leaf as the torch tensor of `like`'s shape (kernels transposed), shape-checked."""
    value = torch.as_tensor(np.array(value, dtype=np.float32))
    if flax_name.endswith('/kernel'):
        value = value.T
    if value.shape != like.shape:
        raise ValueError(f'{flax_name}: shape {tuple(value.shape)} does not fit '
                         f'{tuple(like.shape)}; check the gin config')
    return value


def convert(tree, config):
    """The port's TrainState.state_dict() for a multinerf checkpoint tree (see read_checkpoint).

    Builds the gin-configured model and Adam optimizer, loads the parameters (key- and
    shape-checked) and, when the tree holds them, the Adam moments and the step.
    """
    model, state, _, _, _ = train_utils.setup_model(config, None)
    params = flax_params(flax_checkpoints.flatten_tree(tree['params']))
    models.load_flax_params(model, params)
    state.step = int(np.asarray(tree.get('step', 0)))
    adam = _adam_state(tree.get('opt_state'))
    if adam is not None:
        count, mu, nu = adam
        names = model.flax_names()
        for key, moments in (('mu', mu), ('nu', nu)):
            if set(moments) != set(names.values()):
                raise ValueError(f'optimizer {key} does not hold exactly the model parameters')
        for torch_name, p in model.named_parameters():
            flax_name = names[torch_name]
            state.optimizer.state[p] = {
                'step': torch.tensor(float(count)),
                'exp_avg': _torch_layout(flax_name, mu[flax_name], p),
                'exp_avg_sq': _torch_layout(flax_name, nu[flax_name], p),
            }
    return state.state_dict()


def save(out_dir, state_dict):
    """Writes state_dict as train.py would: out_dir/checkpoint_<step>.pt. Returns the path."""
    payload = {'state': state_dict, 'rng_state': checkpoints.capture_rng_state()}
    return checkpoints.save_checkpoint(out_dir, state_dict['step'], payload, keep=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='multinerf checkpoint folder or file, or .npz of parameters')
    parser.add_argument('output', help='folder for checkpoint_<step>.pt')
    parser.add_argument('--gin_configs', action='append', default=[], help='gin config file(s)')
    parser.add_argument('--gin_bindings', action='append', default=[], help='gin binding(s)')
    args = parser.parse_args(argv)
    gin.parse_config_files_and_bindings(args.gin_configs, args.gin_bindings)
    state_dict = convert(read_checkpoint(args.input), configs.Config())
    path = save(args.output, state_dict)
    print(f'wrote step {state_dict["step"]} ({len(state_dict["model"])} tensors) to {path}')


if __name__ == '__main__':
    main()
