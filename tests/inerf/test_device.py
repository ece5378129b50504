"""Device and sync discipline of the three loops: train_nerf's step, pixelNeRF's trainer and both
pose-estimation loops (the paper's inerf.run and the release's eval/pose_estimation).

Why the meta stand-in of tests/device_discipline.py: this machine has no GPU, and a CPU-only torch
cannot run a training step on a fake `cuda` device (the autograd engine asks for the CUDA guard).
On `meta` the whole step runs (shapes, dtypes, autograd, Adam) in milliseconds, and the stand-in
raises on any call that mixes host and device tensors, on a random draw with a generator of the
wrong device, and records every host synchronisation, which is what a CUDA run would hit.
"""

import types

import numpy as np
import pytest
import torch
from pyhocon import ConfigFactory

from inerf import nerf_helpers, render_helpers, run, train_nerf, utils
from inerf.eval import pose_estimation
from inerf.src.model import make_model
from inerf.src.render import NeRFRenderer
from inerf.train import train as pixelnerf_train
from tests import device_discipline as dd

HWF = [8, 8, 10.]
NEAR, FAR = 2., 6.


def tiny_config(**overrides):
    """A coarse + fine 2x16 NeRF with view directions, 8 + 8 samples, 32 rays a step."""
    return utils.Config(**dict(dict(
        netdepth=2, netwidth=16, netdepth_fine=2, netwidth_fine=16, N_samples=8, N_importance=8,
        multires=3, multires_views=2, N_rand=32, precrop_iters=1, train_raw_noise_std=1.,
        batch_size=16, sampling_strategy='random', near=NEAR, far=FAR), **overrides))


def tiny_scene(n=3):
    """(images [n, 8, 8, 3], poses [n, 4, 4]) of cameras 4 units from the origin."""
    rng = np.random.default_rng(0)
    poses = np.stack([np.eye(4, dtype=np.float32)] * n)
    poses[:, 0, 3] = np.arange(n) * 0.1
    poses[:, 2, 3] = 4.
    return rng.random((n, 8, 8, 3)).astype(np.float32), poses


def assert_on_device(params, optimizer, grads=True):
    """Parameters, gradients (unless the loop clears them after its step) and Adam state on the device."""
    assert dd.devices_of(list(params)) == {dd.DEVICE}
    if grads:
        assert all(p.grad is not None for p in params)
        assert dd.devices_of([p.grad for p in params]) == {dd.DEVICE}
    state = [v for s in optimizer.state.values() for v in s.values()
             if isinstance(v, torch.Tensor) and v.dim() > 0]
    assert state and dd.devices_of(state) == {dd.DEVICE}


def nerf_on_device(config):
    """(render_kwargs, params, Adam) of train_nerf's model on the stand-in (call under it)."""
    torch.manual_seed(0)
    render_kwargs, models = nerf_helpers.create_nerf(config, dd.DEVICE)
    params = [p for m in models.values() if m is not None for p in m.parameters()]
    return render_kwargs, params, torch.optim.Adam(params, lr=config.lrate_train)


@pytest.mark.parametrize('on_device', [True, False])
def test_train_nerf_step_and_render_stay_on_the_device(on_device):
    """Data on the device (or on the host, the fallback): one step with 2 micro-batches and a render."""
    config = tiny_config(grad_accum_steps=2, data_on_device=on_device)
    images, poses = tiny_scene()
    with dd.stand_in_accelerator() as acc:
        render_kwargs, params, optimizer = nerf_on_device(config)
        data = train_nerf.training_data(images, poses, HWF, config, dd.DEVICE)
        assert dd.devices_of(data) == {dd.DEVICE if on_device else torch.device('cpu')}
        batch = train_nerf.draw_batch(data, config, 1, dd.DEVICE)
        assert dd.devices_of(batch) == {dd.DEVICE}
        stats = train_nerf.train_step(optimizer, batch, HWF, train_nerf.train_kwargs_of(
            render_kwargs, config, NEAR, FAR), config, 1)
        assert dd.devices_of(stats) == {dd.DEVICE} and all(v.dim() == 0 for v in stats.values())
        with torch.no_grad():
            rgb, disp, _, _ = render_helpers.render(
                8, 8, 10., chunk=config.chunk, c2w=torch.as_tensor(poses[0], device=dd.DEVICE)[:3],
                **dict(render_kwargs, near=NEAR, far=FAR))
    assert rgb.shape == (8, 8, 3) and rgb.device == dd.DEVICE
    assert_on_device(params, optimizer)
    assert optimizer.param_groups[0]['lr'] < config.lrate_train
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))


@pytest.mark.parametrize('on_device', [True, False])
def test_train_nerf_steps_do_not_sync(on_device):
    """Three steps (the first in the precrop) of the loop's draw_batch + train_step: no host sync."""
    config = tiny_config(data_on_device=on_device)
    images, poses = tiny_scene()
    with dd.stand_in_accelerator() as acc:
        render_kwargs, _, optimizer = nerf_on_device(config)
        data = train_nerf.training_data(images, poses, HWF, config, dd.DEVICE)
        kwargs = train_nerf.train_kwargs_of(render_kwargs, config, NEAR, FAR)
        for step in (1, 2, 3):
            if step == 2:
                # Set-up and the first step copy the model, the data and the encodings' frequency
                # bands over once; later steps copy nothing.
                acc.uploads.clear()
            train_nerf.train_step(optimizer, train_nerf.draw_batch(data, config, step, dd.DEVICE), HWF,
                                  kwargs, config, step)
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))
    if on_device:  # the host path copies each batch over by design
        assert acc.uploads == [], '\n'.join(map(str, acc.uploads))


def test_data_on_device_decision():
    """The automatic choice: the CPU always fits; a non-CUDA accelerator keeps data on the host."""
    assert train_nerf.data_fits_on_device(10**12, 'cpu')
    assert not train_nerf.data_fits_on_device(1, dd.DEVICE)


def test_inerf_pose_steps_stay_on_the_device_and_do_not_sync():
    """inerf.run: pixels drawn, exp(xi) @ start, render, MSE, Adam, lr decay; 3 steps, no sync."""
    config = tiny_config(lrate=0.01)
    images, poses = tiny_scene()
    with dd.stand_in_accelerator() as acc:
        render_kwargs, _, _ = nerf_on_device(config)
        for p in render_kwargs['network_fn'].parameters():
            p.requires_grad_(False)
        sampler = run.PixelSampler('random', render_helpers.to8b(images[0]))
        target = torch.as_tensor(images[0], device=dd.DEVICE)
        start = torch.as_tensor(poses[0], device=dd.DEVICE)
        cam_transf, optimizer = run.pose_optimizer(config, dd.DEVICE)
        rng = np.random.default_rng(0)
        for k in range(3):
            coords = run.draw_pixels(sampler, rng, config.batch_size, dd.DEVICE)
            loss, pose = run.pose_step(cam_transf, optimizer, start, coords, target, HWF, render_kwargs,
                                       config, NEAR, FAR, k)
        assert loss.device == dd.DEVICE and pose.shape == (4, 4) and pose.device == dd.DEVICE
    assert_on_device(list(cam_transf.parameters()), optimizer)
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))


class OneObject(torch.utils.data.Dataset):
    """A one-object dataset with the z range the trainer reads (its DataLoaders are not iterated)."""

    z_near, z_far = 0.8, 1.8

    def __len__(self):
        return 1


def pixelnerf_on_device(tiny_conf, tmp_path, device=dd.DEVICE, det=False, **arg_overrides):
    """(trainer, host batch of 2 objects x 3 views) of the pixelNeRF trainer with the tiny conf on
    device (the stand-in: call under it); det: deterministic renderer samples."""
    conf = ConfigFactory.parse_string(tiny_conf + "train { print_interval = 100, save_interval = 100, "
                                      "vis_interval = 100, eval_interval = 100 }\n")
    torch.manual_seed(0)
    net = make_model(conf["model"]).to(device)
    renderer = NeRFRenderer.from_conf(conf["renderer"]).to(device)
    renderer.det = det
    args = types.SimpleNamespace(**dict(dict(
        batch_size=2, nviews="1", gpu_id=[0], checkpoints_path=str(tmp_path / "ckpt"), name="tiny",
        resume=False, no_bbox_step=100000, num_workers=0, epochs=1, logs_path=str(tmp_path / "logs"),
        lr=1e-4, gamma=0.9, visual_path=str(tmp_path / "vis"), ray_batch_size=16, grad_accum_steps=2,
        fixed_test=False), **arg_overrides))
    g = torch.Generator().manual_seed(0)
    poses = torch.eye(4).repeat(2, 3, 1, 1)
    poses[..., 2, 3] = 1.3
    batch = {"images": torch.rand(2, 3, 3, 16, 16, generator=g) * 2 - 1, "poses": poses,
             "focal": torch.tensor([16., 18.]), "c": torch.tensor([[8., 8.], [7., 9.]]),
             "bbox": torch.tensor([[2, 3, 12, 13]]).repeat(2, 3, 1)}
    dset = OneObject()
    return pixelnerf_train.PixelNeRFTrainer(net, renderer, dset, dset, args, conf, device), batch


def test_pixelnerf_train_batch_and_render_stay_on_the_device(tiny_conf, tmp_path):
    """One train_batch (bbox rays, 2 micro-batches, backward, Adam), the epoch's lr decay, a render."""
    with dd.stand_in_accelerator() as acc:
        trainer, batch = pixelnerf_on_device(tiny_conf, tmp_path)
        batch = dd.to_device(batch)
        losses = trainer.train_batch(batch, epoch=0, batch=1, step_id=1)
        trainer.end_epoch()
        assert set(losses) == {"rc", "rf", "t"} and dd.devices_of(losses) == {dd.DEVICE}
        with torch.no_grad():
            rays = torch.rand(1, 10, 8, device=dd.DEVICE, generator=torch.Generator(device=dd.DEVICE))
            rgb, depth = trainer.renderer.bind_parallel(trainer.net, simple_output=True)(rays)
    assert rgb.shape == (1, 10, 3) and rgb.device == dd.DEVICE
    # The trainer's zero_grad after its step sets the gradients to None; Adam's moments show them.
    assert_on_device([p for p in trainer.net.parameters() if p.requires_grad], trainer.optim, grads=False)
    assert trainer.optim.param_groups[0]["lr"] == pytest.approx(0.9e-4)
    assert dd.tensor_attributes_off_device(trainer.net) == []
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))


def test_pixelnerf_non_report_batches_do_not_sync(tiny_conf, tmp_path):
    """Three non-report batches of the trainer's loop body (drawing rays included): no host sync."""
    with dd.stand_in_accelerator() as acc:
        trainer, batch = pixelnerf_on_device(tiny_conf, tmp_path, grad_accum_steps=1)
        batch = dd.to_device(batch)
        for step in (1, 2, 3):
            trainer.train_batch(batch, epoch=0, batch=step, step_id=step)
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))


@pytest.mark.parametrize("sampling", ["random", "center", "patch"])
def test_released_pose_steps_stay_on_the_device_and_do_not_sync(tiny_conf, sampling):
    """eval/pose_estimation: 3 steps of re-encoding, rendering, MSE and Adam on the raw pose."""
    conf = ConfigFactory.parse_string(tiny_conf)
    with dd.stand_in_accelerator() as acc:
        torch.manual_seed(0)
        net = make_model(conf["model"]).to(dd.DEVICE)
        render_par = NeRFRenderer.from_conf(conf["renderer"]).to(dd.DEVICE).bind_parallel(
            net, [0], simple_output=True)
        input_image = torch.zeros(3, 64, 64, device=dd.DEVICE)
        input_pose = torch.eye(4, device=dd.DEVICE)
        target_flat = torch.zeros(64 * 64, 3, device=dd.DEVICE)
        focal = torch.tensor(65.6, device=dd.DEVICE)
        cam_pose = input_pose.clone().unsqueeze(0).requires_grad_()
        optimizer = torch.optim.Adam([cam_pose], lr=1e-2)
        for _ in range(3):
            idxs = pose_estimation.sample_pixels(sampling, 64, 64, device=dd.DEVICE)
            rgb, loss, pose = pose_estimation.pose_step(render_par, net, optimizer, cam_pose, input_image,
                                                        input_pose, target_flat, idxs, focal, 64, 64, 0.8, 1.8)
    assert rgb.device == loss.device == pose.device == dd.DEVICE
    assert_on_device([cam_pose], optimizer)
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))
