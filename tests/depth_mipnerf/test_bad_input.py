"""Bad input to depth_mipnerf: each case is refused with a message naming the file or key, and
nothing in the data folder changes (more depth-map cases: tests/depth_mipnerf/test_datasets.py)."""

import re
import shutil

import gin
import numpy as np
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


def test_a_truncated_exr_names_it(scene_copy, tmp_path):
    from tests.depth_mipnerf.exr_writer import write_exr

    write_exr(tmp_path / "whole.exr", {"R": np.ones((64, 64), np.float32)}, True)
    per_image_depths(scene_copy, (tmp_path / "whole.exr").read_bytes()[:400])
    refused(images.ImageFileError, r"r_0_depth_0001\.exr", scene_copy)


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
