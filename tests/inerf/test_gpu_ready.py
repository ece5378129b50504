"""Micro-batching (grad_accum_steps) of both NeRF trainers, and bad settings that must fail before
anything is written."""

import gin
import pytest
import torch

from inerf import nerf_helpers, run, train_nerf
from inerf.src import util
from inerf.train import train as pixelnerf_train
from tests.inerf.test_device import FAR, HWF, NEAR, pixelnerf_on_device, tiny_config, tiny_scene


def flat_grads(params):
    return torch.cat([p.grad.reshape(-1) for p in params])


def train_nerf_step(config, seed=0):
    """(flat gradients, stats) of one train_nerf step from fixed weights and a fixed batch."""
    images, poses = tiny_scene()
    torch.manual_seed(seed)
    render_kwargs, models = nerf_helpers.create_nerf(config)
    params = [p for m in models.values() if m is not None for p in m.parameters()]
    with torch.no_grad():
        for model in models.values():
            # A positive density bias: at random init this tiny MLP's sigma can be dead (relu 0)
            # on every sample, and then every gradient is 0.
            model.alpha_linear.bias.fill_(1.)
    # lr 0: the step leaves the weights (and the gradients) as they are.
    optimizer = torch.optim.Adam(params, lr=0.)
    data = train_nerf.training_data(images, poses, HWF, config, 'cpu')
    batch = train_nerf.draw_batch(data, config, 2, 'cpu')
    stats = train_nerf.train_step(optimizer, batch, HWF, train_nerf.train_kwargs_of(
        render_kwargs, config, NEAR, FAR), config, 2)
    return flat_grads(params), stats


def test_train_nerf_micro_batches_give_the_one_shot_update():
    """4 micro-batches of 8 rays accumulate the gradient of the 32-ray step (no jitter, no noise);
    the logged loss and PSNR are the one-shot ones."""
    config = tiny_config(train_perturb=0., train_raw_noise_std=0.)
    one, stats_one = train_nerf_step(config)
    accumulated, stats_acc = train_nerf_step(tiny_config(train_perturb=0., train_raw_noise_std=0.,
                                                         grad_accum_steps=4))
    assert (accumulated - one).norm() <= 1e-6 * one.norm()
    for name in ("loss", "img_loss", "psnr"):
        assert float(stats_acc[name]) == pytest.approx(float(stats_one[name]), rel=1e-6)
    # The bound can fail: the gradient of one micro-batch alone is far from the step's.
    part, _ = train_nerf_step(tiny_config(train_perturb=0., train_raw_noise_std=0., N_rand=8))
    assert (part - one).norm() > 1e-2 * one.norm()


def pixelnerf_step(tiny_conf, tmp_path, k):
    """(flat gradients, losses) of one pixelNeRF train_step with deterministic renderer samples."""
    trainer, batch = pixelnerf_on_device(tiny_conf, tmp_path / str(k), device="cpu", det=True,
                                         grad_accum_steps=k)
    torch.manual_seed(1)
    losses = trainer.train_step(batch, global_step=1)
    return flat_grads([p for p in trainer.net.parameters() if p.grad is not None]), losses


def test_pixelnerf_micro_batches_give_the_one_shot_update(tiny_conf, tmp_path):
    """--grad_accum_steps 2 splits each object's 16 rays in two: the same gradient and logged losses."""
    one, losses_one = pixelnerf_step(tiny_conf, tmp_path, 1)
    accumulated, losses_acc = pixelnerf_step(tiny_conf, tmp_path, 2)
    assert one.norm() > 0 and (accumulated - one).norm() <= 1e-6 * one.norm()
    assert {k: float(v) for k, v in losses_acc.items()} == pytest.approx(
        {k: float(v) for k, v in losses_one.items()}, rel=1e-6)


def test_deterministic_renderer_repeats_itself_and_the_release_does_not(tiny_conf, tmp_path):
    """det=True (for comparisons) gives the same losses twice; the release's jittered samples do not."""
    for det in (True, False):
        trainer, batch = pixelnerf_on_device(tiny_conf, tmp_path / str(det), device="cpu", det=det)
        trainer.renderer.eval()
        out = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            rays = util.gen_rays(batch["poses"][0], 16, 16, batch["focal"][0], 0.8, 1.8)[:1].reshape(1, -1, 8)
            trainer.net.encode(batch["images"][:1, :1], batch["poses"][:1, :1], batch["focal"][:1])
            with torch.no_grad():
                out.append(trainer.render_par(rays, want_weights=True)["fine"]["rgb"])
        assert torch.equal(out[0], out[1]) == det


def test_bad_grad_accum_steps_and_devices_fail_before_anything_is_written(tmp_path):
    ckpt = tmp_path / "ckpt"
    config = tiny_config(ckpt_dir=str(ckpt), data_dir=str(tmp_path / "no_scene"), grad_accum_steps=3)
    with pytest.raises(ValueError, match=r"Config.grad_accum_steps=3 does not divide Config.N_rand=32"):
        train_nerf.train(config)
    with pytest.raises(ValueError, match="Config.grad_accum_steps must be a positive integer"):
        train_nerf.train(tiny_config(ckpt_dir=str(ckpt), grad_accum_steps=0))
    for device in ("cuda:7", "gpu0"):
        with pytest.raises(ValueError, match=f"--device='{device}'"):
            train_nerf.train(tiny_config(ckpt_dir=str(ckpt)), device=device)
        gin.clear_config()
        try:
            with pytest.raises(ValueError, match=f"--device='{device}'"):
                run.main(["--device", device, "--gin_bindings", f"Config.output_dir = '{tmp_path / 'out'}'"])
        finally:
            gin.clear_config()
    assert list(tmp_path.iterdir()) == []


def test_pixelnerf_bad_grad_accum_steps_fails_before_anything_is_written(tmp_path, tiny_conf):
    conf = tmp_path / "tiny.conf"
    conf.write_text(tiny_conf)
    with pytest.raises(ValueError, match="--grad_accum_steps=3 does not divide --ray_batch_size=64"):
        pixelnerf_train.main(["-n", "tiny", "-c", str(conf), "-D", str(tmp_path / "cars"), "-R", "64",
                              "--grad_accum_steps", "3", "--logs_path", str(tmp_path / "logs"),
                              "--checkpoints_path", str(tmp_path / "ckpt"), "--visual_path", str(tmp_path / "vis")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.conf"]


def test_a_gpu_id_past_the_gpus_is_a_clear_error(monkeypatch):
    """--gpu_id names a GPU that does not exist: an error naming the flag (the CPU only without CUDA)."""
    assert util.get_cuda(3) == torch.device("cpu") or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="--gpu_id='cuda:3'"):
        util.get_cuda(3)
