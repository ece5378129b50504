"""common.memory: saved-for-backward bytes, peak prediction, micro-batch splitting and checks."""

import pytest
import torch

from common import device, memory


def test_saved_bytes_counts_what_autograd_keeps_and_scales_with_rays():
    layer = torch.nn.Linear(3, 64)
    counts = []
    for n in (64, 256):
        x = torch.randn(n, 3)
        out, nbytes = memory.saved_bytes(lambda: torch.relu(layer(x)).square().mean())
        assert out.requires_grad
        counts.append(nbytes)
    # linear saves its [n, 3] input; relu's [n, 64] output is also square's input: counted once.
    assert counts[0] == 64 * (3 + 64) * 4
    assert counts[1] == 4 * counts[0]
    with torch.no_grad():
        assert memory.saved_bytes(lambda: layer(torch.randn(8, 3)))[1] == 0


def test_prediction_adds_parameters_gradients_adam_and_activations():
    params = [torch.zeros(1000), torch.zeros(24)]
    assert memory.state_bytes(params) == 1024 * 4 * 4
    assert memory.predicted_peak_bytes(params, 100.0, 4096) == 1024 * 16 + 409600
    line = memory.describe_prediction(params, 2048.0, 16384, 4, 64)
    assert '4096 rays per micro-batch' in line and 'grad_accum_steps 4' in line


def test_split_batch_and_its_checks():
    batch = {'rgb': torch.arange(12.).reshape(6, 2), 'meta': ('x', torch.tensor(3.0))}
    chunks = memory.split_batch(batch, 3)
    assert [c['rgb'].tolist() for c in chunks] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert all(c['meta'][0] == 'x' and float(c['meta'][1]) == 3.0 for c in chunks)
    with pytest.raises(ValueError, match='does not split into 4'):
        memory.split_batch(batch, 4)
    memory.check_grad_accum_steps(16384, 4)
    with pytest.raises(ValueError, match=r'Config.grad_accum_steps=3 does not divide Config.batch_size=16384'):
        memory.check_grad_accum_steps(16384, 3)
    with pytest.raises(ValueError, match='positive integer'):
        memory.check_grad_accum_steps(16384, 0)


def test_resolve_device_names_the_setting():
    assert device.resolve_device('cpu', 'Config.device') == torch.device('cpu')
    with pytest.raises(ValueError, match=r"Config.device='gpu' is not a device name"):
        device.resolve_device('gpu', 'Config.device')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device='cuda:1': no cuda device"):
            device.resolve_device('cuda:1', '--device')
