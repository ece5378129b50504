"""Bad input to MINE training: each is refused with an error naming the file or key, and nothing on disk changes."""

import json
import os
import shutil

import pytest
import torch
import yaml

from common import checkpoints
from common.images import ImageFileError
from mine import train
from tests.conftest import folder_digest
from tests.mine.conftest import REPO, SMALL_CONFIG

LLFF = REPO / "mine/configs/params_llff.yaml"


@pytest.fixture
def setup(forward_root, tmp_path):
    """A writable copy of the LLFF root, a workspace, and the digest of both."""
    root = tmp_path / "data"
    shutil.copytree(forward_root, root)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return {"root": root, "workspace": workspace, "tmp": tmp_path}


def _refused(setup, error, match, extra=None, config_path=LLFF, args=()):
    """Runs train.main; asserts `error` matching `match` and that the workspace and data are unchanged."""
    before = folder_digest(setup["tmp"])
    config = {**SMALL_CONFIG, "data.training_set_path": str(setup["root"]), "training.epochs": 1}
    extra = json.dumps({**config, **(extra or {})}) if not isinstance(extra, str) else extra
    with pytest.raises(error, match=match):
        train.main(["--config_path", str(config_path), "--workspace", str(setup["workspace"]), "--version", "run",
                    "--extra_config", extra, *args])
    assert folder_digest(setup["tmp"]) == before


def _dataset_yaml(setup, text):
    """A dataset yaml `text` beside a copy of params_default.yaml (load_config reads it from the same folder)."""
    folder = setup["tmp"] / "configs"
    folder.mkdir()
    shutil.copy(REPO / "mine/configs/params_default.yaml", folder)
    path = folder / "params_bad.yaml"
    path.write_text(text)
    return path


def test_params_yaml_with_an_unknown_key(setup):
    path = _dataset_yaml(setup, "data.name: llff\nmpi.num_plaens: 4\n")
    _refused(setup, ValueError, f"{path}.*'mpi.num_plaens'", config_path=path)


def test_params_yaml_with_a_value_of_the_wrong_type(setup):
    path = _dataset_yaml(setup, "data.name: llff\ndata.img_h: tall\n")
    _refused(setup, ValueError, f"{path}: data.img_h must be int", config_path=path)


def test_malformed_params_yaml(setup):
    path = _dataset_yaml(setup, "data.name: llff\ndata.img_h: [128,\n")
    _refused(setup, ValueError, f"{path} is not valid YAML", config_path=path)


def test_params_yaml_that_is_not_a_mapping(setup):
    path = _dataset_yaml(setup, "- data.name\n- llff\n")
    _refused(setup, ValueError, f"{path} must hold `key: value` lines", config_path=path)


def test_extra_config_that_is_not_json(setup):
    _refused(setup, ValueError, r"--extra_config \(EXTRA_CONFIG\) is not JSON", extra="{'data.img_h': 128}")


def test_extra_config_that_is_not_an_object(setup):
    _refused(setup, ValueError, "must be a JSON object", extra="[128, 128]")


def test_extra_config_with_an_unknown_key(setup):
    _refused(setup, ValueError, "--extra_config: unknown config key.*'training.epoch'", extra={"training.epoch": 2})


def test_extra_config_with_a_value_of_the_wrong_type(setup):
    _refused(setup, ValueError, "--extra_config: training.epochs must be int", extra={"training.epochs": "2"})


def test_missing_data_folder(setup):
    missing = setup["tmp"] / "no_such_data"
    _refused(setup, FileNotFoundError, str(missing), extra={"data.training_set_path": str(missing)})


def test_truncated_image(setup):
    image = setup["root"] / "forward" / "images" / "IMG_0003.png"
    image.write_bytes(image.read_bytes()[:200])
    _refused(setup, ImageFileError, str(image))


def test_non_image_file_with_an_image_suffix(setup):
    image = setup["root"] / "forward" / "images" / "IMG_0004.png"
    image.write_text("not a picture\n")
    _refused(setup, ImageFileError, str(image))


def test_truncated_checkpoint_latest_without_a_previous_one(setup):
    run = setup["workspace"] / "run"
    run.mkdir()
    path = run / "checkpoint_latest.pth"
    torch.save({"backbone": {"module.w": torch.randn(64, 64)}, "global_step": 5}, path)
    path.write_bytes(path.read_bytes()[:2000])
    _refused(setup, checkpoints.UnreadableCheckpointsError, "checkpoint_latest.pth")


def test_random_bytes_in_both_checkpoints(setup):
    run = setup["workspace"] / "run"
    run.mkdir()
    for name in ("checkpoint_latest.pth", "checkpoint_previous.pth"):
        (run / name).write_bytes(os.urandom(4096))
    _refused(setup, checkpoints.UnreadableCheckpointsError, "checkpoint_latest.pth.*checkpoint_previous.pth")


def test_run_folder_that_is_a_file(setup):
    (setup["workspace"] / "run").write_text("a file\n")
    _refused(setup, NotADirectoryError, str(setup["workspace"] / "run"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders: a read-only run folder cannot be made")
def test_read_only_run_folder(setup):
    run = setup["workspace"] / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        _refused(setup, PermissionError, f"{run} is not writable")
    finally:
        run.chmod(0o755)


def test_params_yaml_of_another_config_in_the_run_folder(setup):
    run = setup["workspace"] / "run"
    run.mkdir()
    config = train.load_config(str(LLFF), json.dumps({**SMALL_CONFIG, "data.training_set_path": str(setup["root"])}))
    (run / "params.yaml").write_text(yaml.safe_dump(config))
    _refused(setup, ValueError, r"params.yaml was written by another config \(differs in mpi.num_bins_coarse\).*"
             "--overwrite_params", extra={"mpi.num_bins_coarse": 8})


def test_run_folder_of_a_live_run(setup):
    run = setup["workspace"] / "run"
    with checkpoints.lock_run_dir(str(run)):
        before = folder_digest(setup["tmp"])
        with pytest.raises(checkpoints.RunDirLockedError, match=f"{run} is in use by process {os.getpid()}"):
            train.train(train.load_config(str(LLFF), json.dumps(
                {**SMALL_CONFIG, "data.training_set_path": str(setup["root"])})), str(setup["workspace"]), "run",
                train.common_dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"),
                                           is_main=True))
        assert folder_digest(setup["tmp"]) == before
