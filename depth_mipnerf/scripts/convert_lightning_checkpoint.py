"""Converts a checkpoint of the fork (PyTorch Lightning `.ckpt` of MipNeRFSystem) into a run folder
that eval.py and render_video.py read: config.gin from its saved hparams, checkpoint_<step>.pt.

    python -m depth_mipnerf.scripts.convert_lightning_checkpoint --ckpt last.ckpt --out_dir runs/lego_fork

The fork's hparams are its flattened yaml keys ('nerf.mlp.net_depth': 8, 'data_path': ...): each
becomes the gin binding of the same name (data_path -> Config.data_dir); keys this port does not
have (the argparse 'config' / 'opts', out_dir) are listed and skipped. Parameter names are the
fork's without the `mip_nerf.` prefix. The file is read with torch.load(weights_only=True).
"""

import argparse
import dataclasses
import os
import sys

import gin
import torch

from common import checkpoints
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.models import nerf_system

_TOP_LEVEL = {'data_path': 'data_dir'}


def hparams_to_bindings(hparams):
    """(gin bindings, skipped keys) of the fork's flat hparams dict."""
    fields = {f.name for f in dataclasses.fields(config_lib.Config)}
    sections = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in config_lib.SECTIONS.items()}
    bindings, skipped = [], []
    for key, value in hparams.items():
        section, _, name = key.rpartition('.')
        value = None if value == 'None' else value
        if not section and _TOP_LEVEL.get(key, key) in fields:
            bindings.append(f'Config.{_TOP_LEVEL.get(key, key)} = {value!r}')
        elif name in sections.get(section, ()):
            bindings.append(f'{section}.{name} = {value!r}')
        else:
            skipped.append(key)
    return bindings, skipped


def convert(ckpt_path, out_dir):
    """Writes out_dir/config.gin and checkpoint_<global_step>.pt; returns (path, skipped hparams)."""
    try:
        saved = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001 - the unpickler's errors have no common type
        raise ValueError(f'{ckpt_path}: not readable with torch.load(weights_only=True): {error}') from error
    if 'state_dict' not in saved or 'hyper_parameters' not in saved:
        raise ValueError(f'{ckpt_path}: not a Lightning checkpoint (no state_dict / hyper_parameters)')
    bindings, skipped = hparams_to_bindings(dict(saved['hyper_parameters']))
    gin.clear_config()
    _, sections = config_lib.parse([], bindings)
    model = nerf_system.build_model(sections)
    prefix = 'mip_nerf.'
    state = {k[len(prefix):]: v for k, v in saved['state_dict'].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'config.gin'), 'w') as f:
        f.write(gin.config_str())
    gin.clear_config()
    step = int(saved.get('global_step', 0))
    path = checkpoints.save_checkpoint(out_dir, step, {'step': step, 'model': model.state_dict()}, keep=None)
    return path, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--ckpt', required=True)
    parser.add_argument('--out_dir', required=True)
    args = parser.parse_args(argv)
    try:
        path, skipped = convert(args.ckpt, args.out_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    print(f'wrote {path} and config.gin' + (f'; skipped hparams: {", ".join(skipped)}' if skipped else ''))


if __name__ == '__main__':
    main()
