"""Adapter for the whole pixelNeRF training step: PixelNeRFTrainer.calc_losses, its losses and gradients."""

import types
from unittest import mock

import numpy as np
import torch
from pyhocon import ConfigFactory


def _state_dict(inputs):
    """{name: tensor} from the case's in_sd_<name> arrays."""
    return {k[len("sd_"):]: v for k, v in inputs.items() if k.startswith("sd_")}


def _trainer(case, inputs):
    """PixelNeRFTrainer on the case's net, renderer and settings; the base Trainer's set-up (data
    loaders, logs, optimiser, checkpoints) is replaced by storing net and args only."""
    from inerf.src.model import make_model
    from inerf.src.render import NeRFRenderer
    from inerf.train import trainlib
    from inerf.train.train import PixelNeRFTrainer

    s = case["static"]
    conf = ConfigFactory.from_dict(s["conf"])
    net = make_model(conf["model"])
    # strict=False: the case stores only the encoder layers that run (resnet18 conv1/bn1 for num_layers=1)
    _, unexpected = net.load_state_dict(_state_dict(inputs), strict=False)
    assert not unexpected, unexpected
    renderer = NeRFRenderer.from_conf(conf["renderer"], lindisp=s["lindisp"])
    dset = types.SimpleNamespace(z_near=s["z_near"], z_far=s["z_far"], lindisp=s["lindisp"])
    args = types.SimpleNamespace(nviews=s["nviews"], ray_batch_size=s["ray_batch_size"],
                                 no_bbox_step=s["no_bbox_step"], grad_accum_steps=1, gpu_id=[0],
                                 batch_size=inputs["images"].shape[0], resume=False,
                                 checkpoints_path="unused", name="golden")

    def bare_init(self, net, train_dataset, test_dataset, args, conf, device=None):
        self.net, self.args = net, args

    with mock.patch.object(trainlib.Trainer, "__init__", bare_init):
        trainer = PixelNeRFTrainer(net, renderer, dset, dset, args, conf, torch.device("cpu"))
    return trainer, net, renderer


def _calc_losses(case, inputs, function):
    """Seeded calc_losses on {images, poses, focal} in train mode; the loss dict and every grad_<param>."""
    s = case["static"]
    trainer, net, renderer = _trainer(case, inputs)
    net.train()
    renderer.eval()
    net.zero_grad(set_to_none=True)
    data = {name: inputs[name] for name in ("images", "poses", "focal")}
    torch.manual_seed(s["torch_seed"])
    np.random.seed(s["numpy_seed"])
    with torch.enable_grad():
        losses = function(trainer, data, is_train=s["is_train"], global_step=s["global_step"])
    params = dict(net.named_parameters())
    outputs = {name: torch.as_tensor(losses[name]) for name in ("rc", "rf", "t") if name in case["outputs"]}
    for name in case["outputs"]:
        if name.startswith("grad_"):
            p = params[name[len("grad_"):]]
            outputs[name] = torch.zeros_like(p) if p.grad is None else p.grad
    return outputs


ADAPTERS = {
    "inerf.train.train:PixelNeRFTrainer.calc_losses": _calc_losses,
}
