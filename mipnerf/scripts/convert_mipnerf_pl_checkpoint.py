"""Converts a hjxwhy/mipnerf_pl (PyTorch Lightning) checkpoint into a state dict of MipNerfModel.

    python -m mipnerf.scripts.convert_mipnerf_pl_checkpoint IN.ckpt OUT.pt

mipnerf_pl's MipNeRFSystem keeps its model as `mip_nerf`, whose single MLP `mlp` has the layers
of google/mipnerf under other names; the weights are already torch's [out, in]. Its lego.yaml
model is the paper's, which is also MipNerfModel's default. OUT is read with torch.load(OUT,
weights_only=True).
"""

import argparse
import pickle
import re

import torch

# mipnerf_pl name (after the `mip_nerf.` prefix) -> ours. Its trunk and condition layers are
# Sequential(Linear, ReLU), hence the `.0`; its `extra_layer` is the bottleneck.
_RENAMES = [
    (re.compile(r'mlp\.layers\.(\d+)\.0\.(weight|bias)'), r'MLP_0.pts_layers.\1.\2'),
    (re.compile(r'mlp\.density_layer\.(weight|bias)'), r'MLP_0.density_layer.\1'),
    (re.compile(r'mlp\.extra_layer\.(weight|bias)'), r'MLP_0.bottleneck_layer.\1'),
    (re.compile(r'mlp\.view_layers\.(\d+)\.0\.(weight|bias)'), r'MLP_0.condition_layers.\1.\2'),
    (re.compile(r'mlp\.color_layer\.(weight|bias)'), r'MLP_0.rgb_layer.\1'),
]


def load_mipnerf_pl_state_dict(state_dict):
    """Our MipNerfModel state dict from a mipnerf_pl one ('mip_nerf.mlp.layers.0.0.weight', ...).

    Accepts the Lightning module's keys (prefix `mip_nerf.`) or those of its MipNerf alone."""
    ours = {}
    for name, value in state_dict.items():
        name = name.removeprefix('mip_nerf.')
        for pattern, replacement in _RENAMES:
            if pattern.fullmatch(name):
                ours[pattern.sub(replacement, name)] = value
                break
        else:
            raise ValueError(f'{name}: not a parameter of mipnerf_pl\'s MipNerf')
    return ours


def read_mipnerf_pl_checkpoint(path):
    """The `state_dict` of a Lightning checkpoint (or a bare state dict) read weights-only."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise RuntimeError(
            f'{path} holds objects that torch will not unpickle weights-only. If you trust the '
            "file, re-save its tensors with torch.save(torch.load(IN, weights_only=False)"
            "['state_dict'], OUT) and convert OUT.") from e
    return checkpoint.get('state_dict', checkpoint)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help='mipnerf_pl Lightning checkpoint (.ckpt) or state dict')
    parser.add_argument('output', help='torch state dict to write')
    args = parser.parse_args(argv)
    state_dict = load_mipnerf_pl_state_dict(read_mipnerf_pl_checkpoint(args.input))
    torch.save(state_dict, args.output)
    print(f'wrote {len(state_dict)} tensors to {args.output}')


if __name__ == '__main__':
    main()
