"""Checkpoints in the original's format (backbone / decoder / optimizer, DDP `module.` keys) load unchanged."""

import json

import pytest
import torch

from mine import train
from mine.synthesis_task import SynthesisTask
from mine.utils import restore_model
from tests.mine.conftest import REPO, SMALL_CONFIG


def _config(**overrides):
    config = train.load_config(str(REPO / "mine/configs/params_llff.yaml"), json.dumps(SMALL_CONFIG))
    return train.preprocess_config({**config, **overrides})


def _original_format_checkpoint(path):
    """What the original's train_epoch writes: torch.save of DDP state dicts + the Adam state."""
    torch.manual_seed(123)
    task = SynthesisTask(_config(), None, is_val=True)
    for p in [*task.backbone.parameters(), *task.decoder.parameters()]:
        p.grad = torch.randn_like(p)
    task.optimizer.step()
    torch.save({"backbone": {"module." + k: v for k, v in task.backbone.state_dict().items()},
                "decoder": {"module." + k: v for k, v in task.decoder.state_dict().items()},
                "optimizer": task.optimizer.state_dict()}, path)
    return task


def test_original_format_checkpoint_loads(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    reference = _original_format_checkpoint(path)
    torch.manual_seed(7)
    task = SynthesisTask(_config(**{"training.pretrained_checkpoint_path": str(path)}), None)
    for model, ref in ((task.backbone, reference.backbone), (task.decoder, reference.decoder)):
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(model.state_dict()[key], value)
    assert task.optimizer.state_dict()["state"][0]["step"] == 1
    # A fresh task, no checkpoint: different weights (the comparison above is not vacuous).
    other = SynthesisTask(_config(), None, is_val=True)
    assert not torch.equal(other.decoder.conv_down1[0].weight, reference.decoder.conv_down1[0].weight)


def test_restore_model_errors_name_the_file(tmp_path):
    task = SynthesisTask(_config(), None, is_val=True)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        restore_model(str(tmp_path / "missing.pth"), task.backbone, task.decoder)
