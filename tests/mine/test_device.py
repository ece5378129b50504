"""Device and sync discipline of MINE's trainer on a stand-in accelerator (tests/device_discipline.py).

Why the meta stand-in: this machine has no GPU, and a CPU-only torch cannot run a training step on a
fake `cuda` device (the autograd engine asks for the CUDA device guard). On the `meta` device a whole
step of SynthesisTask (encoder, decoder, the 4-scale losses, backward, Adam, MultiStepLR) runs with real
shapes and dtypes but no data, while `stand_in_accelerator()` raises on any call that mixes host and
device tensors (as CUDA would, or would copy behind our back) and records every host synchronisation.
The values are meaningless there; what the trainer computes is checked by the CPU tests of this folder.
"""

import itertools
import re

import pytest
import torch

from mine import synthesis_task, train
from mine.input_pipelines.device_batches import DeviceBatches, fits_on_device, use_device_batches
from mine.synthesis_task import SynthesisTask
from tests import device_discipline as dd
from tests.mine.conftest import small_config

# The smoothness terms switched on (the llff config weighs them 0) so that every loss is in the graph.
VARIANTS = {
    "llff": {},
    "fine_planes_alpha_smoothness": {"mpi.num_bins_fine": 2, "mpi.use_alpha": True, "mpi.fix_bg_depth_key": True,
                                     "mpi.is_bg_depth_inf": True, "loss.smoothness_lambda_v1": 0.5,
                                     "loss.smoothness_lambda_v2": 0.01},
}


def _on_stand_in(forward_root, **overrides):
    """(task, training batches) of the SMALL_CONFIG run built on the stand-in device as train.train builds them."""
    config = train.preprocess_config(small_config(forward_root, **{"data.on_device": True, **overrides}))
    config["device"] = str(dd.DEVICE)
    train_batches, _ = train.get_dataset(config, None)
    return SynthesisTask(config, None, device=dd.DEVICE), train_batches


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_training_steps_and_render_stay_on_the_device_without_syncs(forward_root, variant):
    """Non-logging steps as train_epoch runs them (draw, train_step), the epoch's LR step, a novel view."""
    steps = 3 if variant == "llff" else 1
    with dd.stand_in_accelerator() as acc:
        task, train_batches = _on_stand_in(forward_root, **VARIANTS[variant])
        assert isinstance(train_batches, DeviceBatches)
        assert dd.tensor_attributes_off_device(train_batches) == []
        assert train_batches.generator.device == dd.DEVICE
        acc.syncs.clear()  # building the task and the views may read values; the steps may not
        for i, batch in enumerate(itertools.islice(train_batches, steps)):
            if i == 1:
                acc.uploads.clear()  # the first step builds SSIM's window on the device, once
            assert dd.devices_of(batch) == {dd.DEVICE}
            losses = task.train_step(batch)
        assert acc.syncs == [], "\n".join(map(str, acc.syncs))
        if steps > 1:  # later steps copy nothing from the host
            assert acc.uploads == [], "\n".join(map(str, acc.uploads))
        task.lr_scheduler.step()  # what SynthesisTask.train does after each epoch
        with torch.no_grad():
            rgb, sigma, disparity = task.predict_src_mpi(task.src_imgs, task.K_src_inv)
            rendered = task.render_novel_view(rgb, sigma, disparity, task.G_tgt_src, task.K_src_inv, task.K_tgt,
                                              scale_factor=torch.ones(2, device=dd.DEVICE))
    assert dd.devices_of(losses) == {dd.DEVICE} and losses["loss"].dim() == 0
    assert dd.devices_of(rendered) == {dd.DEVICE} and rendered["tgt_imgs_syn"].shape == (2, 3, 128, 128)
    params = [*task.backbone.parameters(), *task.decoder.parameters()]
    assert {p.device for p in params} == {dd.DEVICE}
    assert {p.grad.device for p in params if p.grad is not None} == {dd.DEVICE}
    # Every parameter gets a gradient except the ResNet's classifier, which MINE never calls.
    without_grad = [name for name, p in task.backbone.named_parameters() if p.grad is None]
    assert without_grad == ["encoder.fc.weight", "encoder.fc.bias"]
    assert all(p.grad is not None for p in task.decoder.parameters())
    # Adam's moments live with the parameters; only its 0-dim step counters stay on the host (torch's choice).
    moments = [task.optimizer.state[p][k] for p in params if p.grad is not None for k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * 120 and {m.device for m in moments} == {dd.DEVICE}
    assert task.lr_scheduler.last_epoch == 1
    assert dd.tensor_attributes_off_device(task) == []


def test_logging_steps_read_the_losses_once(forward_root, tmp_path, monkeypatch):
    """A logging step checks the losses since the last one and logs them: two host reads, no other."""
    monkeypatch.setattr(synthesis_task, "LOG_EVERY", 2)  # two stand-in steps instead of ten
    with dd.stand_in_accelerator() as acc:
        task, train_batches = _on_stand_in(forward_root)
        task.config["local_workspace"] = str(tmp_path)
        acc.syncs.clear()
        task.train_epoch(train_batches, None, epoch=1, bar=None, start=len(train_batches) - 2)  # two steps
    assert [s.where.rsplit(" in ", 1)[1] for s in acc.syncs] == ["check_finite", "log_training"], acc.syncs


def test_a_non_finite_loss_is_reported_with_its_step(forward_root):
    task = SynthesisTask(train.preprocess_config(small_config(forward_root)), None, is_val=True)
    task.global_step = 12
    losses = [torch.tensor(1.0), torch.tensor(float("nan")), torch.tensor(2.0)]
    with pytest.raises(FloatingPointError, match="at global step 11"):
        task.check_finite(losses, first_global_step=10)
    task.check_finite(losses[::2], first_global_step=10)


def _views(scene_sizes=(3, 4), points=(5, 7, 6, 9, 5, 8, 6), max_points=9):
    """Host views of two scenes; point j of view v has x = 1000 v + j (padding: -1) to trace every draw."""
    V = sum(scene_sizes)
    xyzs = torch.full((V, 3, max_points), -1.0)
    for v, n in enumerate(points):
        xyzs[v, 0, :n] = 1000 * v + torch.arange(n, dtype=torch.float32)
        xyzs[v, 2, :n] = 2.0
    start = torch.tensor([s for s, n in zip((0, scene_sizes[0]), scene_sizes) for _ in range(n)])
    count = torch.tensor([n for n in scene_sizes for _ in range(n)])
    G = torch.eye(4).repeat(V, 1, 1)
    G[:, 0, 3] = torch.arange(V, dtype=torch.float32)
    K = torch.eye(3).repeat(V, 1, 1)
    return {"img": torch.arange(V, dtype=torch.float32).view(V, 1, 1, 1).expand(V, 3, 2, 2).clone(), "K": K,
            "K_inv": K, "G_cam_world": G, "xyzs": xyzs, "num_points": torch.tensor(points), "scene_start": start,
            "scene_count": count}


def test_device_batches_draw_as_the_host_loader():
    """Each epoch is a permutation; targets are other views of the source's scene; points are distinct real ones."""
    batches = DeviceBatches(_views(), batch_size=2, visible_points_count=4, device="cpu", seed=3)
    assert len(batches) == 3
    seen_targets = {v: set() for v in range(7)}
    for epoch in range(60):
        batches.set_epoch(epoch)
        sources = []
        for src_items, tgt_items in batches:
            src = src_items["img"][:, 0, 0, 0].long()
            tgt = tgt_items["img"][:, 0, 0, 0, 0].long()
            sources += src.tolist()
            for s, t in zip(src.tolist(), tgt.tolist()):
                assert t != s and (s < 3) == (t < 3)
                seen_targets[s].add(t)
            # G_src_tgt = G_src_world G_world_tgt moves x by src - tgt.
            torch.testing.assert_close(tgt_items["G_src_tgt"][:, 0, 0, 3], (src - tgt).float())
            for view, xyzs in ((src, src_items["xyzs"]), (tgt, tgt_items["xyzs"][:, 0])):
                ids = xyzs[:, 0] - 1000 * view[:, None]
                assert (ids >= 0).all() and all(len(set(row)) == 4 for row in ids.tolist())
                assert (ids < torch.tensor([5, 7, 6, 9, 5, 8, 6])[view][:, None]).all()
        assert len(set(sources)) == 6  # drop_last: 6 of the 7 views, none twice
    assert seen_targets == {v: set(range(3) if v < 3 else range(3, 7)) - {v} for v in range(7)}


def test_ranks_draw_disjoint_sources():
    sources = []
    for rank in range(2):
        batches = DeviceBatches(_views(), batch_size=1, visible_points_count=4, device="cpu", seed=3, rank=rank,
                                world_size=2)
        batches.set_epoch(5)
        sources.append({int(src["img"][0, 0, 0, 0]) for src, _ in batches})
    assert len(sources[0]) == len(sources[1]) == 3 and not sources[0] & sources[1]


def test_on_device_setting(monkeypatch):
    assert use_device_batches(True, 10**15, "cpu") and not use_device_batches(False, 1, "cuda")
    assert not use_device_batches("auto", 1, "cpu")  # the host DataLoader path on the CPU
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * 2**30, 8 * 2**30))
    assert fits_on_device(2**30, "cuda") and not fits_on_device(2**30 + 1, "cuda")
    assert use_device_batches("auto", 2**30, "cuda:0")
    with pytest.raises(ValueError, match="data.on_device"):
        use_device_batches("yes", 1, "cpu")


def test_bad_settings_fail_before_anything_is_written(forward_root, tmp_path):
    from common import dist

    info = dist.DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), is_main=True)
    cases = {"training.device='cuda:7'": {"training.device": "cuda:7"},
             "training.device='gpu0' is not a device name": {"training.device": "gpu0"},
             "data.on_device must be one of": {"data.on_device": "maybe"},
             "data.img_h x data.img_w = 100x128": {"data.img_h": 100}}
    for match, overrides in cases.items():
        with pytest.raises(ValueError, match=re.escape(match)):
            train.train(small_config(forward_root, **overrides), str(tmp_path), "run", info)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="data.on_device: true needs the llff pipeline"):
        train.get_dataset(train.preprocess_config(small_config(
            forward_root, **{"data.name": "flowers", "data.on_device": True})), None)


def test_start_up_line_predicts_peak_memory(trained_run):
    log = (trained_run["run_dir"] / "training.log").read_text()
    line = re.search(r"predicted peak memory ([0-9.]+) GiB per process: 2 images \(data.per_gpu_batch_size\) x "
                     r"([0-9.]+) MiB per image .* \+ ([0-9.]+) GiB of parameters", log)
    total, per_image, state = (float(x) for x in line.groups())
    assert per_image > 0 and state > 0
    assert total == pytest.approx(state + 2 * per_image / 1024, abs=0.01)
