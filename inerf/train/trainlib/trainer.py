# Derived from sxyu/pixel-nerf (BSD-2-Clause licence, Copyright (c) 2021, Alex Yu; see THIRD_PARTY_NOTICES.md).
"""pixelNeRF's Trainer: Adam (+ exponential decay), periodic eval/vis/save, resume from checkpoints/<name>/.

State files as in the release: pixel_nerf_latest (the net, via net.save_weights) or net, _optim,
_lrsched, _iter ({"iter": step}); written atomically and read weights-only. TensorBoard logs in
logs/<name>, visualisations in visuals/<name>/<epoch>_<batch>_vis.png.
"""

import os
import warnings

import imageio.v2 as imageio
import numpy as np
import torch

from common import checkpoints
from common.logger import Logger, progress


def data_loop(dl):
    """Loops over a DataLoader forever."""
    while True:
        yield from dl


def fmt_loss_str(losses):
    """'loss k:v k:v ...' (reads 0-dim tensors: call it on reporting steps only)."""
    return "loss " + " ".join(k + ":" + str(float(losses[k])) for k in losses)


class Trainer:
    """Subclasses implement train_step / eval_step (-> {name: 0-dim tensor}) and optionally vis_step, post_batch."""

    def __init__(self, net, train_dataset, test_dataset, args, conf, device=None):
        self.args = args
        self.net = net
        self.train_dataset = train_dataset
        self.test_dataset = test_dataset
        num_workers = getattr(args, "num_workers", 8)
        self.train_data_loader = torch.utils.data.DataLoader(
            train_dataset, batch_size=args.batch_size, shuffle=True, num_workers=num_workers, pin_memory=False)
        self.test_data_loader = torch.utils.data.DataLoader(
            test_dataset, batch_size=min(args.batch_size, 16), shuffle=True, num_workers=min(num_workers, 4),
            pin_memory=False)
        self.num_total_batches = len(self.train_dataset)
        self.exp_name = args.name
        self.save_interval = conf.get_int("save_interval")
        self.print_interval = conf.get_int("print_interval")
        self.vis_interval = conf.get_int("vis_interval")
        self.eval_interval = conf.get_int("eval_interval")
        self.num_epoch_repeats = conf.get_int("num_epoch_repeats", 1)
        self.num_epochs = args.epochs
        self.accu_grad = conf.get_int("accu_grad", 1)
        self.summary_path = os.path.join(args.logs_path, args.name)
        os.makedirs(self.summary_path, exist_ok=True)
        self.writer = Logger(self.summary_path, is_main=True)
        self.fixed_test = bool(getattr(args, "fixed_test", False))
        self.nan_check = not getattr(args, "no_nan_check", False)

        self.optim = torch.optim.Adam(net.parameters(), lr=args.lr)
        self.lr_scheduler = None
        if args.gamma != 1.0:
            self.lr_scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer=self.optim, gamma=args.gamma)

        self.managed_weight_saving = hasattr(net, "load_weights")
        if self.managed_weight_saving:
            net.load_weights(self.args)
        ckpt_dir = os.path.join(self.args.checkpoints_path, self.args.name)
        self.iter_state_path = os.path.join(ckpt_dir, "_iter")
        self.optim_state_path = os.path.join(ckpt_dir, "_optim")
        self.lrsched_state_path = os.path.join(ckpt_dir, "_lrsched")
        self.default_net_state_path = os.path.join(ckpt_dir, "net")
        self.start_iter_id = 0
        if args.resume:
            if os.path.exists(self.optim_state_path):
                try:
                    self.optim.load_state_dict(checkpoints.load_checkpoint(self.optim_state_path, device or "cpu"))
                except (RuntimeError, ValueError, KeyError) as e:
                    warnings.warn(f"Failed to load optimizer state at {self.optim_state_path}: {e}")
            if self.lr_scheduler is not None and os.path.exists(self.lrsched_state_path):
                self.lr_scheduler.load_state_dict(checkpoints.load_checkpoint(self.lrsched_state_path))
            if os.path.exists(self.iter_state_path):
                self.start_iter_id = checkpoints.load_checkpoint(self.iter_state_path)["iter"]
            if not self.managed_weight_saving and os.path.exists(self.default_net_state_path):
                net.load_state_dict(checkpoints.load_checkpoint(self.default_net_state_path, device or "cpu"))
        self.visual_path = os.path.join(self.args.visual_path, self.args.name)
        os.makedirs(self.visual_path, exist_ok=True)
        self.conf = conf

    def post_batch(self, epoch, batch):
        """Called after each batch."""

    def extra_save_state(self):
        """Called at each save to write extra state."""

    def train_step(self, data, global_step):
        """One training batch (backward included) -> {loss name: 0-dim tensor}."""
        raise NotImplementedError()

    def eval_step(self, data, global_step):
        """One evaluation batch (no grad) -> {loss name: 0-dim tensor}."""
        raise NotImplementedError()

    def vis_step(self, data, global_step):
        """(image (H, W, 3) in [0, 1] or None, {name: value} or None)."""
        return None, None

    def save(self, step_id):
        """Writes the net, optimiser, scheduler and next-iteration state."""
        print("saving")
        if self.managed_weight_saving:
            self.net.save_weights(self.args)
        else:
            checkpoints.save_atomic(self.default_net_state_path, self.net.state_dict())
        checkpoints.save_atomic(self.optim_state_path, self.optim.state_dict())
        if self.lr_scheduler is not None:
            checkpoints.save_atomic(self.lrsched_state_path, self.lr_scheduler.state_dict())
        checkpoints.save_atomic(self.iter_state_path, {"iter": step_id + 1})
        self.extra_save_state()

    def start(self):
        """Runs args.epochs epochs (each num_epoch_repeats passes over the training set)."""
        self.test_data_iter = data_loop(self.test_data_loader)
        step_id = self.start_iter_id
        bar = progress(self.num_epochs * self.num_epoch_repeats * len(self.train_data_loader), desc="train")
        for epoch in range(self.num_epochs):
            self.writer.scalar("lr", self.optim.param_groups[0]["lr"], step_id)
            batch = 0
            for _ in range(self.num_epoch_repeats):
                for data in self.train_data_loader:
                    self.train_batch(data, epoch, batch, step_id)
                    step_id += 1
                    batch += 1
                    bar.update(1)
            self.end_epoch()
        bar.close()
        self.writer.close()
        return step_id

    def train_batch(self, data, epoch, batch, step_id):
        """The loop's body: train_step (forward, backward), the print / eval / save / vis due at this
        batch, the optimiser step once accu_grad batches are in, post_batch. Returns the losses
        ({name: 0-dim tensor}); nothing is read from the device unless a report is due."""
        losses = self.train_step(data, global_step=step_id)
        report = batch % self.print_interval == 0
        save = batch % self.save_interval == 0 and (epoch > 0 or batch > 0)
        # Read only when a report or a save is due anyway (a host sync); ours, not the release's.
        if self.nan_check and (report or save):
            bad = {k: float(v) for k, v in losses.items() if not bool(torch.isfinite(v))}
            if bad:
                raise FloatingPointError(f"loss {bad} at step {step_id}: training stopped before saving; the "
                                         f"last checkpoint is kept (--no_nan_check trains on)")
        if report:
            print("E", epoch, "B", batch, fmt_loss_str(losses), " lr", self.optim.param_groups[0]["lr"])
        if batch % self.eval_interval == 0:
            test_data = next(self.test_data_iter)
            self.net.eval()
            with torch.no_grad():
                test_losses = self.eval_step(test_data, global_step=step_id)
            self.net.train()
            self.writer.scalars({k: float(v) for k, v in losses.items()}, step_id, prefix="train/")
            self.writer.scalars({k: float(v) for k, v in test_losses.items()}, step_id, prefix="test/")
            print("*** Eval:", "E", epoch, "B", batch, fmt_loss_str(test_losses), " lr")
        if save:
            self.save(step_id)
        if batch % self.vis_interval == 0:
            print("generating visualization")
            test_data = next(iter(self.test_data_loader)) if self.fixed_test else next(self.test_data_iter)
            self.net.eval()
            with torch.no_grad():
                vis, vis_vals = self.vis_step(test_data, global_step=step_id)
            if vis_vals is not None:
                self.writer.scalars(vis_vals, step_id, prefix="vis/")
            self.net.train()
            if vis is not None:
                imageio.imwrite(os.path.join(self.visual_path, "{:04}_{:04}_vis.png".format(epoch, batch)),
                                (np.clip(vis, 0.0, 1.0) * 255).astype(np.uint8))
        if batch == self.num_total_batches - 1 or batch % self.accu_grad == self.accu_grad - 1:
            self.optim.step()
            self.optim.zero_grad()
        self.post_batch(epoch, batch)
        return losses

    def end_epoch(self):
        """The learning-rate decay at the end of each epoch (ExponentialLR by --gamma)."""
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
