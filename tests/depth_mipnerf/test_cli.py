"""train / eval / render_video command lines on the claim run: resume, outputs, errors."""

import json
import os

import gin
import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator

from depth_mipnerf import eval as dm_eval
from depth_mipnerf import render_video, train
from tests.depth_mipnerf.conftest import CLAIM_BINDINGS


@pytest.fixture(autouse=True)
def _fresh_gin():
    """Each command line starts from an empty gin registry, as in its own process."""
    gin.clear_config()
    yield
    gin.clear_config()


def _flags(scene, run_dir, *extra):
    return ["--device", "cpu", "--gin_configs=configs/demo.gin", f"--gin_bindings=Config.data_dir='{scene}'",
            f"--gin_bindings=Config.checkpoint_dir='{run_dir}'", *[f"--gin_bindings={b}" for b in extra]]


def test_train_cli_resumes(scene, tmp_path, capsys):
    run = tmp_path / "run"
    small = ["train.batch_size = 64", "nerf.num_samples = 8", "nerf.num_fine_samples = 8"]
    train.main(_flags(scene, run, "optimizer.max_steps = 2", *small))
    assert sorted(os.listdir(run))[:1] == ["checkpoint_00000002.pt"]
    gin.clear_config()
    # A longer run changes config.gin: --overwrite_config replaces it.
    train.main(_flags(scene, run, "optimizer.max_steps = 3", *small) + ["--overwrite_config"])
    assert "resuming from" in capsys.readouterr().out and os.path.exists(run / "checkpoint_00000003.pt")


def test_train_cli_error_names_the_file(scene_copy, tmp_path, capsys):
    os.remove(scene_copy / "depth" / "train" / "r_0.npy")
    with pytest.raises(SystemExit):
        train.main(_flags(scene_copy, tmp_path / "run", "optimizer.max_steps = 1"))
    assert "depth/train: 39 depth maps for the 40 frames" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_eval_cli_writes_metrics_and_images(cdf_run, scene, tmp_path, capsys):
    dm_eval.main(_flags(scene, cdf_run["run_dir"]) + ["--out_dir", str(tmp_path / "eval")])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(cdf_run["metrics"]["psnr"], abs=1e-4)
    assert metrics["step"] == int(CLAIM_BINDINGS[0].split("=")[1])
    assert len(metrics["per_image"]["psnr"]) == 8 and (tmp_path / "eval" / "depth_007.png").exists()
    assert metrics["protocol"]["split"] == "test" and "zero padding" in metrics["protocol"]["ssim"]
    # The zero-padded border windows count in the fork's SSIM: the two variants differ.
    assert 0 < metrics["ssim"] <= 1 and 0 < metrics["ssim_mipnerf"] <= 1
    assert abs(metrics["ssim"] - metrics["ssim_mipnerf"]) > 1e-3
    assert "PSNR" in capsys.readouterr().out
    # One contact sheet per test view and the summary, also in TensorBoard's event file there.
    sheets = sorted(p.name for p in (tmp_path / "eval" / "sheets").iterdir())
    assert sheets == ["summary.png"] + [f"view_{i:03d}.png" for i in range(8)]
    tags = event_accumulator.EventAccumulator(str(tmp_path / "eval")).Reload().Tags()["images"]
    assert "sheets/summary" in tags and "sheets/view_007" in tags


def test_render_video(cdf_run, scene, tmp_path):
    names = render_video.render_video(str(cdf_run["run_dir"]), str(scene), str(tmp_path / "video"), n_frames=3)
    assert len(names) == 3
    for f in ("video_color.mp4", "video_depth.mp4", "depth_002.png"):
        assert (tmp_path / "video" / f).stat().st_size > 0


def test_scannet_config_trains_with_glo_and_renders_a_loop(scene, tmp_path):
    from tests.depth_mipnerf.test_datasets import _scannet_layout

    room = _scannet_layout(scene, tmp_path / "room")
    run = tmp_path / "run"
    small = ["optimizer.max_steps = 3", "train.batch_size = 64", "nerf.num_samples = 8", "nerf.num_fine_samples = 8",
             "nerf.mlp.net_depth = 2", "nerf.mlp.net_width = 16", "nerf.mlp.prop_net_depth = 1",
             "nerf.mlp.prop_net_width = 8", "val.sample_num = 0", "Config.depth_source = 'mono_colmap'"]
    train.main(["--device", "cpu", "--gin_configs=configs/scannet.gin", f"--gin_bindings=Config.data_dir='{room}'",
                f"--gin_bindings=Config.checkpoint_dir='{run}'", *[f"--gin_bindings={b}" for b in small]])
    state = torch.load(run / "checkpoint_00000003.pt", weights_only=True)
    glo = state["model"]["glo_vecs.weight"]
    assert glo.shape == (18, 4)
    gin.clear_config()
    # The room has no test split: render the loop through its 3 training cameras from the train split.
    os.symlink(room / "transforms_train.json", room / "transforms_test.json")
    names = render_video.render_video(str(run), str(room), str(tmp_path / "video"), n_frames=2)
    assert len(names) == 2 and (tmp_path / "video" / "video_color.mp4").exists()
