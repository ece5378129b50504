"""The trainer's loop body and the render path on an accelerator, checked without one.

A CPU-only machine cannot train on CUDA tensors (the autograd engine asks for the CUDA device
guard), so the model, the batches and the dataset's images and rays go to the `meta` device under
tests/device_discipline.py's stand-in accelerator: every torch call that mixes a CPU tensor with
a device tensor raises there, as CUDA would (or as CUDA would hide behind a copy), a random draw
with a generator of the wrong device raises, and every host sync is recorded. Meta tensors have
shapes, dtypes and autograd but no data, so a whole step (batch draw, forward, both levels'
losses and weight decay, backward, clipping, Adam, the LR schedule) runs in milliseconds; values
are meaningless and are not checked here (test_grad_accum.py and the claim check numbers).
"""

import dataclasses

import gin
import pytest
import torch

from mipnerf import train
from mipnerf.internal import datasets, models, utils
from tests import device_discipline as dd

TINY = ["Config.batch_size = 64", "MipNerfModel.num_samples = 4", "MipNerfModel.max_deg_point = 4",
        "MLP.net_depth = 2", "MLP.net_width = 16", "MLP.net_width_condition = 8"]
# Every term and option of the step that runs on the device: weight decay, both clips, density
# noise (a random draw), stratified sampling and resampling (randomized, demo.gin's default).
EVERYTHING = ["Config.weight_decay_mult = 1e-4", "Config.grad_max_norm = 1.0", "Config.grad_max_val = 0.5",
              "MipNerfModel.density_noise = 1.0"]
CASES = {
    "all_images": [],
    "single_image": ["Config.batching = 'single_image'"],
    "micro_batches": ["Config.grad_accum_steps = 4"],
    "lindisp_cylinder_no_lossmult": ["MipNerfModel.lindisp = True", "MipNerfModel.ray_shape = 'cylinder'",
                                     "Config.disable_multiscale_loss = True"],
}


@pytest.fixture(autouse=True)
def _fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _rays_devices(rays):
    """Devices of every tensor of a Rays (of tensors or per-image lists of tensors)."""
    return dd.devices_of([getattr(rays, f.name) for f in dataclasses.fields(utils.Rays)])


def _trainer(scene, bindings):
    """(config, dataset, state, rng) on the stand-in device, made as train.train makes them."""
    config = train.parse_config(["configs/demo.gin"], TINY + bindings)
    dataset = datasets.get_dataset("train", scene, config, device=dd.DEVICE)
    state = train.create_train_state(config, dataset.peek(), dd.DEVICE)
    rng = torch.Generator(device=dd.DEVICE).manual_seed(train.TORCH_SEED)
    return config, dataset, state, rng


@pytest.mark.parametrize("case", CASES)
def test_train_iteration_and_render_stay_on_the_device(scene, case):
    with dd.stand_in_accelerator():
        config, dataset, state, rng = _trainer(scene, EVERYTHING + CASES[case])
        lr_fn = train.learning_rate_fn(config)
        stats, lr = train.train_iteration(state, state.model, config, rng, dataset, lr_fn)
        assert state.step == 1 and lr == pytest.approx(float(lr_fn(1)))
        assert dd.devices_of(stats) == {dd.DEVICE} and stats["losses"].shape == (2,)
        params = list(state.model.parameters())
        assert {p.device for p in params} == {dd.DEVICE}
        assert all(p.grad is not None and p.grad.device == dd.DEVICE for p in params)
        moments = [v for s in state.optimizer.state.values() for k, v in s.items() if k != "step"]
        assert len(moments) == 2 * len(params) and dd.devices_of(moments) == {dd.DEVICE}
        assert state.optimizer.param_groups[0]["lr"] == lr

        # One render chunk, as log_test_render and eval.py run it: [1, 48] rays in chunks of 32.
        first = lambda r: (r[0] if isinstance(r, list) else r)[:48][None]
        rgb, distance, acc = models.render_image(
            train.render_eval_fn(state.model, config), dataset.rays.map(first), None, chunk=32)
        assert dd.devices_of((rgb, distance, acc)) == {dd.DEVICE} and rgb.shape == (1, 48, 3)
        dataset.close()


def test_non_report_steps_never_wait_for_the_device(scene):
    with dd.stand_in_accelerator() as acc:
        config, dataset, state, rng = _trainer(scene, EVERYTHING + ["Config.grad_accum_steps = 2"])
        lr_fn = train.learning_rate_fn(config)
        set_up = len(acc.uploads)  # the model and the training set, moved once
        for _ in range(3):
            train.train_iteration(state, state.model, config, rng, dataset, lr_fn)
        assert state.step == 3
        assert acc.syncs == [], "host syncs in the step:\n" + "\n".join(map(str, acc.syncs))
        # Nothing is copied from the host either (CUDA copies pageable memory synchronously).
        uploads = acc.uploads[set_up:]
        assert uploads == [], "uploads in the step:\n" + "\n".join(map(str, uploads))


@pytest.mark.parametrize("batching", ["all_images", "single_image"])
def test_training_set_lives_on_the_device_and_batches_are_drawn_there(scene, batching):
    with dd.stand_in_accelerator(strict=True):
        config = train.parse_config(["configs/demo.gin"], TINY + [f"Config.batching = '{batching}'"])
        dataset = datasets.get_dataset("train", scene, config, device=dd.DEVICE)
        assert dataset.on_device and not dataset.is_alive()  # no prefetch thread, no host copy
        assert dd.devices_of(dataset.images) == {dd.DEVICE} and _rays_devices(dataset.rays) == {dd.DEVICE}
        assert dataset._generator.device == dd.DEVICE
        for _ in range(3):
            batch = next(dataset)
            assert dd.devices_of(batch["pixels"]) == {dd.DEVICE} and batch["pixels"].shape == (64, 3)
            assert _rays_devices(batch["rays"]) == {dd.DEVICE} and batch["rays"].origins.shape == (64, 3)


def test_the_host_path_stays_the_fallback(scene):
    with dd.stand_in_accelerator():
        config = train.parse_config(["configs/demo.gin"], TINY + ["Config.data_on_device = False"])
        dataset = datasets.get_dataset("train", scene, config, device=dd.DEVICE)
        try:
            assert not dataset.on_device and dataset.is_alive()
            assert dd.devices_of(dataset.images) == {torch.device("cpu")}
            batch = next(dataset)
            assert dd.devices_of(batch["pixels"]) == {dd.DEVICE} and _rays_devices(batch["rays"]) == {dd.DEVICE}
        finally:
            dataset.close()


def test_data_on_device_decision(monkeypatch):
    cpu, meta, cuda = torch.device("cpu"), dd.DEVICE, torch.device("cuda")
    # On the CPU the host copy is the device copy; the prefetch thread serves it.
    assert not datasets.data_on_device(True, 1, cpu)
    assert datasets.data_on_device(None, 10**12, meta) and not datasets.data_on_device(False, 1, meta)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 4000))
    assert datasets.data_on_device(None, 500, cuda) and not datasets.data_on_device(None, 501, cuda)
    assert datasets.data_on_device(True, 10**12, cuda)


def test_memory_probe_runs_on_the_device_and_scales_with_the_model(scene):
    per_ray = {}
    with dd.stand_in_accelerator() as acc:
        for width in (16, 64):
            gin.clear_config()
            config, dataset, state, _ = _trainer(scene, [f"MLP.net_width = {width}"])
            per_ray[width] = train.probe_bytes_per_ray(state.model, config, dataset.peek())
    assert acc.syncs == []
    # The MLP trunk saves net_width floats per sample and layer: 4 times as many at 64.
    assert 0 < per_ray[16] < per_ray[64] < 4 * per_ray[16] + 1


@pytest.mark.parametrize("batching", ["all_images", "single_image"])
def test_device_draw_pairs_each_pixel_with_its_ray(scene, batching, monkeypatch):
    # The device path on the CPU, where its values can be read: every drawn (pixel, ray) row is a
    # row of the training table, and the 64 rows are not all the same.
    monkeypatch.setattr(datasets, "data_on_device", lambda *args: True)
    config = train.parse_config(["configs/demo.gin"], TINY + [f"Config.batching = '{batching}'"])
    dataset = datasets.get_dataset("train", scene, config)
    assert dataset.on_device and dataset._generator is not None
    join = lambda pixels, rays: torch.cat([pixels, rays.directions, rays.lossmult], -1)
    images = dataset.images if batching == "all_images" else torch.cat(dataset.images)
    rays = dataset.rays if batching == "all_images" else dataset.rays.map(torch.cat)
    table = join(images, rays)
    batch = next(dataset)
    rows = join(batch["pixels"], batch["rays"])
    assert (rows[:, None] == table[None]).all(-1).any(-1).all()
    assert rows.unique(dim=0).shape[0] > 32
