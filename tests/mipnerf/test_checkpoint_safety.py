"""mipnerf.train keeps every checkpoint it did not write: a train_dir of unreadable checkpoints
refuses (until --start_afresh) and a second run beside a live one refuses, both changing nothing."""

import os

import gin
import pytest
from absl import flags

from common import checkpoints
from mipnerf import train
from tests.common.test_checkpoints import folder_digest, write_unreadable
from tests.mipnerf.test_train_eval import TINY, single_process

# Every test here runs a script's main.
pytestmark = pytest.mark.usefixtures("fresh_gin_and_flags")


def test_unreadable_checkpoints_refuse_until_start_afresh(scene, tmp_path, capsys):
    run = tmp_path / "run"
    write_unreadable(run, [2, 4])
    before = folder_digest(run)
    flags.FLAGS(["train", f"--train_dir={run}", f"--data_dir={scene}", "--gin_file=configs/demo.gin",
                 *[f"--gin_param={b}" for b in [*TINY, "Config.max_steps = 2"]]])
    with pytest.raises(SystemExit):
        train.main([], info=single_process())
    error = capsys.readouterr().err
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert "--start_afresh" in error
    assert folder_digest(run) == before

    gin.clear_config()
    config = train.parse_config(["configs/demo.gin"], TINY + ["Config.max_steps = 2"])
    state = train.train(config, str(run), scene, single_process(), start_afresh=True)
    assert state.step == 2
    assert {"checkpoint_00000002.pt.unreadable", "checkpoint_00000004.pt.unreadable",
            "checkpoint_00000002.pt"} <= set(os.listdir(run))
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_path(run, 2))["step"] == 2


def test_a_second_run_beside_a_live_one_refuses(scene, tmp_path):
    run = tmp_path / "run"
    config = train.parse_config(["configs/demo.gin"], TINY + ["Config.max_steps = 2"])
    with checkpoints.lock_run_dir(run):
        before = folder_digest(run)
        with pytest.raises(checkpoints.RunDirLockedError, match=str(os.getpid())):
            train.train(config, str(run), scene, single_process())
        assert folder_digest(run) == before
