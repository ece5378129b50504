"""The demo script: its LLFF layout of the synthetic scene, its photo, and (slow) the whole demo."""

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from mine.input_pipelines.llff.nerf_dataset import NeRFDataset
from mine.scripts import demo

REPO = demo.REPO


def test_llff_layout_holds_out_every_eighth_view(tmp_path):
    """images/ and images_val/ split the views; the LLFF loader reads both with the scene's sparse points."""
    scene = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "forward", "--res", "128x128",
                    "--views", "10", "--out", str(scene)], check=True, capture_output=True, cwd=REPO)
    root = demo.llff_layout(str(scene), str(tmp_path / "root"))
    val = sorted(p.name for p in (tmp_path / "root" / "forward" / "images_val").iterdir())
    train = sorted(p.name for p in (tmp_path / "root" / "forward" / "images").iterdir())
    assert val == ["IMG_0000.png", "IMG_0008.png"] and len(train) == 8 and not set(val) & set(train)
    kwargs = dict(img_size=(128, 128), supervision_count=1, visible_points_count=16, img_pre_downsample_ratio=1)
    assert len(NeRFDataset({}, None, root, False, **kwargs)) == 8
    val_set = NeRFDataset({}, None, root, True, **kwargs)
    assert len(val_set) == 2
    src, tgt = val_set[0]
    assert not np.allclose(np.asarray(tgt["G_src_tgt"][0]), np.eye(4))  # a held-out view from another pose


def test_astronaut_is_cropped_to_the_demo_aspect(tmp_path):
    """The photo keeps its width and loses rows to reach the 2:1 training aspect ratio."""
    img = iio.imread(demo.astronaut(str(tmp_path / "a.png")))
    assert img.shape == (256, 512, 3)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """Trains one epoch, evaluates and writes the four videos (make test-slow)."""
    out = tmp_path / "ws" / "demo"
    metrics = demo.main(["--out", str(out), "--synth_dir", str(tmp_path / "synth"), "--epochs", "1",
                         "--num_frames", "2", "--extra_config", json.dumps({"mpi.num_bins_coarse": 4})])
    assert metrics["count"] == 3 and np.isfinite(metrics["psnr"])
    assert len(list((out / "videos").glob("astronaut_*.mp4"))) == 4
    assert (out / "checkpoint_latest.pth").is_file() and (out / "training.log").is_file()
