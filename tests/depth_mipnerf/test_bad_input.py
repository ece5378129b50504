"""Bad input to depth_mipnerf: each case is refused with a message naming the file or key, and
nothing in the data folder changes (more depth-map cases: tests/depth_mipnerf/test_datasets.py)."""

import re
import shutil

import gin
import numpy as np
import OpenEXR
import pytest

from common import images
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import Blender
from tests.conftest import folder_digest


def refused(error, match, folder, **kwargs):
    """Asserts Blender(folder, 'train', num_images=3) raises `error` matching `match`, folder unchanged."""
    digest = folder_digest(folder)
    with pytest.raises(error, match=match):
        Blender(str(folder), "train", **{"num_images": 3, **kwargs})
    assert folder_digest(folder) == digest


def test_a_truncated_transforms_json_names_the_file(scene_copy):
    path = scene_copy / "transforms_train.json"
    path.write_text(path.read_text()[:100])
    refused(ValueError, r"transforms_train.json: not valid JSON \(line", scene_copy)


def test_a_truncated_image_names_it(scene_copy):
    path = scene_copy / "train" / "r_1.png"
    path.write_bytes(path.read_bytes()[:90])
    refused(images.ImageFileError, re.escape(str(path)), scene_copy)


def test_a_text_file_named_like_an_image_names_it(scene_copy):
    (scene_copy / "train" / "r_2.png").write_text("placeholder")
    refused(images.ImageFileError, r"r_2\.png", scene_copy)


def test_a_truncated_npy_depth_map_names_it(scene_copy):
    path = scene_copy / "depth" / "train" / "r_0.npy"
    path.write_bytes(path.read_bytes()[:100])
    refused(images.ImageFileError, r"r_0\.npy", scene_copy)


def per_image_depths(scene, first_exr_bytes):
    """Depth maps beside the images (r_<i>_depth.npy), the first as an EXR holding first_exr_bytes."""
    for i in (1, 2):
        np.save(scene / "train" / f"r_{i}_depth.npy", np.load(scene / "depth" / "train" / f"r_{i}.npy"))
    shutil.rmtree(scene / "depth" / "train")
    (scene / "train" / "r_0_depth_0001.exr").write_bytes(first_exr_bytes)


def test_an_exr_of_random_bytes_names_it(scene_copy):
    per_image_depths(scene_copy, b"v/1\x01" + np.random.default_rng(0).bytes(200))
    refused(images.ImageFileError, r"r_0_depth_0001\.exr", scene_copy)


def truncated_exr(tmp_path):
    """The first half of a 64x64 FLOAT, ZIP EXR written by the OpenEXR library."""
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"R": np.ones((64, 64), np.float32)}) as exr:
        exr.write(str(tmp_path / "whole.exr"))
    data = (tmp_path / "whole.exr").read_bytes()
    return data[:len(data) // 2]


def test_a_truncated_exr_names_it(scene_copy, tmp_path):
    per_image_depths(scene_copy, truncated_exr(tmp_path))
    refused(images.ImageFileError, r"r_0_depth_0001\.exr", scene_copy)


def test_a_truncated_normal_exr_names_it(scene_copy, tmp_path):
    (scene_copy / "train" / "r_1_normal_0001.exr").write_bytes(truncated_exr(tmp_path))
    refused(images.ImageFileError, r"r_1_normal_0001\.exr", scene_copy)


@pytest.mark.parametrize("binding, key", [
    ("loss.lambda_depth = '0.1'", "loss.lambda_depth = '0.1': expected float, got str"),
    ("train.batch_size = 1024.0", "train.batch_size = 1024.0: expected int, got float"),
    ("train.white_bkgd = 'yes'", "train.white_bkgd = 'yes': expected bool, got str"),
])
def test_a_config_value_of_the_wrong_type_names_the_key(binding, key):
    gin.clear_config()
    try:
        with pytest.raises(ValueError, match=re.escape(key)):
            config_lib.parse(["depth_mipnerf/configs/demo.gin"], [binding])
    finally:
        gin.clear_config()


def test_an_unknown_configurable_names_it():
    gin.clear_config()
    try:
        with pytest.raises(ValueError, match="No configurable matching 'los'"):
            config_lib.parse(["depth_mipnerf/configs/demo.gin"], ["los.lambda_depth = 0.1"])
    finally:
        gin.clear_config()


def run_flags(scene, run_dir, *bindings):
    """Command-line flags of a tiny CPU run of demo.gin on scene in run_dir."""
    tiny = ["optimizer.max_steps = 1", "train.batch_size = 64", "nerf.num_samples = 8", "nerf.num_fine_samples = 8"]
    return ["--device", "cpu", "--gin_configs=configs/demo.gin", f"--gin_bindings=Config.data_dir = '{scene}'",
            f"--gin_bindings=Config.checkpoint_dir = '{run_dir}'", *[f"--gin_bindings={b}" for b in tiny + list(bindings)]]


def saved_run(scene, run_dir, steps):
    """A run folder holding the config.gin of run_flags and unreadable checkpoints of `steps`."""
    from tests.common.test_checkpoints import write_unreadable

    gin.clear_config()
    config_lib.parse(["configs/demo.gin"], [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run_dir}'"])
    run_dir.mkdir()
    (run_dir / "config.gin").write_text(gin.config_str())
    gin.clear_config()
    write_unreadable(run_dir, steps)


def refused_cli(main, argv, match, folder, capsys):
    """Asserts main(argv) exits with one line on stderr matching every regex of `match`, folder unchanged."""
    digest = folder_digest(folder)
    gin.clear_config()
    try:
        with pytest.raises(SystemExit):
            main(argv)
    finally:
        gin.clear_config()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for pattern in match:
        assert re.search(pattern, err), err
    assert folder_digest(folder) == digest


@pytest.mark.parametrize("command", ["eval", "render_video"])
def test_eval_and_render_of_unreadable_checkpoints_name_them(scene, tmp_path, capsys, command):
    from depth_mipnerf import eval as dm_eval
    from depth_mipnerf import render_video

    run = tmp_path / "run"
    saved_run(scene, run, [1, 2])
    main = dm_eval.main if command == "eval" else render_video.main
    refused_cli(main, run_flags(scene, run), [r"checkpoint_00000001\.pt", r"checkpoint_00000002\.pt", "readable"],
                run, capsys)


def test_eval_of_a_run_without_checkpoints_says_so(scene, tmp_path, capsys):
    from depth_mipnerf import eval as dm_eval

    run = tmp_path / "run"
    saved_run(scene, run, [])
    refused_cli(dm_eval.main, run_flags(scene, run), [re.escape(f"{run}: no readable checkpoint_*.pt")], run, capsys)


def test_a_checkpoint_dir_that_is_a_file_names_it(scene, tmp_path, capsys):
    from depth_mipnerf import train

    path = tmp_path / "run"
    path.write_text("not a folder")
    refused_cli(train.main, run_flags(scene, path), [re.escape(f"Config.checkpoint_dir = '{path}' is a file")],
                tmp_path, capsys)


def test_a_different_config_gin_is_kept_unless_overwrite_config(scene, tmp_path, capsys):
    from depth_mipnerf import train

    run = tmp_path / "run"
    train.main(run_flags(scene, run))
    capsys.readouterr()
    changed = run_flags(scene, run, "optimizer.max_steps = 2")
    refused_cli(train.main, changed, [re.escape(f"{run / 'config.gin'} differs"), "optimizer.max_steps = 1",
                                      "--overwrite_config"], run, capsys)
    gin.clear_config()
    train.main(changed + ["--overwrite_config"])
    assert "optimizer.max_steps = 2" in (run / "config.gin").read_text()
    assert (run / "checkpoint_00000002.pt").exists()


def test_config_gin_is_written_only_after_the_restore(scene, tmp_path, capsys):
    from depth_mipnerf import train

    run = tmp_path / "run"
    saved_run(scene, run, [1])
    refused_cli(train.main, run_flags(scene, run, "loss.lambda_depth = 0.5") + ["--overwrite_config"],
                [r"checkpoint_00000001\.pt", "--start_afresh"], run, capsys)
