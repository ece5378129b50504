"""Adapters for mipnerf.train cases: a whole training step's loss, stats and gradients."""

import dataclasses

import torch

from mipnerf.internal import utils
from tests.golden_adapters.mipnerf.models import build_model, load_params, rays_of


def _model_config_batch(case, inputs):
    """The case's MipNerfModel (static constructor values, stored flax weights), its train Config
    (the static `Config.*` values) and its batch {pixels, rays}."""
    static = case["static"]
    config_fields = {f.name for f in dataclasses.fields(utils.Config)}
    config = utils.Config(**{k[len("Config."):]: v for k, v in static.items()
                             if k.startswith("Config.") and k[len("Config."):] in config_fields})
    model = load_params(build_model(
        {k: v for k, v in static.items() if not k.startswith("Config.")}), inputs)
    batch = {"pixels": inputs["pixels"], "rays": rays_of(inputs)}
    return model, config, batch


def _flax_gradients(model):
    """{grad_<flax path with _>: .grad} of every parameter, in the flax layout (kernel [in, out])."""
    grads = {}
    params = dict(model.named_parameters())
    for torch_name, flax_name in model.flax_names().items():
        grad = params[torch_name].grad
        if flax_name.endswith("/kernel"):
            grad = grad.T  # torch weights are [out, in], flax kernels [in, out].
        grads["grad_" + flax_name.replace("/", "_")] = grad
    return grads


def _loss_and_gradients(case, inputs, function):
    """loss_fn on the case's batch; its stats and d loss / d parameter."""
    model, config, batch = _model_config_batch(case, inputs)
    with torch.enable_grad():  # The harness calls adapters under no_grad.
        loss, stats = function(model, config, None, batch)
        loss.backward()
    return {**stats, **_flax_gradients(model)}


def _step_stats_and_gradients(case, inputs, function):
    """train_step on the case's batch with a zero learning rate; its stats and the (clipped)
    gradients the optimizer received."""
    model, config, batch = _model_config_batch(case, inputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.)
    with torch.enable_grad():
        stats = function(model, config, None, optimizer, batch, 0.)
    return {**stats, **_flax_gradients(model)}


ADAPTERS = {
    "mipnerf.train:loss_fn": _loss_and_gradients,
    "mipnerf.train:train_step": _step_stats_and_gradients,
}
