"""depth_mipnerf.train keeps every checkpoint it did not write: a checkpoint_dir of unreadable
checkpoints refuses (until --start_afresh) and a second run beside a live one refuses, both
changing nothing."""

import os

import gin
import pytest

from common import checkpoints
from depth_mipnerf import train
from depth_mipnerf.configs import config as config_lib
from tests.common.test_checkpoints import folder_digest, write_unreadable
from tests.depth_mipnerf.test_cli import _flags

SMALL = ["optimizer.max_steps = 2", "train.batch_size = 64", "nerf.num_samples = 8",
         "nerf.num_fine_samples = 8"]


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_unreadable_checkpoints_refuse_until_start_afresh(scene, tmp_path, capsys):
    run = tmp_path / "run"
    write_unreadable(run, [2, 4])
    before = folder_digest(run)
    with pytest.raises(SystemExit):
        train.main(_flags(scene, run, *SMALL))
    error = capsys.readouterr().err
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert "--start_afresh" in error
    assert folder_digest(run) == before

    gin.clear_config()
    train.main(_flags(scene, run, *SMALL) + ["--start_afresh"])
    assert {"checkpoint_00000002.pt.unreadable", "checkpoint_00000004.pt.unreadable",
            "checkpoint_00000002.pt"} <= set(os.listdir(run))
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_path(run, 2))["step"] == 2


def test_a_second_run_beside_a_live_one_refuses(scene, tmp_path):
    run = tmp_path / "run"
    config, sections = config_lib.parse(
        ["configs/demo.gin"], [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{run}'", *SMALL])
    with checkpoints.lock_run_dir(run):
        before = folder_digest(run)
        with pytest.raises(checkpoints.RunDirLockedError, match=str(os.getpid())):
            train.train(config, sections, "cpu")
        assert folder_digest(run) == before
