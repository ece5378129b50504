"""The trainer's step and the render path on an accelerator, checked without one.

A CPU-only machine cannot make CUDA tensors train (the autograd engine asks for the CUDA device
guard), so the model, the batches and the dataset's rays go to the `meta` device under
tests/device_discipline.py's stand-in accelerator: every torch call that mixes a CPU tensor with
a device tensor raises there, as CUDA would (or as CUDA would hide behind a copy), a random draw
with a generator of the wrong device raises, and every host sync is recorded. Meta tensors have
shapes, dtypes and autograd but no data, so a whole step (forward, every loss, backward, clip,
Adam, the LR schedule) runs in milliseconds; values are meaningless and are not checked here
(test_grad_accum.py and the claim check the numbers on the CPU).
"""

import types

import gin
import pytest
import torch

from depth_mipnerf import train
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import datasets
from depth_mipnerf.models import nerf_system
from depth_mipnerf.utils.lr_schedule import MipLRDecay
from tests import device_discipline as dd

TINY = ["train.batch_size = 64", "train.num_images = 2", "nerf.num_samples = 8", "nerf.num_fine_samples = 8",
        "nerf.mlp.net_depth = 2", "nerf.mlp.net_width = 16", "nerf.mlp.prop_net_depth = 1",
        "nerf.mlp.prop_net_width = 8"]
# Every term of MSELoss weighted, sampling noise, depth-guided samples and GLO codes on.
EVERYTHING = ["loss.lambda_depth = 0.02", "loss.lambda_distortion = 1e-3", "loss.lambda_normal = 1e-3",
              "loss.lambda_orientation = 1e-3", "nerf.density_noise = 0.1", "nerf.depth_sampling = True",
              "nerf.mlp.num_glo_embeddings = 2", "nerf.mlp.num_glo_features = 2", "nerf.mlp.encode_glo = True"]
CASES = {
    "cdf": [],
    "urf": ["loss.depth_loss = 'urf'"],
    "cdf_test": ["loss.depth_loss = 'cdf_test'"],
    "ds_nerf": ["loss.depth_loss = 'ds_nerf'"],
    "no_prop_normals_micro": ["nerf.mlp.prop_mlp = False", "nerf.mlp.mlp_normals = True",
                              "nerf.compute_density_normals = True", "train.grad_accum_steps = 2"],
}


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _trainer_state(scene, bindings):
    """(config, sections, dataset) of demo.gin on the first 2 views, and the trainer's objects on
    the stand-in device, made as train.train makes them."""
    config, sections = config_lib.parse(["configs/demo.gin"], [f"Config.data_dir = '{scene}'", *TINY, *bindings])
    dataset = nerf_system.build_dataset(config, sections, "train")
    model = nerf_system.build_model(sections).to(dd.DEVICE)
    loss_fn = nerf_system.build_loss(config, sections)
    opt = sections["optimizer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr_init)
    scheduler = MipLRDecay(optimizer, opt.lr_init, opt.lr_final, opt.max_steps, opt.lr_delay_steps,
                           opt.lr_delay_mult)
    return types.SimpleNamespace(config=config, sections=sections, dataset=dataset, model=model, loss_fn=loss_fn,
                                 optimizer=optimizer, scheduler=scheduler)


def _step(s, batches, step):
    return train.train_step(s.model, s.loss_fn, s.optimizer, s.scheduler, batches, step, s.config, s.sections)


@pytest.mark.parametrize("case", CASES)
def test_train_step_and_render_stay_on_the_device(scene, case):
    with dd.stand_in_accelerator():
        s = _trainer_state(scene, EVERYTHING + CASES[case])
        batches = train.RayBatches(s.dataset, 64, 0, dd.DEVICE, on_device=True)
        losses = _step(s, batches, 1)
        assert dd.devices_of(losses) == {dd.DEVICE}
        assert set(losses) >= {"total", "rgb", "depth", "near", "empty", "envelope", "psnr", "grad_norm"}
        params = list(s.model.parameters())
        assert {p.device for p in params} == {dd.DEVICE}
        # Every parameter got a gradient: the GLO codes, the variance of depth-guided sampling, ...
        assert all(p.grad is not None and p.grad.device == dd.DEVICE for p in params)
        moments = [v for state in s.optimizer.state.values() for k, v in state.items() if k != "step"]
        assert len(moments) == 2 * len(params) and dd.devices_of(moments) == {dd.DEVICE}
        assert s.scheduler.last_epoch == 1
        s.model.eval()
        rays = datasets.namedtuple_map(lambda r: r[:96], batches.rays)
        out = nerf_system.render_image(s.model, rays, 32)
        assert dd.devices_of(out) == {dd.DEVICE} and out["rgb_fine"].shape == (96, 3)


def test_non_report_steps_never_wait_for_the_device(scene):
    with dd.stand_in_accelerator() as acc:
        s = _trainer_state(scene, EVERYTHING + ["train.grad_accum_steps = 2"])
        batches = train.RayBatches(s.dataset, 64, 0, dd.DEVICE, on_device=True)
        assert not acc.syncs, "\n".join(map(str, acc.syncs))  # setting up reads nothing either
        acc.uploads.clear()  # set-up copies the model and the data once
        for step in (1, 2, 3):
            _step(s, batches, step)
        assert acc.syncs == [], "host syncs in the step:\n" + "\n".join(map(str, acc.syncs))
        assert acc.uploads == [], "host copies in the step:\n" + "\n".join(map(str, acc.uploads))


@pytest.mark.parametrize("on_device", [True, False])
def test_ray_batches_are_drawn_on_the_device_without_syncs(scene, on_device):
    dataset = datasets.Blender(str(scene), "train", num_images=1)
    # 100 rays, batches of 64: the second draw reshuffles.
    small = types.SimpleNamespace(rays=datasets.namedtuple_map(lambda r: r[:100], dataset.rays),
                                  images=dataset.images[:100])
    with dd.stand_in_accelerator(strict=True):
        batches = train.RayBatches(small, 64, 0, dd.DEVICE, on_device=on_device)
        home = dd.DEVICE if on_device else torch.device("cpu")
        assert dd.devices_of((batches.rays, batches.pixels, batches.order)) == {home}
        assert batches.generator.device.type == home.type
        for _ in range(3):
            rays, rgbs = next(batches)
            assert dd.devices_of((rays, rgbs)) == {dd.DEVICE} and rgbs.shape == (64, 3)
            assert rays.origins.shape == (64, 3) and rays.cam_idx.shape == (64, 1)


def test_data_on_device_decision(monkeypatch):
    assert train.data_on_device(None, 10**12, torch.device("cpu"))
    assert not train.data_on_device(False, 1, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 4000))
    cuda = torch.device("cuda")
    assert train.data_on_device(None, 500, cuda) and not train.data_on_device(None, 501, cuda)
    assert train.data_on_device(True, 10**12, cuda)


def test_memory_probe_runs_on_the_device_and_scales_with_the_model(scene):
    with dd.stand_in_accelerator() as acc:
        small = _trainer_state(scene, [])
        per_ray = train.probe_bytes_per_ray(small.model, small.loss_fn, small.dataset, small.sections, dd.DEVICE)
        gin.clear_config()
        wide = _trainer_state(scene, ["nerf.mlp.net_width = 64"])
        wide_per_ray = train.probe_bytes_per_ray(wide.model, wide.loss_fn, wide.dataset, wide.sections, dd.DEVICE)
    assert not acc.syncs
    # The 16-wide trunk saves 16 floats per sample and layer; the 64-wide about 4 times as many.
    assert 0 < per_ray < wide_per_ray
