"""Bad input to mipnerf's loaders: each case is refused (or handled) with a message naming the file,
and nothing in the data folder changes."""

import json
import shutil

import numpy as np
import pytest

from common import images
from data_tools.synth import build_scene, write_scene
from mipnerf.internal import datasets, utils
from mipnerf.scripts import convert_blender_data
from tests.conftest import folder_digest


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
