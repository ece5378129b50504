"""Bad input to mipnerf's loaders, trainer, eval and render_video: each case is refused (or
handled) with a message naming the file or key, and nothing in the data or run folder changes."""

import functools
import json
import re
import shutil

import gin
import numpy as np
import pytest
from absl import flags

from common import checkpoints, images
from data_tools.synth import build_scene, write_scene
from mipnerf import eval as mip_eval
from mipnerf import render_video, train
from mipnerf.internal import datasets, utils
from mipnerf.scripts import convert_blender_data
from tests.common.test_checkpoints import write_unreadable
from tests.conftest import folder_digest
from tests.mipnerf.test_train_eval import TINY, single_process

SCRIPTS = {"eval": mip_eval, "render_video": render_video}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    out = {"object360": write_scene(build_scene("object360", 0, 32, 32, 4), root / "object360"),
           "forward": write_scene(build_scene("forward", 0, 64, 48, 12), root / "forward")}
    convert_blender_data.main(["--blender_dir", str(out["object360"]), "--out_dir", str(root / "multiscale"),
                               "--n_down", "2"])
    out["multiscale"] = root / "multiscale"
    return out


@pytest.fixture
def scratch(scenes, tmp_path):
    """scratch(kind) -> a copy of that scene to spoil."""
    return lambda kind: shutil.copytree(scenes[kind], tmp_path / kind)


def load(split, folder, **config):
    dataset = datasets.get_dataset(split, str(folder), utils.Config(**config))
    dataset.close()
    return dataset


def refused(error, match, folder, split="train", **config):
    """Asserts loading raises `error` matching `match` and leaves `folder` as it was."""
    digest = folder_digest(folder)
    with pytest.raises(error, match=match):
        load(split, folder, **config)
    assert folder_digest(folder) == digest


def test_a_truncated_transforms_json_names_the_file(scratch):
    folder = scratch("object360")
    path = folder / "transforms_train.json"
    path.write_text(path.read_text()[:50])
    refused(ValueError, r"transforms_train.json is not valid JSON \(line", folder, dataset_loader="blender")


def test_a_malformed_metadata_json_names_the_file(scratch):
    folder = scratch("multiscale")
    (folder / "metadata.json").write_text("{'train': [1, 2,")
    refused(ValueError, "metadata.json is not valid JSON", folder, dataset_loader="multicam")


def test_a_truncated_blender_image_names_it(scratch):
    folder = scratch("object360")
    frame = json.loads((folder / "transforms_train.json").read_text())["frames"][1]["file_path"]
    path = folder / (frame + ".png")
    path.write_bytes(path.read_bytes()[:80])
    refused(images.ImageFileError, path.name, folder, dataset_loader="blender")


def test_upper_case_png_suffixes_are_read(scenes, scratch):
    reference = load("train", scenes["forward"], dataset_loader="llff", factor=4, llffhold=4).images
    folder = scratch("forward")
    for path in (folder / "images_4").iterdir():
        path.rename(path.with_suffix(".PNG"))
    np.testing.assert_array_equal(load("train", folder, dataset_loader="llff", factor=4, llffhold=4).images, reference)


def test_a_stray_file_in_the_llff_images_is_skipped_by_name(scenes, scratch):
    reference = load("train", scenes["forward"], dataset_loader="llff", factor=4, llffhold=4).images
    folder = scratch("forward")
    (folder / "images_4" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    digest = folder_digest(folder)
    with pytest.warns(UserWarning, match=r"\.DS_Store"):
        images_read = load("train", folder, dataset_loader="llff", factor=4, llffhold=4).images
    np.testing.assert_array_equal(images_read, reference)
    assert folder_digest(folder) == digest


def test_a_text_file_named_like_an_image_names_it(scratch):
    folder = scratch("forward")
    (folder / "images_4" / "IMG_0004.png").write_text("not a picture")
    refused(images.ImageFileError, "IMG_0004.png", folder, dataset_loader="llff", factor=4, llffhold=4)


def test_more_images_than_poses_names_both_files(scratch):
    folder = scratch("forward")
    shutil.copy(folder / "images_4" / "IMG_0004.png", folder / "images_4" / "IMG_0004b.png")
    refused(RuntimeError, r"imgs 13 \(in .*images_4\) and poses 12 \(in .*poses_bounds.npy\)", folder,
            dataset_loader="llff", factor=4, llffhold=4)


# The trainer, eval and render_video: each bad input is one line naming the file or key.

# Adam at a rate of 1e30 throws the weights far enough that the next step's loss is NaN.
DIVERGING = ["Config.lr_init = 1e30", "Config.lr_final = 1e30"]


def one_line_error(main, argv, capsys):
    """Runs a script's main with argv; asserts it exits with status 1 and returns its one-line stderr."""
    flags.FLAGS(argv)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def train_bindings(bindings):
    return ["train", "--gin_file=configs/demo.gin", "--render_every=0", *[f"--gin_param={b}" for b in bindings]]


def test_a_config_value_of_the_wrong_type_names_its_key(scene, tmp_path, capsys, fresh_gin_and_flags):
    run = tmp_path / "run"
    error = one_line_error(functools.partial(train.main, info=single_process()),
                           [*train_bindings(TINY + ["Config.batch_size = '4096'"]),
                            f"--train_dir={run}", f"--data_dir={scene}"], capsys)
    assert "Config.batch_size = '4096': expected int" in error
    assert not run.exists()


def test_missing_scene_data_names_the_folder_and_leaves_no_run_folder(tmp_path, capsys, fresh_gin_and_flags):
    run = tmp_path / "run"
    error = one_line_error(functools.partial(train.main, info=single_process()),
                           [*train_bindings(TINY), f"--train_dir={run}", f"--data_dir={tmp_path / 'absent'}"], capsys)
    assert str(tmp_path / "absent") in error
    assert not run.exists()


def test_a_nan_loss_of_a_fresh_run_says_no_checkpoint_was_written(scene, tmp_path, fresh_gin_and_flags):
    config = train.parse_config(["configs/demo.gin"], TINY + DIVERGING + ["Config.max_steps = 4"])
    run = tmp_path / "run"
    with pytest.raises(train.NonFiniteLossError, match="NaN at step 2; training stopped and no checkpoint "
                                                       "was written yet"):
        train.train(config, str(run), scene, single_process())
    assert checkpoints.list_checkpoints(run) == []


def test_a_nan_loss_of_a_resumed_run_names_the_last_good_checkpoint(scene, tmp_path, fresh_gin_and_flags):
    run = tmp_path / "run"
    train.train(train.parse_config(["configs/demo.gin"], TINY + ["Config.max_steps = 2"]), str(run), scene,
                single_process())
    saved = lambda: {k: v for k, v in folder_digest(run).items() if k.startswith("checkpoint_")}
    before = saved()
    gin.clear_config()
    config = train.parse_config(["configs/demo.gin"], TINY + DIVERGING + ["Config.max_steps = 6"])
    last_good = checkpoints.checkpoint_path(str(run), 2)
    with pytest.raises(train.NonFiniteLossError, match=f"NaN at step 4; .*the last good checkpoint, "
                                                       f"{re.escape(last_good)}, stays in place"):
        train.train(config, str(run), scene, single_process())
    assert saved() == before


@pytest.mark.parametrize("script", ["eval", "render_video"])
def test_a_malformed_config_gin_in_the_run_folder_names_it(script, scene, tmp_path, capsys, fresh_gin_and_flags):
    run = tmp_path / "run"
    write_unreadable(run, [2])  # Found, never read: the config comes first.
    (run / "config.gin").write_text("Config.batch_size = (\nMLP.net_depth = 2\n")
    before = folder_digest(run)
    error = one_line_error(SCRIPTS[script].main, [script, f"--ckpt={run}", f"--data_path={scene}",
                                                  f"--out_dir={tmp_path / 'out'}"], capsys)
    assert f"{run / 'config.gin'} is not a valid gin config file (line" in error
    assert folder_digest(run) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["eval", "render_video"])
def test_a_folder_of_unreadable_checkpoints_names_them(script, scene, tmp_path, capsys, fresh_gin_and_flags):
    run = tmp_path / "run"
    write_unreadable(run, [2, 4])
    before = folder_digest(run)
    error = one_line_error(SCRIPTS[script].main, [script, f"--ckpt={run}", f"--data_path={scene}",
                                                  f"--out_dir={tmp_path / 'out'}"], capsys)
    assert f"no checkpoint in {run} is readable" in error
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert folder_digest(run) == before and not (tmp_path / "out").exists()
