"""mipnerf360 on a stand-in accelerator: no host tensor in the step, no host sync between reports.

The stand-in is torch's `meta` device under tests/device_discipline.StandInAccelerator (see its
docstring for why not FakeTensorMode on `cuda`: on a CPU-only torch build backward cannot run on
fake CUDA tensors). Every torch call that mixes a host tensor into device work raises, so a step
that runs here has its model, batch, cameras and dataset tables on the device.
"""

import gin
import pytest
import torch
from absl import flags

from mipnerf360 import train
from mipnerf360.internal import configs, datasets, train_utils, utils
from tests import device_discipline as dd
from tests.mipnerf360.test_train import REPO, TINY


def make_config(scene, tmp_path, extra=()):
    gin.clear_config()
    flags.FLAGS.unparse_flags()
    bindings = TINY + [f"Config.data_dir = '{scene}'", f"Config.checkpoint_dir = '{tmp_path}'",
                       'Config.max_steps = 10', 'Config.data_on_device = True',
                       'Config.weight_decay_mults = {"NerfMLP_0": 1e-6}', *extra]
    flags.FLAGS(['train', f"--gin_configs={REPO / 'mipnerf360/configs/demo.gin'}"]
                + [f'--gin_bindings={b}' for b in bindings])
    return configs.load_config(save_config=False)


def setup_on_stand_in(config, cameras_on_device=True):
    """What train.train sets up before its loop, with dd.DEVICE as the device."""
    dataset = datasets.load_dataset('train', config.data_dir, config, device=dd.DEVICE)
    cameras = train.device_cameras(dataset.cameras, dd.DEVICE) if cameras_on_device else dataset.cameras
    model, state, render_eval_fn, train_step, _ = train_utils.setup_model(
        config, torch.Generator().manual_seed(0), dataset=dataset, device=dd.DEVICE)
    rng = torch.Generator(device=dd.DEVICE).manual_seed(0)
    return dataset, cameras, model, state, render_eval_fn, train_step, rng


def batch_devices(batch):
    """The devices of the tensors of a utils.Batch."""
    devices = set()
    batch.map(lambda x: devices.add(x.device) or x)
    return devices


def loop_step(dataset, train_step, rng, state, cameras, step, config, report):
    """The body of train.train's loop: draw the batch, take the step."""
    batch = next(dataset)
    return train_step(rng, state, batch, cameras, train.train_frac_at(step, config.max_steps),
                      compute_stats=report)


@pytest.mark.parametrize('cast_in_step', [False, True])
def test_a_training_step_and_a_render_chunk_stay_on_the_device(scene, tmp_path, cast_in_step):
    config = make_config(scene, tmp_path, [f'Config.cast_rays_in_train_step = {cast_in_step}'])
    with dd.stand_in_accelerator() as acc:
        dataset, cameras, model, state, render_eval_fn, train_step, rng = setup_on_stand_in(config)
        try:
            assert dataset.on_device
            assert dd.devices_of(dataset._tables) == {dd.DEVICE}
            assert batch_devices(dataset.peek()) == {dd.DEVICE}
            state, stats, rng = loop_step(dataset, train_step, rng, state, cameras, 1, config, True)
            assert set(stats['losses']) == {'data', 'interlevel', 'distortion', 'weight'}
            assert dd.devices_of(stats) == {dd.DEVICE}
            assert dd.devices_of(list(model.parameters())) == {dd.DEVICE}
            assert dd.devices_of([p.grad for p in model.parameters()]) == {dd.DEVICE}
            moments = [s[k] for s in state.optimizer.state.values() for k in ('exp_avg', 'exp_avg_sq')]
            assert len(moments) == 2 * len(list(model.parameters()))
            assert dd.devices_of(moments) == {dd.DEVICE}
            assert state.step == 1

            rays = utils.Rays(*[torch.zeros(config.render_chunk_size // 64, n, device=dd.DEVICE)
                                for n in (3, 3, 3, 1, 2, 1, 1, 1)],
                              cam_idx=torch.zeros(config.render_chunk_size // 64, 1,
                                                  dtype=torch.int64, device=dd.DEVICE))
            renderings, _ = render_eval_fn(0.5, None, rays)
            assert dd.devices_of(renderings[-1]) == {dd.DEVICE}
        finally:
            dataset.close()
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))


def test_host_cameras_in_the_step_are_caught(scene, tmp_path):
    """The cast_rays_in_train_step bug: the dataset's host cameras indexed with device indices."""
    config = make_config(scene, tmp_path, ['Config.cast_rays_in_train_step = True'])
    with dd.stand_in_accelerator():
        dataset, cameras, _, state, _, train_step, rng = setup_on_stand_in(config, cameras_on_device=False)
        try:
            with pytest.raises(dd.DeviceMismatchError, match='mixes devices'):
                loop_step(dataset, train_step, rng, state, cameras, 1, config, False)
        finally:
            dataset.close()


@pytest.mark.parametrize('grad_accum_steps', [1, 2])
def test_non_report_steps_make_no_host_sync(scene, tmp_path, grad_accum_steps):
    config = make_config(scene, tmp_path, [f'Config.grad_accum_steps = {grad_accum_steps}'])
    with dd.stand_in_accelerator() as acc:
        dataset, cameras, _, state, _, train_step, rng = setup_on_stand_in(config)
        acc.uploads.clear()  # set-up copies the model and the data once
        try:
            for step in range(1, 4):
                state, stats, rng = loop_step(dataset, train_step, rng, state, cameras, step, config, False)
        finally:
            dataset.close()
    assert state.step == 3
    assert acc.syncs == [], '\n'.join(map(str, acc.syncs))
    assert acc.uploads == [], '\n'.join(map(str, acc.uploads))


def test_a_sync_in_the_step_is_counted(scene, tmp_path):
    """The sync counter sees a .item() per step (what mine's train_epoch did)."""
    config = make_config(scene, tmp_path)
    with dd.stand_in_accelerator() as acc:
        dataset, cameras, _, state, _, train_step, rng = setup_on_stand_in(config)
        try:
            for step in range(1, 3):
                state, stats, rng = loop_step(dataset, train_step, rng, state, cameras, step, config, False)
                stats['loss'].item()
        finally:
            dataset.close()
    assert [s.name for s in acc.syncs] == ['item', 'item']
    assert all('test_device.py' in s.where for s in acc.syncs)


def test_memory_prediction_runs_on_the_stand_in(scene, tmp_path):
    config = make_config(scene, tmp_path, ['Config.grad_accum_steps = 2'])
    with dd.stand_in_accelerator() as acc:
        dataset, cameras, model, *_ = setup_on_stand_in(config)
        try:
            line = train.predict_memory(model, dataset, cameras, config, dd.DEVICE)
        finally:
            dataset.close()
    assert f'{config.batch_size // 2} rays per micro-batch' in line
    kib_per_ray = float(line.split(' KiB per ray')[0].split(' x ')[-1])
    assert kib_per_ray > 1.0
    assert acc.syncs == []

