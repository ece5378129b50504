"""Bad input to mipnerf360: each case is refused (or handled) with a message naming the file or key,
and nothing in the run or data folder changes."""

import errno
import logging
import os
import re
import shutil

import cv2
import gin
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from absl import flags

from common import checkpoints, images
from data_tools.synth import build_scene, write_scene
from mipnerf360 import eval as eval_lib
from mipnerf360 import render as render_lib
from mipnerf360 import train
from mipnerf360.internal import configs, datasets, models, train_utils, utils  # noqa: F401 (models registers its configurables)
from tests.common.test_checkpoints import write_unreadable
from tests.conftest import folder_digest
from tests.mipnerf360.test_train import TINY, single_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_360 = os.path.join(REPO, "mipnerf360", "configs", "360.gin")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 12-view 64x48 synthetic unbounded360 scene (with images_2, images_4, images_8)."""
    return write_scene(build_scene("unbounded360", 0, 64, 48, 12), tmp_path_factory.mktemp("bad") / "scene")


@pytest.fixture
def scratch(scene, tmp_path):
    """A scratch copy of the scene."""
    return shutil.copytree(scene, tmp_path / "scene")


def load_config(tmp_path, bindings, skip_unknown=False):
    """configs.load_config from these gin bindings (360.gin first), with a run folder in tmp_path."""
    flags.FLAGS.unparse_flags()
    configs.define_common_flags()
    argv = ["test", f"--gin_configs={CONFIG_360}", f"--gin_bindings=Config.checkpoint_dir = '{tmp_path / 'run'}'"]
    argv += [f"--gin_bindings={b}" for b in bindings] + (["--gin_skip_unknown"] if skip_unknown else [])
    flags.FLAGS(argv)
    gin.clear_config()
    return configs.load_config()


def load(folder, **config):
    dataset = datasets.load_dataset("train", str(folder), configs.Config(**config))
    dataset.close()
    return dataset


@pytest.mark.parametrize("binding, key", [
    ("Config.factor = '4'", "Config.factor = '4': expected int, got str"),
    ("Config.batch_size = 1.5", "Config.batch_size = 1.5: expected int, got float"),
    ("Config.checkpoint_every = None", "Config.checkpoint_every = None"),
    ("Config.disable_multiscale_loss = 'yes'", "Config.disable_multiscale_loss = 'yes'"),
])
def test_a_config_value_of_the_wrong_type_names_the_key(tmp_path, binding, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        load_config(tmp_path, [binding])
    assert folder_digest(tmp_path) == {}  # config.gin is not written


def test_an_unknown_configurable_is_an_error_or_skipped_by_name(tmp_path, caplog):
    with pytest.raises(ValueError, match="(?s)No configurable matching 'Nope'.*--gin_skip_unknown"):
        load_config(tmp_path, ["Nope.x = 1"])
    assert folder_digest(tmp_path) == {}
    with caplog.at_level(logging.WARNING):
        config = load_config(tmp_path, ["Nope.x = 1", "Config.factor = 2"], skip_unknown=True)
    assert config.factor == 2
    assert "unknown configurable Nope" in caplog.text


def test_an_unknown_parameter_names_it(tmp_path):
    with pytest.raises(ValueError, match="doesn't have a parameter named 'fctor'"):
        load_config(tmp_path, ["Config.fctor = 2"])
    assert folder_digest(tmp_path) == {}


def test_a_gin_file_with_a_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text("Config.factor = 2\nConfig.batch_size = = 3\n")
    flags.FLAGS.unparse_flags()
    configs.define_common_flags()
    flags.FLAGS(["test", f"--gin_configs={bad}"])
    with pytest.raises(SyntaxError) as error:
        configs.load_config(save_config=False)
    assert "bad.gin" in str(error.value) and error.value.lineno == 2


def test_a_stray_non_image_file_is_skipped_by_name(scratch):
    before = load(scratch, factor=4).images
    (scratch / "images" / ".DS_Store").write_bytes(b"\x00\x01")
    (scratch / "images_4" / "notes.txt").write_text("shot on a Tuesday")
    digest = folder_digest(scratch)
    with pytest.warns(UserWarning, match=r"\.DS_Store"):
        after = load(scratch, factor=4).images
    np.testing.assert_array_equal(after, before)
    assert folder_digest(scratch) == digest


def test_an_extra_image_in_one_folder_names_it(scratch):
    shutil.copy(scratch / "images_4" / "IMG_0003.png", scratch / "images_4" / "IMG_0003b.png")
    digest = folder_digest(scratch)
    with pytest.raises(ValueError, match="holds 13 images .* holds 12.*IMG_0003b.png is only in the downsampled"):
        load(scratch, factor=4)
    assert folder_digest(scratch) == digest


def test_a_truncated_image_names_the_file(scratch):
    path = scratch / "images_4" / "IMG_0005.png"
    path.write_bytes(path.read_bytes()[:60])
    digest = folder_digest(scratch)
    with pytest.raises(images.ImageFileError, match="IMG_0005.png"):
        load(scratch, factor=4)
    assert folder_digest(scratch) == digest


def test_a_text_file_with_an_image_suffix_names_the_file(scratch):
    (scratch / "images_4" / "IMG_0002.png").write_text("<html>404</html>")
    digest = folder_digest(scratch)
    with pytest.raises(images.ImageFileError, match="IMG_0002.png"):
        load(scratch, factor=4)
    assert folder_digest(scratch) == digest


def test_sixteen_bit_pngs_are_read_as_value_over_65535(scratch, caplog):
    eight = load(scratch, factor=4).images
    for path in sorted((scratch / "images_4").iterdir()):
        image = iio.imread(path)[..., :3].astype(np.uint16) * 257  # the same colours on 16 bits
        image[0, 0] = [1, 2, 65534]  # values the top byte alone cannot tell apart
        cv2.imwrite(str(path), image[..., ::-1])
    with caplog.at_level(logging.INFO):
        sixteen = load(scratch, factor=4).images
    np.testing.assert_allclose(sixteen[:, 1:, 1:], eight[:, 1:, 1:], atol=1e-6)
    np.testing.assert_allclose(sixteen[0, 0, 0], np.array([1, 2, 65534]) / 65535, rtol=1e-6)
    assert "value / 65535" in caplog.text
    assert utils.load_img(str(scratch / "images_4" / "IMG_0000.png")).max() <= 255.0


def test_continuous_eval_without_checkpoints_waits_once_then_times_out(scene, tmp_path, capsys):
    gin.clear_config()
    gin.parse_config_files_and_bindings([CONFIG_360], [
        f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{tmp_path / 'run'}'", "Config.factor = 4",
        "Config.eval_only_once = False", "Config.eval_wait_timeout = 0.3"])
    with pytest.raises(TimeoutError, match=f"{tmp_path / 'run'}.*eval_wait_timeout = 0.3"):
        eval_lib.evaluate(configs.Config(), device="cpu")
    assert capsys.readouterr().out.count("Waiting for a checkpoint") == 1


def train_main(scene, run, *bindings, overwrite_config=False):
    """mipnerf360.train's command line (tiny model, 16x12 images) on `scene` into `run`."""
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    all_bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run}'", "Config.factor = 4",
                           *bindings]
    flags.FLAGS(["train", f"--gin_configs={REPO}/mipnerf360/configs/demo.gin"]
                + [f"--gin_bindings={b}" for b in all_bindings] + (["--overwrite_config"] if overwrite_config else []))
    train.main([], single_process())


def test_a_run_folder_that_is_a_file_is_named_before_anything_is_written(scene, tmp_path, capsys):
    run = tmp_path / "run"
    run.write_text("not a folder")
    digest = folder_digest(tmp_path)
    with pytest.raises(SystemExit):
        train_main(scene, run, "Config.max_steps = 2")
    assert f"Config.checkpoint_dir = '{run}' is not a folder" in capsys.readouterr().err
    assert folder_digest(tmp_path) == digest


def test_a_full_disk_at_a_save_names_the_folder_and_keeps_the_checkpoint_before(tmp_path, monkeypatch):
    config = load_config(tmp_path, ["Config.checkpoint_keep = 1"])
    _, state, _, _, _ = train_utils.setup_model(config, None)
    state.step = 2
    first = train_utils.save_checkpoint(config, state)
    digest = folder_digest(tmp_path / "run")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)  # as a full disk would fail the write
    state.step = 4
    with pytest.raises(train_utils.CheckpointSaveError) as error:
        train_utils.save_checkpoint(config, state)
    message = str(error.value)
    assert f"step 4 to {tmp_path / 'run'}" in message and "No space left on device" in message
    assert f"the checkpoint before, {first}, is intact" in message and "rerun the same command" in message
    assert folder_digest(tmp_path / "run") == digest


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_named(scene, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        with pytest.raises(SystemExit):
            train_main(scene, run, "Config.max_steps = 2")
        assert f"cannot write in Config.checkpoint_dir {run}" in capsys.readouterr().err
        assert folder_digest(run) == {}
    finally:
        run.chmod(0o755)


@pytest.mark.parametrize("module, bindings, what", [
    (eval_lib, [], "so the eval stopped"),
    (eval_lib, ["Config.eval_only_once = False"], "so the continuous eval stopped"),
    (render_lib, ["Config.render_path = True", "Config.render_path_frames = 2"], "so the render stopped"),
])
def test_eval_and_render_name_every_unreadable_checkpoint(scene, tmp_path, capsys, module, bindings, what):
    run = tmp_path / "run"
    write_unreadable(run, [2, 4])
    digest = folder_digest(run)
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["eval", f"--gin_configs={CONFIG_360}"] + [f"--gin_bindings={b}" for b in [
        f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run}'", "Config.factor = 4", *bindings]])
    with pytest.raises(SystemExit):
        module.main([])
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and what in error
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert folder_digest(run) == digest


def test_other_settings_than_the_run_folders_config_gin_refuse_until_overwrite_config(scene, tmp_path, capsys):
    run = tmp_path / "run"
    train_main(scene, run, "Config.max_steps = 2")
    capsys.readouterr()
    digest = folder_digest(run)
    with pytest.raises(SystemExit):
        train_main(scene, run, "Config.max_steps = 2", "Config.lr_init = 0.001")
    error = capsys.readouterr().err
    assert f"{run / 'config.gin'} holds other settings" in error and "--overwrite_config" in error
    assert folder_digest(run) == digest

    train_main(scene, run, "Config.max_steps = 2")  # the same settings: resumes silently
    assert "error" not in capsys.readouterr().err
    assert (run / "config.gin").read_text() == gin.config_str()

    train_main(scene, run, "Config.max_steps = 2", "Config.lr_init = 0.001", overwrite_config=True)
    assert "Config.lr_init = 0.001" in (run / "config.gin").read_text()


def test_a_nan_loss_before_any_checkpoint_says_none_was_written(scene, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit):  # an absurd learning rate: the loss is NaN within a few steps
        train_main(scene, run, "Config.max_steps = 8", "Config.checkpoint_every = 8", "Config.lr_init = 1e30",
                   "Config.lr_final = 1e30", "Config.lr_delay_steps = 0", "Config.print_every = 100")
    error = capsys.readouterr().err
    assert "the loss became NaN" in error or "the loss became infinite" in error
    assert "no checkpoint had been written yet" in error and "last good checkpoint" not in error
    assert checkpoints.list_checkpoints(run) == []


def test_images_too_small_for_an_lpips_backbone_score_none():
    """LPIPS-AlexNet needs 31 px (its pools), VGG 16: a smaller test image scores None there, not a crash."""
    fns = {net: fn for net, fn in eval_lib.load_lpips()[0].items()}
    assert set(fns) == {"vgg", "alex"}, "LPIPS weights missing: python -m data_tools.lpips_weights"
    small, tiny = np.random.default_rng(0).random((2, 20, 40, 3), dtype=np.float32)
    metric = eval_lib.image_metrics(torch.from_numpy(small), torch.from_numpy(tiny), fns, "cpu")
    assert metric["lpips_alex"] is None and 0 < metric["lpips_vgg"] < 2
