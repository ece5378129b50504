"""image_to_video: renders from a checkpoint in the original's format; trajectories of every dataset; errors."""

import logging
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from mine.synthesis_task import SynthesisTask
from mine.visualizations import image_to_video
from mine.visualizations.image_to_video import VideoGenerator, path_planning

CONFIGS = pathlib.Path(__file__).parents[2] / "mine" / "configs"
SIZE = 128
FRAMES = 6


def raw_params(dataset_yaml, **overrides):
    """params_default.yaml + a dataset yaml + overrides, unprocessed (what train.py writes to params.yaml)."""
    config = yaml.safe_load((CONFIGS / "params_default.yaml").read_text())
    config.update(yaml.safe_load((CONFIGS / dataset_yaml).read_text()))
    config.update(overrides)
    return config


def small_params(dataset_yaml="params_realestate.yaml"):
    """A 128x128, 4-plane ResNet-50 MINE: the released architecture at a CPU-friendly size."""
    return raw_params(dataset_yaml, **{"data.img_h": SIZE, "data.img_w": SIZE, "mpi.num_bins_coarse": 4,
                                        "model.imagenet_pretrained": False, "model.num_layers": 50})


def save_original_checkpoint(run_dir, config):
    """A random model saved as the original did: torch.save of module.-prefixed backbone, decoder, optimizer."""
    torch.manual_seed(3)
    task = SynthesisTask(dict(config, global_rank=0), logging.getLogger("test"), is_val=True)
    state = {"backbone": {"module." + k: v for k, v in task.backbone.state_dict().items()},
             "decoder": {"module." + k: v for k, v in task.decoder.state_dict().items()},
             "optimizer": task.optimizer.state_dict()}
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "checkpoint_latest.pth"
    torch.save(state, path)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(config))
    return path, task, state


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    """skimage's astronaut photo, 512x512 RGB."""
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    iio.imwrite(path, data.astronaut())
    return path


def test_renders_from_original_format_checkpoint(tmp_path, astronaut):
    """The original's checkpoint keys load into the model, and the four videos show its MPI."""
    path, task, state = save_original_checkpoint(tmp_path / "run", small_params())
    assert "module.convs.(-'-u-p-c-o-n-v-'-,- -4-,- -0-).conv.conv.weight" in state["decoder"]
    out = tmp_path / "videos"
    paths = image_to_video.main(["--checkpoint_path", str(path), "--data_path", str(astronaut),
                                 "--output_dir", str(out), "--num_frames", str(FRAMES),
                                 "--extra_config", '{"mpi.fix_disparity": true}'])
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(
        f"astronaut_{t}_{k}.mp4" for t in ("zoom-in", "swing") for k in ("rgb", "disp"))
    assert [pathlib.Path(p).name for p in paths][:2] == ["astronaut_zoom-in_rgb.mp4", "astronaut_zoom-in_disp.mp4"]
    log = (out / "inference.log").read_text()
    assert "missing keys in backbone checkpoint: set()" in log
    assert "missing keys in decoder checkpoint: set()" in log
    frames = iio.imread(out / "astronaut_zoom-in_rgb.mp4")
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    assert iio.imread(out / "astronaut_swing_disp.mp4").shape == (FRAMES, SIZE, SIZE, 3)

    # The first frame is the saved model's rendering at the first zoom-in pose (H.264 is lossy).
    task.config["mpi.fix_disparity"] = True
    expected = VideoGenerator(task, task.config, logging.getLogger("test"), iio.imread(astronaut), str(tmp_path), FRAMES)
    pose = torch.from_numpy(expected.tgts_poses[0][0].astype(np.float32)).unsqueeze(0)
    with torch.no_grad():
        rgb = task.render_novel_view(expected.mpi_all_rgb_src, expected.mpi_all_sigma_src,
                                     expected.disparity_all_src, pose, expected.K_inv, expected.K,
                                     scale_factor=torch.tensor([1.0]))["tgt_imgs_syn"]
    first = torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255
    assert (first - rgb[0]).abs().mean() < 0.015  # another random model: 0.04
    # A moving camera: the frames differ.
    assert np.abs(frames[0].astype(float) - frames[FRAMES // 2 - 1]).mean() > 1.0


@pytest.mark.parametrize("dataset_yaml", ["params_llff.yaml", "params_realestate.yaml", "params_kitti_raw.yaml",
                                          "params_flowers.yaml"])
def test_trajectories_of_every_dataset(dataset_yaml):
    """Zoom-in (double straight line) then swing (circle) with each dataset's ranges; the original's values."""
    config = raw_params(dataset_yaml)
    generator = VideoGenerator.__new__(VideoGenerator)
    generator.config, generator.num_frames = config, 90
    poses, traj = generator.traj_generation()
    assert traj["name"] == ["zoom-in", "swing"] and traj["fps"] == 30
    for i, kind in enumerate(["double-straight-line", "circle"]):
        xs, ys, zs = path_planning(90, traj["x_shift_range"][i], traj["y_shift_range"][i],
                                   traj["z_shift_range"][i], path_type=kind)
        np.testing.assert_allclose(poses[i][:, :3, 3], np.stack([xs, ys, zs], -1))
        np.testing.assert_array_equal(poses[i][:, :3, :3], np.broadcast_to(np.eye(3), (len(xs), 3, 3)))
    if config["data.name"] == "kitti_raw":
        assert traj["z_shift_range"] == [-1.5, -1.0] and traj["x_shift_range"] == [0.0, -0.8]
    if config["data.name"] == "realestate10k":
        assert traj["z_shift_range"] == [-0.30, -0.2] and traj["x_shift_range"] == [0.0, -0.16]
    generator.config = dict(config, **{"data.name": "cifar"})
    with pytest.raises(ValueError, match="Unsupported dataset 'cifar'"):
        generator.traj_generation()


def test_bad_inputs_write_nothing(tmp_path, astronaut):
    """A missing checkpoint, params.yaml or image, or an unknown extra key: an error naming it, no output."""
    out = tmp_path / "out"
    args = ["--data_path", str(astronaut), "--output_dir", str(out)]
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        image_to_video.main(["--checkpoint_path", str(tmp_path / "nope.pth"), *args])
    (tmp_path / "ckpt.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="params.yaml"):
        image_to_video.main(["--checkpoint_path", str(tmp_path / "ckpt.pth"), *args])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))
    with pytest.raises(KeyError, match="mpi.num_planes"):
        image_to_video.main(["--checkpoint_path", str(tmp_path / "ckpt.pth"), *args,
                             "--extra_config", '{"mpi.num_planes": 3}'])
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        image_to_video.main(["--checkpoint_path", str(tmp_path / "ckpt.pth"), "--output_dir", str(out),
                             "--data_path", str(tmp_path / "missing.jpg")])
    assert not out.exists()
