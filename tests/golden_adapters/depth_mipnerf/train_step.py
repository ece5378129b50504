"""Adapter for depth_mipnerf's whole training step (depth_mipnerf.train:backward_batch)."""

import types

import torch

from depth_mipnerf.datasets.datasets import Rays
from depth_mipnerf.models import loss
from depth_mipnerf.models.mip_nerf import MipNerf

_PREFIX = "MipNerf."


def _backward_batch(case, inputs, function):
    """MipNerf(static 'MipNerf.<kwarg>') with the state dict in_params_<name>, MSELoss(static by key name);
    function(model, loss_fn, rays, rgbs, eps, sections, grad_accum_steps) with gradients on (torch's
    generator seeded with static torch_seed first, if the case has one). Returns the
    losses of the batch's pieces, ret_<key> of a forward on the same rays, grad_<name> of the parameters."""
    static = case["static"]
    model = MipNerf(**{k[len(_PREFIX):]: v for k, v in static.items() if k.startswith(_PREFIX)})
    model.load_state_dict({k[len("params_"):]: v for k, v in inputs.items() if k.startswith("params_")})
    model.train()
    loss_fn = loss.MSELoss(static)
    rays = Rays(*[inputs[f"rays_{field}"] for field in Rays._fields])
    sections = {"train": types.SimpleNamespace(randomized=static["randomized"], white_bkgd=static["white_bkgd"]),
                "nerf": types.SimpleNamespace(compute_density_normals=static["compute_density_normals"])}
    seed = static.get("torch_seed")
    if seed is not None:
        torch.manual_seed(seed)
    with torch.enable_grad():
        pieces = function(model, loss_fn, rays, inputs["rgbs"], static["eps"], sections,
                          static.get("grad_accum_steps", 1))
    out = dict(loss_fn.combine(pieces))
    if seed is not None:
        torch.manual_seed(seed)
    ret = model(rays, static["randomized"], static["white_bkgd"], static["compute_density_normals"],
                static["eps"], zero_glo=False)
    out.update({f"ret_{k}": v for k, v in ret.items()})
    out.update({f"grad_{k}": p.grad for k, p in model.named_parameters() if p.grad is not None})
    return out


ADAPTERS = {
    "depth_mipnerf.train:backward_batch": _backward_batch,
}
