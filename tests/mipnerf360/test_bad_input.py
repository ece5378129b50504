"""Bad input to mipnerf360: each case is refused (or handled) with a message naming the file or key,
and nothing in the run or data folder changes."""

import logging
import os
import re
import shutil

import cv2
import gin
import imageio.v3 as iio
import numpy as np
import pytest
from absl import flags

from common import images
from data_tools.synth import build_scene, write_scene
from mipnerf360 import eval as eval_lib
from mipnerf360.internal import configs, datasets, models, utils  # noqa: F401 (models registers its configurables)
from tests.conftest import folder_digest

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
