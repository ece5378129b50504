"""mipnerf360.train: checkpoints, resume from the step it stopped at, NaN stop, torchrun DDP."""

import os
import pathlib
import subprocess
import sys

import gin
import pytest
import torch
from absl import flags

from common import checkpoints, dist
from mipnerf360 import train
from mipnerf360.internal import configs

REPO = pathlib.Path(__file__).parents[2]
TINY = [
    "Config.batch_size = 64",
    "Config.factor = 0",
    "Config.print_every = 1",
    "Config.checkpoint_every = 2",
    "Config.train_render_every = 0",
    "Model.num_prop_samples = 8",
    "Model.num_nerf_samples = 8",
    "PropMLP.net_depth = 1",
    "PropMLP.net_width = 16",
    "NerfMLP.net_depth = 2",
    "NerfMLP.net_width = 16",
    "NerfMLP.max_deg_point = 4",
    "PropMLP.max_deg_point = 4",
]


def make_config(scene, run_dir, max_steps, extra=()):
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run_dir}'",
                       f"Config.max_steps = {max_steps}", *extra]
    flags.FLAGS(["train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"]
                + [f"--gin_bindings={b}" for b in bindings])
    return configs.load_config()


def single_process():
    return dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), is_main=True)


def test_training_resumes_from_the_step_it_stopped_at(scene, tmp_path):
    run = tmp_path / "run"
    state = train.train(make_config(scene, run, 4), single_process())
    assert state.step == 4
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(run)] == [
        "checkpoint_00000002.pt", "checkpoint_00000004.pt"]
    resumed = train.train(make_config(scene, run, 6), single_process())
    assert resumed.step == 6
    # Adam's moments came from the checkpoint: a fresh optimizer would have taken 2 steps, not 6.
    adam_steps = {int(s["step"]) for s in resumed.optimizer.state_dict()["state"].values()}
    assert adam_steps == {6}
    assert (run / "config.gin").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(scene, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_create = train.train_utils.setup_model

    def poisoned_setup(*args, **kwargs):
        model, state, render_fn, train_step, lr_fn = real_create(*args, **kwargs)

        def step_with_nan(rng, state, batch, cameras, train_frac, **kwargs):
            state, stats, rng = train_step(rng, state, batch, cameras, train_frac, **kwargs)
            if state.step == 3:
                stats["loss"] = torch.tensor(float("nan"))
            return state, stats, rng

        return model, state, render_fn, step_with_nan, lr_fn

    monkeypatch.setattr(train.train_utils, "setup_model", poisoned_setup)
    with pytest.raises(train.NonFiniteLossError, match="NaN at step 3"):
        train.train(make_config(scene, run, 6), single_process())
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(run)] == ["checkpoint_00000002.pt"]


def test_torchrun_two_processes_train_one_model(scene, tmp_path):
    run = tmp_path / "ddp"
    bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run}'",
                       "Config.max_steps = 2"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "mipnerf360.train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"]
        + [f"--gin_bindings={b}" for b in bindings],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "over 2 process(es)" in result.stdout
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(run)] == ["checkpoint_00000002.pt"]


@pytest.mark.parametrize("binding, message", [
    ("Config.grad_accum_steps = 3", "Config.grad_accum_steps=3 does not divide the patches per process"),
    ("Config.grad_accum_steps = 0", "Config.grad_accum_steps must be a positive integer"),
    ("Config.device = 'cuda:7'" if not torch.cuda.is_available() else "Config.device = 'cuda:99'",
     "Config.device='cuda:"),
    ("Config.device = 'gpu'", "Config.device='gpu' is not a device name"),
    ("Model.num_glo_features = 4\nModel.num_glo_embeddings = 3",
     "Model.num_glo_embeddings=3 must be at least the number of training images"),
])
def test_bad_settings_are_named_and_nothing_is_written(scene, tmp_path, capsys, binding, message):
    run = tmp_path / "run"
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run}'",
                       *binding.splitlines()]
    flags.FLAGS(["train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"]
                + [f"--gin_bindings={b}" for b in bindings])
    with pytest.raises(SystemExit):
        train.main([], single_process())
    assert message in capsys.readouterr().err
    assert not run.exists()


def test_train_scoped_bindings_apply_to_training(tmp_path):
    """multinerf's train.py runs in gin.config_scope('train'): a `train/` binding reaches the trainer
    (here a bad value, which stops before anything is read or written)."""
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mipnerf360.train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}",
         f"--gin_bindings=Config.checkpoint_dir = '{run}'", "--gin_bindings=train/Config.grad_accum_steps = 0"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Config.grad_accum_steps must be a positive integer" in result.stderr
    assert not run.exists()


def test_early_exit_steps_stops_the_run_there(scene, tmp_path):
    run = tmp_path / "run"
    state = train.train(make_config(scene, run, 40, ["Config.early_exit_steps = 3"]), single_process())
    assert state.step == 3
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(run)][-1] == "checkpoint_00000003.pt"


def test_reports_log_multinerf_statistics(scene, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    run = tmp_path / "run"
    train.train(make_config(scene, run, 4, ["Config.print_every = 2"]), single_process())
    events = event_accumulator.EventAccumulator(str(run), size_guidance={"histograms": 0})
    events.Reload()
    scalars, histograms = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    for name in ["loss", "psnr", "losses/data", "losses/interlevel", "psnrs/0", "grad_norms/NerfMLP_0",
                 "grad_maxes/PropMLP_0", "weight_l2s/NerfMLP_0/Dense_0", "opt_update_norms/NerfMLP_0",
                 "opt_update_maxes/PropMLP_0"]:
        assert f"train_avg_{name}" in scalars and f"train_max_{name}" in scalars, name
        assert f"train_{name}" in histograms, name
    assert {"train_learning_rate", "train_num_params", "train_rays_per_sec"} <= scalars
    # Two reports of two steps each: the window mean of the loss is logged at steps 2 and 4.
    assert [e.step for e in events.Scalars("train_avg_loss")] == [2, 4]
