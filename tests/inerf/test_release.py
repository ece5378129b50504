"""The release's scripts on a tiny synthetic SRN object: gen_video and pose_estimation, from a checkpoint
in pixelNeRF's format (checkpoints/<name>/pixel_nerf_latest)."""

import pathlib
import types

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from pyhocon import ConfigFactory

from inerf.src import util
from inerf.src.data import get_split_dataset
from inerf.src.model import make_model
from tests.inerf import test_release_synth as srn_synth


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory, tiny_conf):
    """Working directory with data/cars_test (2 objects x 105 views), tiny.conf and its checkpoint."""
    root = tmp_path_factory.mktemp("release")
    datadir = srn_synth.write_srn_split(root / "data", "test", n_objs=2, n_views=105)
    conf_path = root / "tiny.conf"
    conf_path.write_text(tiny_conf)
    torch.manual_seed(0)
    net = make_model(ConfigFactory.parse_file(str(conf_path))["model"])
    (root / "checkpoints" / "srn_car").mkdir(parents=True)
    net.save_weights(types.SimpleNamespace(checkpoints_path=str(root / "checkpoints"), name="srn_car"))
    return types.SimpleNamespace(root=root, datadir=datadir, conf=str(conf_path), state_dict=net.state_dict())


def test_srn_loader_matches_gen_rays(release_dir):
    """Loaded poses, focal and c put the sphere exactly where the images show it (OpenCV -> OpenGL flip)."""
    data = get_split_dataset("srn", release_dir.datadir, want_split="test", training=False)[1]
    assert data["images"].shape == (105, 3, 128, 128)
    rays = util.gen_rays(data["poses"][:8], 128, 128, data["focal"], 0.8, 1.8, c=data["c"])
    o, d = rays[..., :3], rays[..., 3:6]
    b = (o * d).sum(-1)
    hit = b ** 2 - ((o * o).sum(-1) - srn_synth.RADIUS ** 2) > 0
    seen = (data["images"][:8] < 1.0).any(1)
    assert (hit != seen).float().mean() < 1e-3
    rows_cols = torch.nonzero(seen[0])
    lo, hi = rows_cols.amin(0), rows_cols.amax(0)
    assert data["bbox"][0].tolist() == [lo[1], lo[0], hi[1], hi[0]]  # [xmin, ymin, xmax, ymax]


def test_gen_video_release_command(release_dir, monkeypatch):
    """`gen_video -n srn_car --split test -P '64 104' -D <data>/cars -S 1` renders a gif from the checkpoint."""
    from inerf.eval import gen_video

    monkeypatch.chdir(release_dir.root)
    vid_path = gen_video.main(["-n", "srn_car", "--split", "test", "-P", "64 104", "-D", release_dir.datadir,
                               "-S", "1", "-c", release_dir.conf, "--num_views", "3", "--scale", "0.125",
                               "--gpu_id", "0"])
    assert vid_path.endswith("visuals/srn_car/videot0001_v064_104.gif")
    frames = imageio.mimread(release_dir.root / vid_path)
    assert len(frames) == 3 and frames[0].shape[:2] == (16, 16)
    view = imageio.imread(release_dir.root / "visuals/srn_car/videot0001_v064_104_view.jpg")
    assert view.shape[:2] == (128, 256)  # the two source views side by side


def test_gen_video_bad_source_view(release_dir, monkeypatch):
    """A source view beyond the object's views is a clear error, and no video is written."""
    from inerf.eval import gen_video

    monkeypatch.chdir(release_dir.root)
    with pytest.raises(IndexError, match="has only 105 views"):
        gen_video.main(["-n", "srn_car", "--split", "test", "-P", "200", "-D", release_dir.datadir, "-S", "0",
                        "-c", release_dir.conf, "--num_views", "1", "--scale", "0.125"])
    assert not list((release_dir.root / "visuals" / "srn_car").glob("videot0000*"))


def _write_views(release_dir):
    """Input view 0 and target view 1 of object 0 as PNGs (128x128, as the release's input/1.png, 2.png)."""
    obj = pathlib.Path(release_dir.datadir + "_test") / "obj0" / "rgb"
    return str(obj / "000000.png"), str(obj / "000001.png")


def test_pose_estimation_as_released(release_dir, monkeypatch):
    """101 Adam steps on the raw 4x4 pose; poses logged every 20 steps; frames, overlays and video written.

    The images are resized to 64 px (--size, --out_size, focal halved) to keep the test short.
    """
    from inerf.eval import pose_estimation

    monkeypatch.chdir(release_dir.root)
    source, target = _write_views(release_dir)
    torch.manual_seed(0)
    out = pose_estimation.main(["-n", "srn_car", "-c", release_dir.conf, "-I", source, "-T", target,
                                "-O", str(release_dir.root / "pose_out"), "--lrate", "1e-2", "--n_steps", "7",
                                "--size", "64", "--out_size", "64", "--focal", "65.625"])
    poses = out["poses"]
    assert poses.shape == (6, 4, 4)  # steps 0, 20, ..., 100: --n_steps is ignored as released
    start = np.eye(4, dtype=np.float32)
    start[2, 3] = 1.3
    np.testing.assert_allclose(poses[0], start)
    assert np.abs(poses[-1] - poses[0]).max() > 1e-3  # the pose moved
    rot = poses[-1][:3, :3]
    assert np.abs(rot.T @ rot - np.eye(3)).max() > 1e-5  # raw matrix update: not a rotation any more
    assert len(list(pathlib.Path(out["frames_dir"]).glob("*.png"))) == 6
    assert sorted(p.name for p in release_dir.root.glob("overlay_*.png")) == [f"overlay_{i}.png" for i in range(6)]
    assert out["video"].endswith("000000_vid.mp4") and pathlib.Path(out["video"]).stat().st_size > 0


def test_pose_estimation_patch_sampling(release_dir, monkeypatch):
    """patch sampling renders the fixed central 32x32 box; --use_n_steps honours --n_steps."""
    from inerf.eval import pose_estimation

    monkeypatch.chdir(release_dir.root)
    idx = pose_estimation.sample_pixels("patch", 128, 128)
    rows, cols = idx // 128, idx % 128
    assert len(idx) == 1024 and rows.min() == 48 and rows.max() == 79 and cols.min() == 48 and cols.max() == 79
    center = pose_estimation.sample_pixels("center", 128, 128)
    assert len(center) == 1024 and (center // 128).min() >= 32 and (center // 128).max() < 96
    source, target = _write_views(release_dir)
    out = pose_estimation.main(["-n", "srn_car", "-c", release_dir.conf, "-I", source, "-T", target,
                                "-O", str(release_dir.root / "patch_out"), "--sampling", "patch",
                                "--use_n_steps", "--n_steps", "2", "--no_vid"])
    assert out["poses"].shape == (1, 4, 4) and out["video"] is None
    gt = imageio.imread(release_dir.root / "gt_patch_0.png")
    target_img = imageio.imread(target)
    np.testing.assert_allclose(gt[48:80, 48:80].astype(int), target_img[48:80, 48:80].astype(int), atol=1)
    assert gt[:48].max() == 0


def test_pose_estimation_missing_image(release_dir, monkeypatch):
    """A missing input image is a clear error naming it."""
    from inerf.eval import pose_estimation

    monkeypatch.chdir(release_dir.root)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        pose_estimation.main(["-n", "srn_car", "-c", release_dir.conf, "-I", "nope.png", "-T", "nope.png"])
