"""Bad input to inerf's entry points: each is refused with an error naming the file or key, and the
run folder and the data folder stay exactly as they were (files and folders).

Part B (iNeRF on a NeRF, gin): inerf.run on a tiny Blender or LLFF scene with a tiny NeRF checkpoint.
Part A (pixelNeRF, HOCON .conf): inerf.eval.eval on a tiny SRN split with the tiny config.
"""

import json
import os
import pathlib
import re

import gin
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from common import images
from tests.conftest import folder_digest
from tests.inerf import test_release_synth as srn_synth

SIZE = 8  # pixels of the Blender / LLFF test scenes
TINY_NERF = ("Config.netdepth = 2", "Config.netwidth = 8", "Config.N_samples = 4", "Config.N_importance = 0",
             "Config.multires = 2", "Config.multires_views = 1", "Config.n_steps = 1", "Config.batch_size = 8",
             "Config.eval_steps = (0, 1)", "Config.n_test_images = 1", "Config.n_trials = 1",
             "Config.sampling_strategy = 'random'", "Config.model_name = 'tiny'")


def snapshot(*folders):
    """{folder: (folder_digest, sorted sub-folders)}: any file or folder written, changed or removed shows."""
    return {str(f): (folder_digest(f), sorted(str(p) for p in pathlib.Path(f).rglob("*") if p.is_dir()))
            for f in folders}


def write_png(path, rng, channels=4):
    """A random SIZE x SIZE uint8 image at path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(path, rng.integers(0, 256, (SIZE, SIZE, channels), dtype=np.uint8))


def write_blender_scene(root):
    """<root>/transforms_{train,val,test}.json with two RGBA frames each."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        frames = []
        for k in range(2):
            pose = np.eye(4)
            pose[:3, 3] = [0.0, 0.0, 4.0 + k]
            write_png(root / split / f"r_{k}.png", rng)
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": pose.tolist()})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    return root


def write_llff_scene(root, n_images, n_rows):
    """<root>/images_8/ with n_images PNGs and a poses_bounds.npy of n_rows rows."""
    rng = np.random.default_rng(0)
    for k in range(n_images):
        write_png(root / "images_8" / f"{k:03d}.png", rng, channels=3)
    pose = np.concatenate([np.eye(3)[:, [1, 0, 2]], np.zeros((3, 1)), [[SIZE], [SIZE], [10.0]]], 1)
    rows = np.concatenate([np.tile(pose.reshape(1, 15), (n_rows, 1)), np.tile([[1.0, 5.0]], (n_rows, 1))], 1)
    np.save(root / "poses_bounds.npy", rows)
    return root


@pytest.fixture
def blender(tmp_path):
    """(data folder, run folder holding the tiny NeRF's <model_name>.tar, gin config file)."""
    from inerf import nerf_helpers, utils

    data = write_blender_scene(tmp_path / "data" / "scene")
    run = tmp_path / "run"
    run.mkdir()
    gin_file = run / "tiny.gin"
    gin_file.write_text("\n".join(TINY_NERF + (f"Config.data_dir = '{data}'", f"Config.ckpt_dir = '{run}'",
                                               f"Config.output_dir = '{run}/out'")) + "\n")
    gin.clear_config()
    try:
        config = utils.parse_config([str(gin_file)])
    finally:
        gin.clear_config()
    _, models = nerf_helpers.create_nerf(config)
    torch.save({"global_step": 1, "network_fn_state_dict": models["network_fn"].state_dict(),
                "network_fine_state_dict": None}, run / "tiny.tar")
    return data, run, gin_file


def refused(error, match, *folders, argv):
    """Runs inerf.run.main(argv); asserts it raises `error` matching `match` and leaves folders as they were."""
    from inerf import run

    before = snapshot(*folders)
    gin.clear_config()
    try:
        with pytest.raises(error, match=match):
            run.main(argv + ["--device", "cpu"])
    finally:
        gin.clear_config()
    assert snapshot(*folders) == before


def test_the_fixture_scene_runs(blender):
    """The unaltered scene, checkpoint and config run the protocol (the cases below each break one thing)."""
    from inerf import run

    data, run_dir, gin_file = blender
    gin.clear_config()
    try:
        run.main(["--gin_configs", str(gin_file), "--device", "cpu"])
    finally:
        gin.clear_config()
    assert (run_dir / "out" / "results" / "inerf_tiny.json").is_file()


def test_gin_unknown_config_field(blender):
    data, run_dir, gin_file = blender
    bad = run_dir / "bad.gin"
    bad.write_text("Config.nope = 1\n")
    refused(ValueError, rf"(?s)named 'nope'.*{re.escape(str(bad))}", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_configs", str(bad)])


def test_gin_unknown_configurable(blender):
    data, run_dir, gin_file = blender
    refused(ValueError, "No configurable matching 'Nope'", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_bindings", "Nope.x = 1"])


def test_gin_syntax_error_names_file_and_line(blender):
    data, run_dir, gin_file = blender
    bad = run_dir / "broken.gin"
    bad.write_text("Config.n_steps = 3\nConfig.batch_size = 'x\n")
    refused(SyntaxError, r"broken\.gin, line 2", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_configs", str(bad)])


def test_gin_value_of_wrong_type(blender):
    data, run_dir, gin_file = blender
    refused(ValueError, r"Config\.batch_size = '512': expected int", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_bindings", "Config.batch_size = '512'"])


def test_gin_value_not_among_the_choices(blender):
    data, run_dir, gin_file = blender
    refused(ValueError, r"Config\.sampling_strategy = 'spiral': must be one of", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_bindings", "Config.sampling_strategy = 'spiral'"])


def test_truncated_transforms_json(blender):
    data, run_dir, gin_file = blender
    path = data / "transforms_test.json"
    path.write_text(path.read_text()[:40])
    refused(ValueError, rf"{re.escape(str(path))} is not valid JSON \(line 1", data, run_dir,
            argv=["--gin_configs", str(gin_file)])


def test_truncated_png(blender):
    data, run_dir, gin_file = blender
    path = data / "test" / "r_0.png"
    path.write_bytes(path.read_bytes()[:60])
    refused(images.ImageFileError, re.escape(str(path)), data, run_dir, argv=["--gin_configs", str(gin_file)])


def test_not_an_image_with_png_suffix(blender):
    data, run_dir, gin_file = blender
    path = data / "train" / "r_1.png"
    path.write_text("not an image\n")
    refused(images.ImageFileError, re.escape(str(path)), data, run_dir, argv=["--gin_configs", str(gin_file)])


def test_llff_pose_rows_do_not_match_the_images(blender, tmp_path):
    _, run_dir, gin_file = blender
    data = write_llff_scene(tmp_path / "data" / "llff", n_images=2, n_rows=3)
    refused(ValueError, rf"2 images but {re.escape(str(data / 'poses_bounds.npy'))} has 3 rows", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_bindings", "Config.dataset_type = 'llff'",
                  "--gin_bindings", f"Config.data_dir = '{data}'"])


def test_missing_nerf_checkpoint(blender):
    data, run_dir, gin_file = blender
    os.remove(run_dir / "tiny.tar")
    refused(FileNotFoundError, rf"expected {re.escape(str(run_dir / 'tiny.tar'))}, or .* in "
            rf"{re.escape(str(run_dir / 'tiny'))}", data, run_dir, argv=["--gin_configs", str(gin_file)])


def test_obs_img_num_out_of_range(blender):
    data, run_dir, gin_file = blender
    refused(ValueError, r"--obs_img_num / Config\.obs_img_num must be in \[0, 2\)", data, run_dir,
            argv=["--gin_configs", str(gin_file), "--gin_bindings", "Config.obs_from_test_split = True",
                  "--obs_img_num", "2"])


# pixelNeRF (Part A): inerf.eval.eval on a one-object SRN test split.


@pytest.fixture
def srn(tmp_path, tiny_conf, monkeypatch):
    """(data folder, run folder: the cwd, holding tiny.conf, checkpoints/ and the eval output, eval argv)."""
    data = tmp_path / "data"
    srn_synth.write_srn_object(data / "cars_test" / "obj0", n_views=2, size=32, seed=0)
    run = tmp_path / "run"
    for folder in ("checkpoints", "visuals"):  # as the release's parse_args makes them
        (run / folder / "tiny").mkdir(parents=True)
    (run / "tiny.conf").write_text(tiny_conf)
    monkeypatch.chdir(run)  # visuals/ and checkpoints/ are relative to it
    argv = ["-n", "tiny", "-c", str(run / "tiny.conf"), "-D", str(data / "cars"), "-F", "srn", "-P", "1",
            "-O", str(run / "eval_out"), "--num_workers", "0", "--checkpoints_path", str(run / "checkpoints"),
            "--visual_path", str(run / "visuals"), "--no_compare_gt", "--scale", "0.25"]
    return data, run, argv


def eval_refused(error, match, *folders, argv):
    """Runs inerf.eval.eval.main(argv); asserts it raises `error` matching `match`, folders unchanged."""
    from inerf.eval import eval as pn_eval

    before = snapshot(*folders)
    with pytest.raises(error, match=match):
        pn_eval.main(argv)
    assert snapshot(*folders) == before


def test_malformed_conf_names_file_and_line(srn):
    data, run, argv = srn
    conf = run / "tiny.conf"
    conf.write_text("model {\n    encoder { backbone = resnet18 }\n    mlp_coarse { n_blocks = [3, }\n}\n")
    eval_refused(ValueError, rf"{re.escape(str(conf))}, line 3, column \d+: not valid HOCON", data, run, argv=argv)


def test_conf_missing_a_required_key(srn):
    data, run, argv = srn
    conf = run / "tiny.conf"
    conf.write_text("model { encoder { backbone = resnet18, pretrained = False } }\n")
    eval_refused(ValueError, rf"{re.escape(str(conf))}: missing required key\(s\) renderer", data, run, argv=argv)


def test_pixelnerf_checkpoint_of_random_bytes(srn):
    data, run, argv = srn
    path = run / "checkpoints" / "tiny" / "pixel_nerf_latest"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    eval_refused(ValueError, rf"{re.escape(str(path))} is not a readable pixelNeRF checkpoint", data, run,
                 argv=argv)


def test_srn_image_that_is_not_an_image(srn):
    data, run, argv = srn
    path = data / "cars_test" / "obj0" / "rgb" / "000001.png"
    path.write_text("not an image\n")
    with pytest.warns(UserWarning, match="pixel_nerf_latest does not exist"):
        eval_refused(images.ImageFileError, re.escape(str(path)), data, run, argv=argv)
