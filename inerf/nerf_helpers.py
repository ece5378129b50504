# Derived from salykovaa/inerf (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
# and yenchenlin/nerf-pytorch (MIT licence, Copyright (c) 2020 bmild; see THIRD_PARTY_NOTICES.md).
"""NeRF MLP, positional encoding and checkpoint loading in nerf-pytorch's layout (salykovaa/inerf).

Checkpoints are nerf-pytorch's dicts: network_fn_state_dict, network_fine_state_dict (None without a
fine network), optimizer_state_dict, global_step. A `.tar` written by nerf-pytorch loads unchanged.
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import checkpoints
from common import device as device_utils


class Embedder:
    """Positional encoding gamma(p) = [p, sin(2^0 p), cos(2^0 p), ..., cos(2^(L-1) p)] (NeRF eq. 4)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.create_embedding_fn()

    def create_embedding_fn(self):
        """Sets freq_bands and out_dim from the kwargs."""
        d = self.kwargs['input_dims']
        max_freq, n_freqs = self.kwargs['max_freq_log2'], self.kwargs['num_freqs']
        if self.kwargs['log_sampling']:
            self.freq_bands = 2. ** torch.linspace(0., max_freq, steps=n_freqs)
        else:
            self.freq_bands = torch.linspace(2. ** 0., 2. ** max_freq, steps=n_freqs)
        n_fns = len(self.kwargs['periodic_fns'])
        self.out_dim = d * (int(self.kwargs['include_input']) + n_fns * n_freqs)

    def embed(self, inputs):
        """inputs [..., d] -> [..., out_dim], ordered (input, then per frequency each periodic fn)."""
        if self.freq_bands.device != inputs.device or self.freq_bands.dtype != inputs.dtype:
            self.freq_bands = self.freq_bands.to(inputs)  # once per device, not every call
        freqs = self.freq_bands
        scaled = inputs[..., None, :] * freqs[:, None]
        parts = torch.stack([fn(scaled) for fn in self.kwargs['periodic_fns']], -2)
        parts = parts.reshape(*inputs.shape[:-1], -1)
        if self.kwargs['include_input']:
            parts = torch.cat([inputs, parts], -1)
        return parts


def get_embedder(multires, i=0):
    """(embed_fn, out_dim) of the 3-D positional encoding with `multires` octaves; i=-1: identity."""
    if i == -1:
        return nn.Identity(), 3
    embedder_obj = Embedder(include_input=True, input_dims=3, max_freq_log2=multires - 1,
                            num_freqs=multires, log_sampling=True, periodic_fns=[torch.sin, torch.cos])
    return embedder_obj.embed, embedder_obj.out_dim


class NeRF(nn.Module):
    """The NeRF MLP: D layers of width W with a skip after `skips`, optional view-dependent head."""

    def __init__(self, D=8, W=256, input_ch=3, input_ch_views=3, output_ch=4, skips=(4,),
                 use_viewdirs=False):
        super().__init__()
        self.D, self.W = D, W
        self.input_ch, self.input_ch_views = input_ch, input_ch_views
        self.skips = list(skips)
        self.use_viewdirs = use_viewdirs
        self.pts_linears = nn.ModuleList(
            [nn.Linear(input_ch, W)]
            + [nn.Linear(W + input_ch if i in self.skips else W, W) for i in range(D - 1)])
        # One view layer of width W/2, as in the official NeRF release (the paper describes more).
        self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W, W // 2)])
        if use_viewdirs:
            self.feature_linear = nn.Linear(W, W)
            self.alpha_linear = nn.Linear(W, 1)
            self.rgb_linear = nn.Linear(W // 2, 3)
        else:
            self.output_linear = nn.Linear(W, output_ch)

    def forward(self, x):
        """x [N, input_ch + input_ch_views] -> raw [N, 4] = (rgb logits, sigma before relu)."""
        input_pts, input_views = torch.split(x, [self.input_ch, self.input_ch_views], dim=-1)
        h = input_pts
        for i, layer in enumerate(self.pts_linears):
            h = F.relu(layer(h))
            if i in self.skips:
                h = torch.cat([input_pts, h], -1)
        if not self.use_viewdirs:
            return self.output_linear(h)
        alpha = self.alpha_linear(h)
        h = torch.cat([self.feature_linear(h), input_views], -1)
        for layer in self.views_linears:
            h = F.relu(layer(h))
        return torch.cat([self.rgb_linear(h), alpha], -1)


def batchify(fn, chunk):
    """fn applied to slices of `chunk` rows, concatenated (None: all at once)."""
    if chunk is None:
        return fn
    return lambda inputs: torch.cat([fn(inputs[i:i + chunk]) for i in range(0, inputs.shape[0], chunk)], 0)


def run_network(inputs, viewdirs, fn, embed_fn, embeddirs_fn, netchunk=1024 * 64):
    """Embeds points inputs [R, S, 3] (and viewdirs [R, 3]) and runs fn: raw [R, S, 4]."""
    inputs_flat = torch.reshape(inputs, [-1, inputs.shape[-1]])
    embedded = embed_fn(inputs_flat)
    if viewdirs is not None:
        input_dirs = viewdirs[:, None].expand(inputs.shape)
        embedded_dirs = embeddirs_fn(torch.reshape(input_dirs, [-1, input_dirs.shape[-1]]))
        embedded = torch.cat([embedded, embedded_dirs], -1)
    outputs_flat = batchify(fn, netchunk)(embedded)
    return torch.reshape(outputs_flat, list(inputs.shape[:-1]) + [outputs_flat.shape[-1]])


def create_nerf(args, device='cpu'):
    """Coarse and fine NeRF from args (Config fields of nerf-pytorch's names) and render kwargs.

    Returns (render_kwargs, models) with models = {'network_fn': .., 'network_fine': .. or None}.
    """
    embed_fn, input_ch = get_embedder(args.multires, args.i_embed)
    input_ch_views, embeddirs_fn = 0, None
    if args.use_viewdirs:
        embeddirs_fn, input_ch_views = get_embedder(args.multires_views, args.i_embed)
    # 5 outputs with a fine network, as nerf-pytorch (only 4 are used), so its checkpoints load.
    output_ch = 5 if args.N_importance > 0 else 4
    skips = [4]
    model = NeRF(D=args.netdepth, W=args.netwidth, input_ch=input_ch, output_ch=output_ch, skips=skips,
                 input_ch_views=input_ch_views, use_viewdirs=args.use_viewdirs).to(device)
    model_fine = None
    if args.N_importance > 0:
        model_fine = NeRF(D=args.netdepth_fine, W=args.netwidth_fine, input_ch=input_ch,
                          output_ch=output_ch, skips=skips, input_ch_views=input_ch_views,
                          use_viewdirs=args.use_viewdirs).to(device)

    def network_query_fn(inputs, viewdirs, network_fn):
        # Config.bf16: the MLP under autocast, its raw outputs back in float32 for compositing.
        with device_utils.autocast(device, enabled=args.bf16):
            raw = run_network(inputs, viewdirs, network_fn, embed_fn=embed_fn,
                              embeddirs_fn=embeddirs_fn, netchunk=args.netchunk)
        return raw.float()

    render_kwargs = {
        'network_query_fn': network_query_fn, 'perturb': args.perturb,
        'N_importance': args.N_importance, 'network_fine': model_fine, 'N_samples': args.N_samples,
        'network_fn': model, 'use_viewdirs': args.use_viewdirs, 'white_bkgd': args.white_bkgd,
        'raw_noise_std': args.raw_noise_std, 'lindisp': args.lindisp,
        'pixel_center': args.pixel_center,
        # NDC only for forward-facing LLFF scenes.
        'ndc': args.dataset_type == 'llff' and not args.no_ndc,
    }
    return render_kwargs, {'network_fn': model, 'network_fine': model_fine}


def find_checkpoint(ckpt_dir, model_name):
    """<ckpt_dir>/<model_name>.tar (salykovaa's layout), else the newest checkpoint of the run
    directory <ckpt_dir>/<model_name> (train_nerf's), else the newest *.tar there (nerf-pytorch's)."""
    tar = os.path.join(ckpt_dir, f'{model_name}.tar')
    if os.path.isfile(tar):
        return tar
    run_dir = os.path.join(ckpt_dir, model_name)
    latest = checkpoints.latest_checkpoint(run_dir)
    if latest is not None:
        return latest
    tars = sorted(f for f in os.listdir(run_dir) if f.endswith('.tar')) if os.path.isdir(run_dir) else []
    if tars:
        return os.path.join(run_dir, tars[-1])
    raise FileNotFoundError(f'no NeRF checkpoint for {model_name!r}: expected {tar}, or '
                            f'checkpoint_*.pt / *.tar in {run_dir}')


def load_nerf(args, device='cpu'):
    """Frozen coarse + fine NeRF from args.ckpt_dir / args.model_name: the render kwargs."""
    render_kwargs, models = create_nerf(args, device)
    path = find_checkpoint(args.ckpt_dir, args.model_name)
    ckpt = checkpoints.load_checkpoint(path, map_location=device)
    for key, name in (('network_fn_state_dict', 'network_fn'), ('network_fine_state_dict', 'network_fine')):
        if models[name] is None:
            continue
        if ckpt.get(key) is None:
            raise ValueError(f'{path}: {key} is missing, but the config asks for a {name} '
                             f'(N_importance={args.N_importance})')
        models[name].load_state_dict(ckpt[key])
    for model in models.values():
        if model is not None:
            model.requires_grad_(False)
            model.eval()
    return render_kwargs
