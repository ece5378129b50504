"""train.grad_accum_steps: micro-batches give the one-shot step (gradients, logged losses); bad
settings (micro-batches, device, GLO table) stop the trainer before it writes anything."""

import copy

import gin
import pytest
import torch

from depth_mipnerf import train
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import datasets
from depth_mipnerf.models import nerf_system
from depth_mipnerf.utils.lr_schedule import MipLRDecay

# Deterministic sampling (no stratification, no density noise, no depth-guided draws).
TINY = ["train.batch_size = 64", "train.num_images = 2", "train.randomized = False", "nerf.num_samples = 8",
        "nerf.num_fine_samples = 8", "nerf.mlp.net_depth = 2", "nerf.mlp.net_width = 16",
        "nerf.mlp.prop_net_depth = 1", "nerf.mlp.prop_net_width = 8", "loss.lambda_depth = 0.02",
        "loss.lambda_distortion = 1e-3", "Config.gradient_clip_val = 0"]


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


class _Fixed:
    """train.RayBatches' interface, always the same batch."""

    def __init__(self, batch):
        self.batch = batch

    def __next__(self):
        return self.batch


def _step_grads(config, sections, model, batch):
    """(logged losses, {name: gradient}) of one whole train.train_step of a copy of model."""
    model = copy.deepcopy(model)
    loss_fn = nerf_system.build_loss(config, sections)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = MipLRDecay(optimizer, 1e-3, 1e-4, 10, 0, 1.)
    losses = train.train_step(model, loss_fn, optimizer, scheduler, _Fixed(batch), 5, config, sections)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bindings", [[], ["loss.depth_loss = 'urf'"], ["loss.depth_loss = 'ds_nerf'"],
                                      ["nerf.mlp.prop_mlp = False", "loss.depth_loss = 'cdf_test'"]],
                         ids=["cdf", "urf", "ds_nerf", "coarse_mlp_cdf_test"])
def test_micro_batches_give_the_one_shot_gradients_and_losses(scene, bindings):
    config, sections = config_lib.parse(["configs/demo.gin"], [f"Config.data_dir = '{scene}'", *TINY, *bindings])
    dataset = nerf_system.build_dataset(config, sections, "train")
    torch.manual_seed(0)
    model = nerf_system.build_model(sections).double()
    # Rays across both images, some without depth (the object's background).
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(1))[:64]
    rays, rgbs = dataset[index]
    batch = (datasets.namedtuple_map(lambda r: r.double() if r.is_floating_point() else r, rays), rgbs.double())
    assert batch[0].mask.any() and not batch[0].mask.all()
    one_losses, one_grads = _step_grads(config, sections, model, batch)
    sections["train"].grad_accum_steps = 4
    micro_losses, micro_grads = _step_grads(config, sections, model, batch)
    assert one_grads.keys() == micro_grads.keys() and len(one_grads) > 4
    for name, grad in one_grads.items():
        error = (micro_grads[name] - grad).norm() / grad.norm().clamp_min(1e-30)
        assert error < 1e-6, (name, float(error))
    for name in ("total", "rgb", "depth", "near", "empty", "envelope", "distortion", "psnr", "grad_norm"):
        torch.testing.assert_close(micro_losses[name], one_losses[name], rtol=1e-9, atol=1e-12, msg=name)


def _flags(scene, run_dir, *bindings, device="cpu"):
    return ["--device", device, "--gin_configs=configs/demo.gin", f"--gin_bindings=Config.data_dir='{scene}'",
            f"--gin_bindings=Config.checkpoint_dir='{run_dir}'",
            *[f"--gin_bindings={b}" for b in ["optimizer.max_steps = 1", *TINY, *bindings]]]


@pytest.mark.parametrize("bindings, device, message", [
    (["train.grad_accum_steps = 3"], "cpu", "train.grad_accum_steps=3 does not divide train.batch_size=64"),
    (["train.grad_accum_steps = 0"], "cpu", "train.grad_accum_steps must be a positive integer"),
    ([], "tpu", "--device='tpu' is not a device name"),
    ([], "cuda:7" if not torch.cuda.is_available() else "cuda:99", "--device='cuda:"),
    (["nerf.mlp.num_glo_features = 2", "nerf.mlp.num_glo_embeddings = 1"], "cpu",
     "2 training cameras (train.num_images = 2) but nerf.mlp.num_glo_embeddings = 1"),
], ids=["micro_batches_do_not_divide", "no_micro_batch", "unknown_device", "missing_gpu", "glo_table"])
def test_bad_settings_stop_before_anything_is_written(scene, tmp_path, capsys, bindings, device, message):
    run = tmp_path / "run"
    with pytest.raises(SystemExit):
        train.main(_flags(scene, run, *bindings, device=device))
    assert message in capsys.readouterr().err
    assert not run.exists()


def test_startup_prints_the_predicted_peak_memory(scene, tmp_path, capsys):
    train.main(_flags(scene, tmp_path / "run", "train.grad_accum_steps = 2"))
    out = capsys.readouterr().out
    assert "predicted peak memory" in out and "32 rays per micro-batch (64 rays / grad_accum_steps 2)" in out
    assert "measured on the fly on 64 rays" in out and "training rays on cpu" in out
