"""The stand-in accelerator of tests/device_discipline.py catches what a CUDA run would hit."""

import pytest
import torch

from tests import device_discipline as dd


def test_a_training_step_runs_on_the_stand_in_and_stays_there():
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with dd.stand_in_accelerator(strict=True):
        model.to(dd.DEVICE)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator(device=dd.DEVICE)
        x = torch.rand(16, 3, device=dd.DEVICE, generator=gen)
        model(x).square().mean().backward()
        optimizer.step()
    assert dd.devices_of(list(model.parameters())) == {dd.DEVICE}
    assert dd.devices_of([p.grad for p in model.parameters()]) == {dd.DEVICE}


def test_mixing_a_host_tensor_into_a_device_op_raises():
    with dd.stand_in_accelerator():
        x = torch.ones(4, 3, device=dd.DEVICE)
        with pytest.raises(dd.DeviceMismatchError, match='mixes devices'):
            x + torch.ones(4, 3)
        # Indexing a host table with device indices returns a host tensor on meta; CUDA raises.
        with pytest.raises(dd.DeviceMismatchError, match='mixes devices'):
            torch.ones(10, 3)[torch.tensor([0, 1], device=dd.DEVICE)]
        # Host indices into a device tensor are fine, as on CUDA.
        assert x[torch.tensor([0, 2])].device == dd.DEVICE
        # 0-dim host tensors may join a device op, as on CUDA.
        assert (x * torch.tensor(2.0)).device == dd.DEVICE


def test_a_random_draw_needs_a_generator_of_its_device():
    with dd.stand_in_accelerator():
        with pytest.raises(dd.DeviceMismatchError, match='generator'):
            torch.rand(4, device=dd.DEVICE, generator=torch.Generator())
        with pytest.raises(dd.DeviceMismatchError, match='generator'):
            torch.randint(5, (4,), generator=torch.Generator(device=dd.DEVICE))
        assert isinstance(torch.Generator(), torch.Generator)


def test_host_syncs_are_counted_with_their_call_site_and_answered_with_zeros():
    with dd.stand_in_accelerator() as acc:
        loss = torch.ones(3, device=dd.DEVICE).sum()
        assert loss.item() == 0.0
        assert not bool(loss > 0)
        assert loss.reshape(1).tolist() == [0.0]
        assert loss.cpu().device.type == 'cpu'
        float(loss)
        torch.ones(()).item()  # a host tensor: no device sync
    assert [s.name for s in acc.syncs] == ['item', '__bool__', 'tolist', 'cpu', '__float__']
    assert all('test_device_discipline.py' in s.where for s in acc.syncs)
    with dd.stand_in_accelerator(strict=True):
        with pytest.raises(dd.DeviceMismatchError, match='host synchronisation: Tensor.item'):
            torch.ones(1, device=dd.DEVICE).sum().item()


def test_the_generator_patch_is_undone():
    with dd.stand_in_accelerator():
        assert isinstance(torch.Generator(device=dd.DEVICE), dd.StandInGenerator)
    assert torch.Generator is dd._REAL_GENERATOR


def test_uploads_of_host_data_are_recorded():
    with dd.stand_in_accelerator() as acc:
        on_device = torch.ones(3, device=dd.DEVICE)
        on_device.to(dd.DEVICE)  # already there: no upload
        torch.ones(3).to(dd.DEVICE)
        torch.tensor([1.0, 2.0], device=dd.DEVICE)
        torch.ones(3).to(torch.float64)  # a host-side cast
    assert [s.shape for s in acc.uploads] == [(3,), (2,)]
    assert acc.syncs == []
