"""Tests for common/resnet.py: torchvision's layout and init, ImageNet weights from local files only."""

import math
import os

import pytest
import torch
from torch import nn

from common import resnet

# sum(p.numel() for p in torchvision.models.resnet<N>().parameters())
TORCHVISION_NUM_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("arch", sorted(TORCHVISION_NUM_PARAMS))
def test_parameter_count_matches_torchvision(arch):
    model = getattr(resnet, arch)()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_NUM_PARAMS[arch]


def test_state_dict_names_match_torchvision():
    keys18 = resnet.resnet18().state_dict().keys()
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer4.1.bn2.bias",
            "fc.weight", "fc.bias"} <= keys18
    assert "layer1.0.downsample.0.weight" not in keys18
    sd34 = resnet.resnet34().state_dict()
    assert sd34["layer3.0.downsample.1.running_mean"].shape == (256,)
    assert sd34["layer3.5.conv2.weight"].shape == (256, 256, 3, 3)
    sd50 = resnet.resnet50().state_dict()
    assert sd50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert "layer4.2.bn3.num_batches_tracked" in sd50
    assert sd50["fc.weight"].shape == (1000, 2048)


def test_forward_shapes_and_num_classes():
    with torch.no_grad():
        assert resnet.resnet18().eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)
        assert resnet.resnet50(num_classes=7).eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


def test_torchvision_init_and_norm_layer():
    torch.manual_seed(0)
    model = resnet.resnet18(norm_layer=lambda c: nn.GroupNorm(8, c))
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)
    # kaiming_normal_, fan_out, relu: std sqrt(2 / (out_channels * k * k)).
    weight = model.layer3[0].conv2.weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.05)


def _state(seed):
    """State dict of a resnet18 drawn from `seed`."""
    torch.manual_seed(seed)
    return resnet.resnet18().state_dict()


def _assert_loaded(model, state):
    """model's parameters and buffers equal state."""
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_weights_from_hub_cache_newest_name_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    newest, legacy = resnet.WEIGHT_FILES["resnet18"]
    old_state, new_state = _state(1), _state(2)
    torch.save(old_state, folder / legacy)
    _assert_loaded(resnet.resnet18(pretrained=True), old_state)
    torch.save(new_state, folder / newest)
    _assert_loaded(resnet.resnet18(pretrained=True), new_state)


def test_explicit_weights_path_wins_over_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(_state(1), folder / resnet.WEIGHT_FILES["resnet18"][0])
    explicit = _state(2)
    torch.save(explicit, tmp_path / "mine.pth")
    _assert_loaded(resnet.resnet18(pretrained=True, weights_path=tmp_path / "mine.pth"), explicit)
    # A missing explicit file is not silently replaced by the cached one.
    with pytest.warns(UserWarning, match="missing.pth"):
        model = resnet.resnet18(pretrained=True, weights_path=str(tmp_path / "missing.pth"))
    assert not torch.equal(model.conv1.weight, explicit["conv1.weight"])


def test_missing_weights_warn_with_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = os.path.join(str(tmp_path), "hub", "checkpoints")
    with pytest.warns(UserWarning, match="no ImageNet weights") as record:
        model = resnet.resnet34(pretrained=True)
    message = str(record[0].message)
    assert folder in message and "resnet34-b627a593.pth" in message and "resnet34-333f7ec4.pth" in message
    assert "weights_path" in message
    assert not os.path.exists(folder)  # nothing was downloaded
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)
