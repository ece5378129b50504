"""Config.grad_accum_steps: micro-batches give the one-shot step (gradients, logged losses); bad
settings (micro-batches, device) stop the trainer before it writes anything."""

import copy
import dataclasses

import gin
import pytest
import torch
from absl import flags

from mipnerf import train
from mipnerf.internal import datasets

# Deterministic sampling: no stratified jitter, no random resampling, no density noise.
TINY = ["Config.batch_size = 64", "Config.randomized = False", "MipNerfModel.num_samples = 8",
        "MipNerfModel.max_deg_point = 6", "MLP.net_depth = 2", "MLP.net_width = 16",
        "MLP.net_width_condition = 8", "Config.weight_decay_mult = 1e-3"]


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _step(config, model, batch):
    """(stats, {name: gradient}) of one whole train.train_step of a copy of model."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stats = train.train_step(model, config, None, optimizer, batch, 1e-3)
    return stats, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("bindings", [[], ["Config.disable_multiscale_loss = True"]],
                         ids=["lossmult", "no_lossmult"])
def test_micro_batches_give_the_one_shot_gradients_and_losses(scene, bindings):
    config = train.parse_config(["configs/demo.gin"], TINY + bindings)
    dataset = datasets.get_dataset("train", scene, config)
    batch = next(dataset)
    dataset.close()
    # Rays of all four scales, so the lossmult weights differ within the batch.
    assert batch["rays"].lossmult.unique().numel() > 1
    batch = {"pixels": batch["pixels"].double(), "rays": batch["rays"].map(torch.Tensor.double)}
    model = train.create_train_state(config, batch, torch.device("cpu")).model.double()
    one_stats, one_grads = _step(config, model, batch)
    micro_stats, micro_grads = _step(dataclasses.replace(config, grad_accum_steps=4), model, batch)
    assert len(one_grads) == len(micro_grads) > 4
    for name, grad in one_grads.items():
        error = (micro_grads[name] - grad).norm() / grad.norm().clamp_min(1e-30)
        assert error < 1e-6, (name, float(error))
    for key in ("loss", "losses", "weight_l2", "psnr", "psnrs", "grad_norm", "grad_abs_max"):
        torch.testing.assert_close(micro_stats[key], one_stats[key], rtol=1e-9, atol=1e-12, msg=key)


def _main(tmp_path, scene, *args, bindings=()):
    """train.main with these flags in this process; returns the SystemExit."""
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", f"--train_dir={tmp_path / 'run'}", f"--data_dir={scene}",
                 "--gin_file=configs/demo.gin", *args,
                 *[f"--gin_param={b}" for b in [*TINY, "Config.max_steps = 1", *bindings]]])
    try:
        with pytest.raises(SystemExit) as exit_info:
            train.main([], info=train.dist.DistInfo(0, 0, 1, torch.device("cpu"), True))
    finally:
        flags.FLAGS.unparse_flags()
    return exit_info.value


@pytest.mark.parametrize("args, bindings, message", [
    ([], ["Config.grad_accum_steps = 3"], "Config.grad_accum_steps=3 does not divide Config.batch_size=64"),
    ([], ["Config.grad_accum_steps = 0"], "Config.grad_accum_steps must be a positive integer"),
    (["--device=tpu"], [], "--device='tpu' is not a device name"),
    (["--device=cuda:7" if not torch.cuda.is_available() else "--device=cuda:99"], [], "--device='cuda:"),
], ids=["micro_batches_do_not_divide", "no_micro_batch", "unknown_device", "missing_gpu"])
def test_bad_settings_stop_before_anything_is_written(scene, tmp_path, capsys, args, bindings, message):
    assert _main(tmp_path, scene, *args, bindings=bindings).code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_startup_prints_the_predicted_peak_memory(scene, tmp_path, capsys):
    gin.clear_config()
    config = train.parse_config(["configs/demo.gin"], TINY + ["Config.max_steps = 1", "Config.grad_accum_steps = 2"])
    train.train(config, str(tmp_path / "run"), scene, train.dist.DistInfo(0, 0, 1, torch.device("cpu"), True))
    out = capsys.readouterr().out
    assert "predicted peak memory" in out and "32 rays per micro-batch (64 rays / grad_accum_steps 2)" in out
    assert "measured on the fly on 64 rays" in out and "training rays on the host" in out
