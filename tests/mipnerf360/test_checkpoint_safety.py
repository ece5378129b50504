"""mipnerf360.train keeps every checkpoint it did not write: a folder of unreadable checkpoints
refuses (until --start_afresh) and a second run beside a live one refuses, both changing nothing."""

import os

import gin
import pytest
from absl import flags

from common import checkpoints
from mipnerf360 import train
from tests.common.test_checkpoints import folder_digest, write_unreadable
from tests.mipnerf360.test_train import REPO, TINY, make_config, single_process


def test_unreadable_checkpoints_refuse_until_start_afresh(scene, tmp_path, capsys):
    run = tmp_path / "run"
    write_unreadable(run, [2, 4])
    before = folder_digest(run)
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"]
                + [f"--gin_bindings={b}" for b in TINY + [f"Config.data_dir = '{scene}'",
                                                         f"Config.checkpoint_dir = '{run}'"]])
    with pytest.raises(SystemExit):
        train.main([], single_process())
    error = capsys.readouterr().err
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert "--start_afresh" in error
    assert folder_digest(run) == before

    state = train.train(make_config(scene, run, 2), single_process(), start_afresh=True)
    assert state.step == 2
    assert {"checkpoint_00000002.pt.unreadable", "checkpoint_00000004.pt.unreadable",
            "checkpoint_00000002.pt"} <= set(os.listdir(run))


def test_a_second_run_beside_a_live_one_refuses(scene, tmp_path):
    run = tmp_path / "run"
    config = make_config(scene, run, 2)  # (writes config.gin, as multinerf's load_config)
    with checkpoints.lock_run_dir(run):
        before = folder_digest(run)
        with pytest.raises(checkpoints.RunDirLockedError, match=str(os.getpid())):
            train.train(config, single_process())
        assert folder_digest(run) == before
