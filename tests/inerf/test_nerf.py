"""The NeRF side: training on object360, nerf-pytorch's checkpoint format and resume, the loaders,
and the LLFF self-supervision experiment end to end at toy size."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from common import checkpoints
from inerf import nerf_helpers, render_helpers, run, train_nerf, utils
from tests.inerf.conftest import REPO, demo_config


def test_demo_nerf_learns_the_held_out_views(trained):
    _, metrics = trained
    # A blank white image scores 8.4 dB on these views.
    assert metrics["test_psnr"] > 20.


def test_checkpoint_has_nerf_pytorch_keys_and_resumes(trained, capsys):
    config, metrics = trained
    path = checkpoints.latest_checkpoint(metrics["run_dir"])
    state = checkpoints.load_checkpoint(path)
    assert {"global_step", "network_fn_state_dict", "network_fine_state_dict",
            "optimizer_state_dict"} <= set(state)
    assert state["global_step"] == config.N_iters
    assert "pts_linears.0.weight" in state["network_fn_state_dict"]
    # A second call finds the finished run and only evaluates it.
    again = train_nerf.train(config)
    assert again["test_psnr"] == pytest.approx(metrics["test_psnr"], abs=1e-4)
    # The start-up line: the predicted peak memory of the configured batch, measured on a probe.
    out = capsys.readouterr().out
    micro = f"{config.N_rand} rays per micro-batch ({config.N_rand} rays / grad_accum_steps 1)"
    assert "predicted peak memory" in out and micro in out and "measured on the fly" in out, out


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(scene, tmp_path, monkeypatch):
    config = demo_config(scene, tmp_path, "Config.N_iters = 6", "Config.i_print = 2", "Config.i_weights = 2",
                         "Config.N_rand = 64", "Config.n_test_images = 1")
    real_step = train_nerf.train_step

    def nan_after_step_2(optimizer, batch, hwf, kwargs, config, step):
        stats = real_step(optimizer, batch, hwf, kwargs, config, step)
        return {**stats, "loss": stats["loss"] * float("nan")} if step > 2 else stats

    monkeypatch.setattr(train_nerf, "train_step", nan_after_step_2)
    with pytest.raises(FloatingPointError, match="at step 4"):
        train_nerf.train(config)
    run_dir = os.path.join(config.ckpt_dir, config.model_name)
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(run_dir)] == ["checkpoint_00000002.pt"]


def test_a_nerf_pytorch_tar_loads_unchanged(trained, tmp_path):
    config, metrics = trained
    state = checkpoints.load_checkpoint(checkpoints.latest_checkpoint(metrics["run_dir"]))
    tar = {k: state[k] for k in ("global_step", "network_fn_state_dict", "network_fine_state_dict",
                                 "optimizer_state_dict")}
    torch.save(tar, tmp_path / "object360.tar")
    from_tar = nerf_helpers.load_nerf(dataclasses.replace(config, ckpt_dir=str(tmp_path)))
    from_run = nerf_helpers.load_nerf(config)
    pose = torch.eye(4)
    pose[2, 3] = 4.
    renders = [render_helpers.render(8, 8, 10., c2w=pose[:3], near=2., far=6., **kw)[0]
               for kw in (from_tar, from_run)]
    torch.testing.assert_close(renders[0], renders[1])
    assert not any(p.requires_grad for p in from_tar["network_fn"].parameters())


def test_missing_checkpoint_and_scene_files_are_clear_errors(tmp_path):
    config = utils.Config(ckpt_dir=str(tmp_path), model_name="nothing")
    with pytest.raises(FileNotFoundError, match="nothing"):
        nerf_helpers.load_nerf(config)
    with pytest.raises(FileNotFoundError, match="transforms_train.json"):
        utils.load_blender_data(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="poses_bounds.npy"):
        utils.load_llff_data(str(tmp_path))


@pytest.fixture(scope="module")
def forward_scene(tmp_path_factory):
    """The synthetic LLFF-layout scene at 64x48 (images_4: 16x12), 12 views."""
    out = tmp_path_factory.mktemp("inerf_forward") / "forward"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "forward", "--res", "64x48",
                    "--views", "12", "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    return str(out)


def test_llff_loader_recentres_and_rescales(forward_scene):
    images, poses, bds, hwf = utils.load_llff_data(forward_scene, factor=4)
    assert images.shape == (12, 12, 16, 3) and poses.shape == (12, 4, 4)
    assert hwf[:2] == [12, 16]
    # Recentred: the average camera is the identity; rescaled: the nearest bound is 1 / 0.75.
    np.testing.assert_allclose(poses[:, :3, 3].mean(0), 0., atol=1e-5)
    avg = utils.poses_avg(np.concatenate([poses[:, :3], np.broadcast_to(np.zeros((3, 1)), (12, 3, 1))], 2))
    np.testing.assert_allclose(avg[:3, :3], np.eye(3), atol=1e-5)
    assert bds.min() == pytest.approx(1 / 0.75, rel=1e-5)


def test_llff_self_supervision_runs_end_to_end(forward_scene, tmp_path):
    config = demo_config(forward_scene, tmp_path, "Config.dataset_type = 'llff'", "Config.factor = 4",
                         "Config.white_bkgd = False", "Config.N_iters = 30", "Config.n_steps = 5",
                         "Config.eval_steps = (0, 5)", "Config.sampling_strategy = 'random'",
                         "Config.batch_size = 64", "Config.N_rand = 128", "Config.llffhold = 4")
    result = run.self_supervision(config, device="cpu")
    # 9 training images (every 4th of 12 held out): 5 in the subset, 4 posed by iNeRF.
    assert len(result["subset"]) == 5 and len(result["added"]) == 4
    assert len(result["pose_errors"]) == 4
    assert np.isfinite(result["test_psnr_subset"]) and np.isfinite(result["test_psnr_with_inerf_poses"])
    assert os.path.isfile(f"{config.output_dir}/results/inerf_selfsup_object360.json")
