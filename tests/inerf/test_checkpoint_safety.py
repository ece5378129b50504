"""inerf.train_nerf keeps every checkpoint it did not write: a run folder of unreadable checkpoints
refuses (until --start_afresh) and a second run beside a live one refuses, both changing nothing."""

import os

import gin
import pytest

from common import checkpoints
from inerf import train_nerf
from tests.common.test_checkpoints import folder_digest, write_unreadable
from tests.inerf.conftest import DEMO_GIN

TINY = ["Config.N_iters = 2", "Config.i_print = 1", "Config.i_weights = 2", "Config.N_rand = 64",
        "Config.n_test_images = 1"]


@pytest.fixture(autouse=True)
def _fresh_gin():
    """Each command line starts from an empty gin registry, as in its own process."""
    gin.clear_config()
    yield
    gin.clear_config()


def flags(scene, ckpt_dir):
    """train_nerf's command line for demo.gin at TINY size with checkpoints in ckpt_dir/object360."""
    bindings = [f"Config.data_dir = '{scene}'", f"Config.ckpt_dir = '{ckpt_dir}'",
                "Config.model_name = 'object360'", f"Config.output_dir = '{ckpt_dir}/out'", *TINY]
    return ["--device", "cpu", f"--gin_configs={DEMO_GIN}", *[f"--gin_bindings={b}" for b in bindings]]


def test_unreadable_checkpoints_refuse_until_start_afresh(scene, tmp_path, capsys):
    run = tmp_path / "object360"
    write_unreadable(run, [2, 4])
    before = folder_digest(tmp_path)
    with pytest.raises(SystemExit):
        train_nerf.main(flags(scene, tmp_path))
    error = capsys.readouterr().err
    assert "checkpoint_00000002.pt" in error and "checkpoint_00000004.pt" in error
    assert "--start_afresh" in error
    assert folder_digest(tmp_path) == before

    gin.clear_config()
    train_nerf.main(flags(scene, tmp_path) + ["--start_afresh"])
    assert {"checkpoint_00000002.pt.unreadable", "checkpoint_00000004.pt.unreadable",
            "checkpoint_00000002.pt"} <= set(os.listdir(run))
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_path(run, 2))["global_step"] == 2


def test_a_second_run_beside_a_live_one_refuses(scene, tmp_path, capsys):
    with checkpoints.lock_run_dir(tmp_path / "object360"):
        before = folder_digest(tmp_path)
        with pytest.raises(SystemExit):
            train_nerf.main(flags(scene, tmp_path))
        assert folder_digest(tmp_path) == before
    error = capsys.readouterr().err
    assert str(tmp_path / "object360") in error and str(os.getpid()) in error
