"""mipnerf.scripts.convert_blender_data: the multi-scale Blender layout from a data_tools.synth scene."""

import json
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from data_tools.synth import build_scene, write_scene
from mipnerf.scripts import convert_blender_data

KEYS = ["file_path", "cam2world", "width", "height", "focal", "label", "near", "far", "lossmult",
        "pix2cam"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """An object360 scene, 64x64 pixels, 3 training views (1 val, 1 test)."""
    return write_scene(build_scene("object360", 0, 64, 64, 3), tmp_path_factory.mktemp("raw") / "object360")


def test_down2_averages_blocks_in_numpy_order():
    img = torch.rand(6, 8, 4)
    np.testing.assert_allclose(convert_blender_data.down2(img),
                               img.reshape(3, 2, 4, 2, 4).mean((1, 3)), rtol=1e-6)
    assert convert_blender_data.down2(torch.rand(4, 4)).shape == (2, 2, 1)
    # The same float32 sums as the original's np.mean, so 8-bit truncation gives the same bytes.
    levels = np.random.default_rng(0).integers(0, 256, (64, 64, 4)) / np.float32(255.)
    levels = levels.astype(np.float32)
    for channels in (levels, levels[..., :1]):
        expected = np.mean(channels.reshape(32, 2, 32, 2, -1), (1, 3))
        np.testing.assert_array_equal(convert_blender_data.down2(torch.from_numpy(channels)), expected)


def test_convert_writes_every_scale(scene, tmp_path):
    out = tmp_path / "multi"
    convert_blender_data.main(["--blender_dir", str(scene), "--out_dir", str(out)])
    meta = json.loads((out / "metadata.json").read_text())
    assert sorted(meta) == ["test", "train", "val"]
    assert list(meta["train"]) == KEYS
    transforms = json.loads((scene / "transforms_train.json").read_text())
    focal = 32 / np.tan(.5 * transforms["camera_angle_x"])
    train = meta["train"]
    assert len(train["file_path"]) == 3 * 4
    for k, path in enumerate(train["file_path"]):
        i, j = divmod(k, 4)
        assert path == f"images_train/{i:03d}_d{j}.png"
        image = iio.imread(out / path)
        assert image.shape == (64 >> j, 64 >> j, 4)  # alpha kept
        assert (train["width"][k], train["height"][k], train["label"][k]) == (64 >> j, 64 >> j, j)
        assert train["focal"][k] == pytest.approx(focal / 2**j)
        assert (train["lossmult"][k], train["near"][k], train["far"][k]) == (4.**j, 2., 6.)
        assert train["cam2world"][k] == transforms["frames"][i]["transform_matrix"]
        # K^-1 with the y and z axes flipped into NeRF's camera.
        k_matrix = np.array([[focal / 2**j, 0, 32 >> j], [0, focal / 2**j, 32 >> j], [0, 0, 1]])
        np.testing.assert_allclose(train["pix2cam"][k], np.diag([1, -1, -1]) @ np.linalg.inv(k_matrix),
                                   rtol=1e-12, atol=1e-15)
    # Each scale is the previous float image box-filtered and truncated to 8 bits.
    original = iio.imread(scene / "train" / "r_1.png") / np.float32(255.)
    level = original.astype(np.float32)
    for j in range(4):
        np.testing.assert_array_equal(iio.imread(out / f"images_train/001_d{j}.png"),
                                      np.uint8(level * 255))
        level = convert_blender_data.down2(torch.from_numpy(level)).numpy()
    assert len(meta["test"]["file_path"]) == len(meta["val"]["file_path"]) == 4


def test_folders_of_scenes_and_original_flag_names(scene, tmp_path):
    root = tmp_path / "nerf_synthetic"
    shutil.copytree(scene, root / "lego")
    shutil.copytree(scene, root / "chair")
    (root / "not_a_scene").mkdir()
    convert_blender_data.main(["--blenderdir", str(root), "--outdir", str(tmp_path / "all"),
                               "--n_down", "2"])
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["chair", "lego"]
    meta = json.loads((tmp_path / "all" / "lego" / "metadata.json").read_text())
    assert meta["train"]["label"] == [0, 1] * 3
    convert_blender_data.main(["--blender_dir", str(root), "--out_dir", str(tmp_path / "one"),
                               "--object_name", "lego", "--n_down", "1"])
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["lego"]


def test_bad_input_is_a_clear_error(scene, tmp_path):
    with pytest.raises(FileNotFoundError, match="data_tools.synth --scene object360"):
        convert_blender_data.main(["--blender_dir", str(tmp_path / "missing"), "--out_dir", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="holds no Blender scene"):
        convert_blender_data.main(["--blender_dir", str(tmp_path), "--out_dir", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="divisible by 128"):
        convert_blender_data.main(["--blender_dir", str(scene), "--out_dir", str(tmp_path / "o"),
                                   "--n_down", "8"])


def test_command_line(scene, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mipnerf.scripts.convert_blender_data", "--blender_dir", str(scene),
         "--out_dir", str(tmp_path / "cli"), "--n_down", "2"],
        capture_output=True, text=True, check=True)
    assert "train: 3 views x 2 scales" in result.stdout
    assert (tmp_path / "cli" / "images_test" / "000_d1.png").exists()
