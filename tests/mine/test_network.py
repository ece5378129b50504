"""Encoder: ImageNet weights from $MINE_RESNET_WEIGHTS, feature shapes; decoder shapes and constraints."""

import numpy as np
import pytest
import torch

from mine.network.monodepth2 import resnet_encoder
from mine.network.monodepth2.depth_decoder import DepthDecoder
from mine.network.monodepth2.resnet_encoder import ResnetEncoder
from mine.utils import get_embedder


def test_imagenet_weights_load_from_local_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = resnet_encoder.resnet(18)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    monkeypatch.setenv("MINE_RESNET_WEIGHTS", str(path))
    encoder = ResnetEncoder(18, pretrained=True)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(encoder.encoder.state_dict()[key], value)
    # Normalisation constants follow the module's device but stay out of checkpoints.
    assert "img_mean" not in encoder.state_dict()


def test_missing_mine_resnet_weights_warns_with_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINE_RESNET_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.warns(UserWarning, match="absent.pth"):
        ResnetEncoder(18, pretrained=True)
    with pytest.raises(ValueError, match="one of"):
        resnet_encoder.resnet(26)


def test_encoder_feature_shapes_resnet50():
    encoder = ResnetEncoder(50, pretrained=False).eval()
    with torch.no_grad():
        feats = encoder(torch.rand(1, 3, 128, 128))
    assert [f.shape[1] for f in feats] == list(encoder.num_ch_enc) == [64, 256, 512, 1024, 2048]
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4]


def _decoder(num_ch_enc=(4, 8, 8, 16, 32)):
    embed, dim = get_embedder(2)
    return DepthDecoder(np.array(num_ch_enc), embed, dim).eval()


def test_decoder_outputs_per_plane_rgb_and_positive_sigma():
    torch.manual_seed(0)
    feats = [torch.randn(2, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((4, 8, 8, 16, 32))]
    with torch.no_grad():
        out = _decoder()(feats, torch.rand(2, 3))
    for s in range(4):
        mpi = out[("disp", s)]
        assert mpi.shape == (2, 3, 4, 128 // 2**s, 128 // 2**s)
        assert mpi[:, :, :3].min() >= 0 and mpi[:, :, :3].max() <= 1
        assert mpi[:, :, 3].min() >= 1e-4


def test_decoder_planes_differ_by_disparity_only():
    """Same image, two batches of planes in different order: the same plane gives the same output."""
    torch.manual_seed(0)
    feats = [torch.randn(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((4, 8, 8, 16, 32))]
    decoder = _decoder()
    with torch.no_grad():
        a = decoder(feats, torch.tensor([[0.9, 0.5, 0.1]]))[("disp", 0)]
        b = decoder(feats, torch.tensor([[0.1, 0.9, 0.5]]))[("disp", 0)]
    torch.testing.assert_close(a[:, [2, 0, 1]], b)


def test_decoder_keys_are_the_originals():
    keys = _decoder().state_dict().keys()
    assert "convs.(-'-u-p-c-o-n-v-'-,- -4-,- -0-).conv.conv.weight" in keys
    assert "convs.(-'-d-i-s-p-c-o-n-v-'-,- -0-).conv.weight" in keys
