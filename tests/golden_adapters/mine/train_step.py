"""Adapter for the mine whole-training-step cases: SynthesisTask losses of one batch and every gradient."""

import logging

import torch

from mine.synthesis_task import SynthesisTask
from tests.golden_adapters.mine.cases import fill_module

SRC_KEYS = {"img": "src_img", "K": "src_K", "K_inv": "src_K_inv", "xyzs": "src_xyzs", "disparity": "disparity"}
TGT_KEYS = {"img": "tgt_img", "K": "tgt_K", "K_inv": "tgt_K_inv", "G_src_tgt": "tgt_G_src_tgt", "xyzs": "tgt_xyzs"}


def _sample_index(numel, samples):
    """The stored entries: all when numel <= samples, else floor(frac((j + 1) * golden ratio) * numel), j < samples."""
    if numel <= samples:
        return torch.arange(numel)
    j = torch.arange(1, samples + 1, dtype=torch.float64)
    return torch.floor(torch.remainder(j * 0.6180339887498949, 1.0) * numel).long()


def _is_zero_grad(key):
    """A ConvBlock conv's bias: a train-mode BatchNorm follows it, so its exact gradient is 0."""
    return key.startswith("decoder.convs.") and key.endswith(".conv.conv.bias")


def _train_step(case, inputs, function):
    """SynthesisTask(static.config) on the CPU with the case's deterministic weights, train mode;
    set_data with the stored batch (its fixed plane disparities as src_items["disparity"]);
    loss_fcn(is_val=False); backward. -> the losses, the gradient samples (of each gradient's direction g/|g|)
    and log norms the case names (see the case's notes)."""
    static = case["static"]
    task = SynthesisTask(dict(static["config"]), logging.getLogger("mine.golden"), is_val=False, device="cpu")
    modules = {"backbone": task.backbone, "decoder": task.decoder}
    for name, module in modules.items():
        assert sorted(module.state_dict()) == static["state_dict_keys_sorted"][name], name
        fill_module(module)
        module.train()
    task.set_data(({k: inputs[v] for k, v in SRC_KEYS.items()}, {k: inputs[v] for k, v in TGT_KEYS.items()}))
    with torch.enable_grad():
        loss_dict, _ = function(task, is_val=False)
        loss_dict["loss"].backward()

    params = {f"{m}.{k}": p for m, module in modules.items() for k, p in module.named_parameters()}
    assert [k for k, p in params.items() if p.grad is None] == static["grad_none_keys"]
    outputs = {k: v.detach() for k, v in loss_dict.items()}
    log_norms = []
    for key in static["grad_keys"]:
        g = params[key].grad.double().reshape(-1)
        sample = g[_sample_index(g.numel(), static["grad_samples"])]
        if _is_zero_grad(key):
            outputs[f"grad_{key}"] = sample
            continue
        outputs[f"grad_{key}"] = sample / g.norm()
        log_norms.append(torch.log(g.norm()))
    outputs["grad_log_norms"] = torch.stack(log_norms)
    return {name: outputs[name] for name in case["outputs"]}


ADAPTERS = {"mine.synthesis_task:SynthesisTask.loss_fcn": _train_step}
