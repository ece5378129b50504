# Copyright 2021 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
# Command line after hjxwhy/mipnerf_pl (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Training script (google/mipnerf's train.py), with mipnerf_pl's command line as an alternative.

    python -m mipnerf.train --gin_file=configs/multiblender.gin --data_dir=D --train_dir=T
    python -m mipnerf.train --out_dir runs --data_path D --dataset_name multi_blender --exp_name lego

The second form trains in out_dir/exp_name with the loader of dataset_name (blender, multi_blender
or llff: the original's blender, multicam and llff) and, without --gin_file, that loader's config
(configs/blender.gin, multiblender.gin, llff.gin). Adam on the coarse (x Config.coarse_loss_mult)
plus fine loss, each weighted per pixel by its lossmult; a checkpoint every Config.save_every steps
and at the end; a run restarts from the newest readable checkpoint in its train_dir (unreadable
newer ones are renamed to <name>.unreadable; none readable refuses, unless --start_afresh), whose
config.gin is what eval.py and render_video.py read. Rank 0 holds train_dir's lock: a second run
there refuses. Several processes train one model under torchrun (DDP). The batch of each step is a
function of (seed, step) and the random states are in the checkpoints, so a killed run started
again with the same command continues bit for bit as if it had never stopped.

A step never waits for the device (train_iteration is the loop's body): the training set lives
there when it fits (Config.data_on_device), the stats stay there and are read only on report
steps. Config.grad_accum_steps splits a step's batch into micro-batches whose gradients add up to
the one-shot step's; --device picks the device.
"""

import contextlib
import dataclasses
import functools
import gc
import os
import random
import re
import sys
import time
import tokenize

import gin
import numpy as np
import torch
from absl import app, flags

from common import checkpoints, config_types, dist, logger, memory
from common import device as device_utils
from mipnerf.internal import datasets, math, models, utils

FLAGS = flags.FLAGS
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# google/mipnerf's fixed seeds: the model's key and numpy's (plus the host).
TORCH_SEED = 20200823
NUMPY_SEED = 20201473
# mipnerf_pl's --dataset_name: (the original's Config.dataset_loader, its default config file).
DATASET_NAMES = {
    'blender': ('blender', 'configs/blender.gin'),
    'multi_blender': ('multicam', 'configs/multiblender.gin'),
    'llff': ('llff', 'configs/llff.gin'),
}


def define_flag(kind, name, default, help_text, **kwargs):
    """Defines absl flag `name` unless another script of the package already has (tests share one
    process between train, eval and render_video)."""
    if name not in FLAGS:
        getattr(flags, f'DEFINE_{kind}')(name=name, default=default, help=help_text, **kwargs)


utils.define_common_flags()
define_flag('integer', 'render_every', 5000, 'Steps between test-image renderings (0: never).')
define_flag('string', 'out_dir', None, 'mipnerf_pl: runs folder (train_dir = out_dir/exp_name).')
define_flag('string', 'data_path', None, 'mipnerf_pl: the scene folder (--data_dir).')
define_flag('enum', 'dataset_name', None, 'mipnerf_pl: the dataset kind.',
            enum_values=list(DATASET_NAMES))
define_flag('string', 'exp_name', 'default', 'mipnerf_pl: the experiment name.')
define_flag('bool', 'start_afresh', False, 'When every checkpoint in the train_dir is unreadable, '
            'rename them to <name>.unreadable and train from step 0.')
define_flag('string', 'device', None, 'cuda:1, cpu, mps, ... (must exist here; default: '
            'cuda:LOCAL_RANK when CUDA is available, else the CPU).')


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class TrainState:
    """The model, its Adam optimizer and the last step taken."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: int = 0


def resolve_paths(train_dir=None, data_dir=None, out_dir=None, data_path=None, exp_name='default'):
    """(train_dir, data_dir) of the original's flags, or else of mipnerf_pl's."""
    train_dir = train_dir or (os.path.join(out_dir, exp_name) if out_dir else None)
    data_dir = data_dir or data_path
    if not train_dir or not data_dir:
        raise app.UsageError('name the run and the data: --train_dir and --data_dir, or --out_dir '
                             '(with --exp_name) and --data_path')
    return train_dir, data_dir


def parse_gin_file(path):
    """Parses one gin file; a malformed one (syntax, unknown name, undecodable) is a ValueError
    naming it."""
    try:
        gin.parse_config_file(path)
    except (SyntaxError, ValueError, tokenize.TokenError) as error:
        if isinstance(error, SyntaxError):
            line, reason = error.lineno, error.msg
        elif isinstance(error, tokenize.TokenError):  # args: (message, (line, column)).
            line, reason = error.args[1][0], error.args[0]
        else:  # gin's errors say `In file "...", line N` on a later line.
            found = re.search(r'line (\d+)', str(error))
            line, reason = found and found.group(1), str(error)
        where = f' (line {line})' if line else ''
        first_line = (str(reason).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f'{path} is not a valid gin config file{where}: {first_line}') from None


def parse_config(gin_files, gin_params, dataset_name=None):
    """The Config of gin files and bindings, its values checked against their types; dataset_name
    (mipnerf_pl's) picks the loader, and its config file when no gin file is given.

    A malformed gin file is a ValueError naming it; a value of the wrong type one naming its key.
    """
    # Package-relative names (configs/blender.gin) resolved here: gin would log an error first.
    gin_files = [f if os.path.exists(f) or not os.path.exists(os.path.join(PACKAGE_DIR, f))
                 else os.path.join(PACKAGE_DIR, f) for f in gin_files or []]
    gin_params = list(gin_params or [])
    if dataset_name is not None:
        loader, default_file = DATASET_NAMES[dataset_name]
        gin_files = gin_files or [default_file]
        gin_params.append(f"Config.dataset_loader = '{loader}'")
    for path in gin_files:
        parse_gin_file(path)
    gin.parse_config_files_and_bindings([], gin_params)
    return config_types.check_types(utils.Config())


def learning_rate_fn(config):
    """step -> learning rate of the original's schedule (math.learning_rate_decay)."""
    return functools.partial(
        math.learning_rate_decay, lr_init=config.lr_init, lr_final=config.lr_final,
        max_steps=config.max_steps, lr_delay_steps=config.lr_delay_steps,
        lr_delay_mult=config.lr_delay_mult)


def split_batch(batch, num_chunks):
    """batch {'pixels': [B, 3], 'rays': Rays [B, C]} -> num_chunks such batches of B / num_chunks rays."""
    names = [f.name for f in dataclasses.fields(utils.Rays)]
    fields = {name: getattr(batch['rays'], name) for name in names}
    return [{'pixels': pixels, 'rays': utils.Rays(**rays)}
            for pixels, rays in memory.split_batch((batch['pixels'], fields), num_chunks)]


def loss_mask(config, rays):
    """The per-ray loss weights [B, 1]: lossmult, or ones when Config.disable_multiscale_loss."""
    return torch.ones_like(rays.lossmult) if config.disable_multiscale_loss else rays.lossmult


def level_losses(model, config, rng, batch, mask_sum):
    """Each level's sum of lossmult-weighted squared errors over batch's rays, / mask_sum: [levels].

    mask_sum is the sum of the loss weights of the whole step's batch, so the losses of its
    micro-batches add up to the step's losses.
    """
    ret = model(rng, batch['rays'], config.randomized, config.white_bkgd)
    mask = loss_mask(config, batch['rays'])
    # As the original: mask [B, 1] against 3 channels, so each loss is 3x the weighted MSE.
    return torch.stack([
        (mask * (rgb - batch['pixels'][..., :3])**2).sum() / mask_sum for rgb, _, _ in ret])


def weight_l2_fn(config, params, device):
    """Config.weight_decay_mult x the mean square of every parameter entry: a 0-d tensor.

    params: the trained tensors (the original sums over the whole flax variable tree).
    """
    if config.weight_decay_mult == 0:
        return torch.zeros((), device=device)  # The original's 0 * mean, without the reductions.
    return config.weight_decay_mult * (
        sum(torch.sum(p**2) for p in params) / sum(p.numel() for p in params))


def loss_fn(model, config, rng, batch):
    """The loss of the original's train_step (its inner loss_fn) on one whole batch.

    loss = coarse_loss_mult * sum(losses[:-1]) + losses[-1] + weight_l2, where losses [levels]
    are level_losses (lossmult-weighted, / the sum of the loss weights).

    Args:
      batch: {'pixels': [B, 3], 'rays': Rays [B, C]}.

    Returns:
      loss: 0-d tensor, differentiable with respect to the model's parameters.
      stats: loss, losses [levels], weight_l2, psnr, psnrs [levels] (of the losses), detached.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    weight_l2 = weight_l2_fn(config, params, batch['pixels'].device)
    losses = level_losses(model, config, rng, batch, loss_mask(config, batch['rays']).sum())
    loss = config.coarse_loss_mult * torch.sum(losses[:-1]) + losses[-1] + weight_l2
    psnrs = math.mse_to_psnr(losses.detach())
    stats = {
        'loss': loss.detach(), 'losses': losses.detach(), 'weight_l2': weight_l2.detach(),
        'psnr': psnrs[-1], 'psnrs': psnrs,
    }
    return loss, stats


def train_step(model, config, rng, optimizer, batch, lr):
    """One optimisation step on batch {'pixels': [B, 3], 'rays': Rays [B, C]}.

    The loss is loss_fn's; the batch runs forward and backward in Config.grad_accum_steps
    micro-batches whose gradients add up to those of the whole batch, then the gradients are clipped and Adam steps once.

    Returns:
      stats: loss, losses [levels], weight_l2, psnr, psnrs [levels] (of the losses, as the
      original), grad_norm, grad_abs_max, grad_norm_clipped: detached 0-d tensors (or [levels])
      on the batch's device, never read on the host here.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    weight_l2 = weight_l2_fn(config, params, batch['pixels'].device)

    mask_sum = loss_mask(config, batch['rays']).sum()
    optimizer.zero_grad(set_to_none=True)
    micro_batches = split_batch(batch, config.grad_accum_steps)
    losses = 0
    for i, micro_batch in enumerate(micro_batches):
        micro_losses = level_losses(model, config, rng, micro_batch, mask_sum)
        micro_loss = config.coarse_loss_mult * torch.sum(micro_losses[:-1]) + micro_losses[-1]
        if i == 0:
            micro_loss = micro_loss + weight_l2
        # DDP averages the gradients over the processes once, after the last micro-batch.
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last or not hasattr(model, 'no_sync') else model.no_sync():
            micro_loss.backward()
        losses = losses + micro_losses.detach()
    loss = config.coarse_loss_mult * torch.sum(losses[:-1]) + losses[-1] + weight_l2.detach()

    grads = [p.grad for p in params if p.grad is not None]
    if config.grad_max_val > 0:
        torch.nn.utils.clip_grad_value_(params, config.grad_max_val)
    grad_abs_max = torch.max(torch.stack([g.abs().max() for g in grads]))
    grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if config.grad_max_norm > 0:
        # 1e-7: the original's guard against a zero gradient norm.
        mult = torch.clamp(config.grad_max_norm / (1e-7 + grad_norm), max=1)
        torch._foreach_mul_(grads, mult)
    grad_norm_clipped = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    for group in optimizer.param_groups:
        group['lr'] = float(lr)
    optimizer.step()

    psnrs = math.mse_to_psnr(losses)
    return {
        'loss': loss, 'losses': losses, 'weight_l2': weight_l2.detach(),
        'psnr': psnrs[-1], 'psnrs': psnrs, 'grad_norm': grad_norm.detach(),
        'grad_abs_max': grad_abs_max.detach(), 'grad_norm_clipped': grad_norm_clipped.detach(),
    }


def train_iteration(state, model, config, rng, dataset, lr_fn):
    """The body of the training loop: step state.step + 1 of the LR schedule on the next batch.

    Args:
      state: TrainState; its step is advanced.
      model: state.model, or its DDP / compiled wrapper.
      rng: torch.Generator on the model's device, for the sampling.
      dataset: the training Dataset (batches on the model's device).
      lr_fn: step -> learning rate (learning_rate_fn).

    Returns:
      (train_step's stats, the learning rate of the step as a float).
    """
    step = state.step + 1
    # The schedule is evaluated on the host from the step number: nothing waits for the device.
    lr = float(lr_fn(step))
    stats = train_step(model, config, rng, state.optimizer, next(dataset), lr)
    state.step = step
    return stats, lr


def probe_bytes_per_ray(model, config, batch, probe_rays=64):
    """Bytes autograd saves for the backward pass per ray (common.memory.saved_bytes): the forward
    and loss of the first probe_rays rays of batch, sampled deterministically so that no random
    state is drawn."""
    probe = {'pixels': batch['pixels'][:probe_rays], 'rays': batch['rays'].map(lambda r: r[:probe_rays])}
    config = dataclasses.replace(config, randomized=False)
    _, nbytes = memory.saved_bytes(lambda: level_losses(
        model, config, None, probe, loss_mask(config, probe['rays']).sum()))
    return nbytes / probe['pixels'].shape[0]


def create_train_state(config, example_batch, device):
    """TrainState of a new gin-configured model (seeded as the original) and Adam at lr_init."""
    model = models.construct_mipnerf(
        torch.Generator().manual_seed(TORCH_SEED), example_batch).to(device)
    model.use_bf16_autocast = config.use_bf16_autocast
    # flax.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8; the rate is set at every step.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_init)
    return TrainState(model=model, optimizer=optimizer)


def save_checkpoint(train_dir, state, rng, keep):
    """Writes train_dir/checkpoint_<step>.pt: model, optimizer, step and random states."""
    return checkpoints.save_checkpoint(train_dir, state.step, {
        'step': state.step,
        'model': state.model.state_dict(),
        'optimizer': state.optimizer.state_dict(),
        'rng': rng.get_state(),
        'global_rng': checkpoints.capture_rng_state(),
    }, keep=keep)


def read_latest_checkpoint(train_dir, device, start_afresh=False, set_aside=False):
    """(the newest readable checkpoint of train_dir, its path), or (None, None) when there is none.

    start_afresh, set_aside: as common.checkpoints.restore_latest (--start_afresh is the flag).
    """
    return checkpoints.restore_latest(train_dir, map_location=device, start_afresh=start_afresh,
                                      set_aside=set_aside, afresh_flag='--start_afresh')


def restore_checkpoint(saved, state, rng):
    """Loads a save_checkpoint dict into state and rng, and the global random states."""
    state.model.load_state_dict(saved['model'])
    state.optimizer.load_state_dict(saved['optimizer'])
    state.step = int(saved['step'])
    rng.set_state(saved['rng'].cpu())
    checkpoints.restore_rng_state(saved['global_rng'])


def render_eval_fn(model, config):
    """(rng, rays) -> the model's deterministic levels, for rendering test images."""
    def render_fn(rng, rays):
        del rng  # Unused: rendering is not randomized, which removes speckle.
        with torch.no_grad():
            return model(None, rays, False, config.white_bkgd)
    return render_fn


def log_test_render(log, config, model, test_dataset, step, chunk, device):
    """Renders the next test image and logs its PSNR, SSIM, rays/s and pictures."""
    test_case = next(test_dataset)
    start = time.time()
    rgb, distance, acc = models.render_image(
        render_eval_fn(model, config), test_case['rays'].map(lambda r: r.to(device)), None, chunk)
    rays_per_sec = distance.numel() / (time.time() - start)
    rgb, pixels = rgb.cpu(), test_case['pixels']
    log.scalar('test_psnr', math.mse_to_psnr(((rgb - pixels)**2).mean()), step)
    if min(rgb.shape[:2]) >= 11:  # The SSIM window is 11 pixels wide.
        log.scalar('test_ssim', math.compute_ssim(rgb, pixels, max_val=1.), step)
    log.scalar('test_rays_per_sec', rays_per_sec, step)
    log.image('test_pred_color', rgb, step)
    log.image('test_pred_acc', acc, step)
    log.image('test_pred_distance', (distance - config.near) / (config.far - config.near), step)
    log.image('test_target', pixels, step)


def check_finite(loss_history, first_step, last_checkpoint):
    """Raises NonFiniteLossError naming the first step whose loss is not finite and the last good
    checkpoint (last_checkpoint, a path, or None when none was written or restored)."""
    history = torch.stack(loss_history)
    finite = torch.isfinite(history).cpu().numpy()
    if not finite.all():
        kind = 'NaN' if history.isnan().any() else 'infinite'
        kept = (f'the last good checkpoint, {last_checkpoint}, stays in place' if last_checkpoint
                else 'no checkpoint was written yet')
        raise NonFiniteLossError(
            f'the loss became {kind} at step {first_step + int(np.argmin(finite))}; training '
            f'stopped and {kept}')


def log_train_stats(log, bar, stats_trace, step, lr, elapsed, steps, batch_size, num_params):
    """The original's TensorBoard scalars of the steps since the last report, and the tqdm line."""
    last = stats_trace[-1]
    stack = lambda key: dist.all_reduce_mean(torch.stack([s[key] for s in stats_trace]))
    rays_per_sec = steps * batch_size / elapsed
    log.scalar('num_params', num_params, step)
    log.scalar('train_loss', last['loss'], step)
    log.scalar('train_psnr', last['psnr'], step)
    log.scalars({f'train_losses_{i}': v for i, v in enumerate(last['losses'])}, step)
    log.scalars({f'train_psnrs_{i}': v for i, v in enumerate(last['psnrs'])}, step)
    log.scalar('weight_l2', last['weight_l2'], step)
    avg_loss, avg_psnr = stack('loss').mean(), stack('psnr').mean()
    grad_norm = stack('grad_norm')
    log.scalar('train_avg_loss', avg_loss, step)
    log.scalar('train_avg_psnr', avg_psnr, step)
    log.scalar('train_max_grad_norm', grad_norm.max(), step)
    log.scalar('train_avg_grad_norm', grad_norm.mean(), step)
    log.scalar('train_max_clipped_grad_norm', stack('grad_norm_clipped').max(), step)
    log.scalar('train_max_grad_max', stack('grad_abs_max').max(), step)
    log.scalar('learning_rate', lr, step)
    log.scalar('train_steps_per_sec', steps / elapsed, step)
    log.scalar('train_rays_per_sec', rays_per_sec, step)
    logger.set_progress_stats(bar, loss=avg_loss, psnr=avg_psnr, rays_per_sec=rays_per_sec)


def train(config, train_dir, data_dir, info, render_every=0, chunk=8192, start_afresh=False):
    """Trains config's model on data_dir, resuming from train_dir's newest checkpoint.

    Args:
      config: utils.Config.
      train_dir: checkpoints, TensorBoard events and config.gin go here.
      data_dir: the scene folder, read by config.dataset_loader.
      info: common.dist.DistInfo of this process.
      render_every: steps between test renderings logged to TensorBoard (0: never).
      chunk: rays per forward pass when rendering a test image.
      start_afresh: when every checkpoint in train_dir is unreadable, rename them aside and start
        at step 0 (otherwise common.checkpoints.UnreadableCheckpointsError, nothing changed).

    Returns:
      The TrainState after the last step.
    """
    # Before anything is read or written: a bad split of the batch is a setting error.
    memory.check_grad_accum_steps(
        config.batch_size // info.world_size, config.grad_accum_steps,
        batch_setting='Config.batch_size' if info.world_size == 1 else
        f'Config.batch_size / {info.world_size} processes')
    device = info.device
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    with contextlib.ExitStack() as stack:
        if info.is_main:  # Rank 0 holds the folder for the whole run: a second run there refuses.
            stack.enter_context(checkpoints.lock_run_dir(train_dir))
        saved, restored = read_latest_checkpoint(train_dir, device, start_afresh, set_aside=info.is_main)
        # The batch of each step is a function of (the rank's seed, step): a resumed run draws
        # from its next step on what an uninterrupted run would.
        dataset = datasets.get_dataset('train', data_dir, config, device=device,
                                       seed=dist.rank_seed(NUMPY_SEED),
                                       first_step=1 if saved is None else int(saved['step']) + 1)
        stack.callback(dataset.close)
        test_dataset = datasets.get_dataset('test', data_dir, config) if render_every > 0 else None
        if test_dataset is not None:
            stack.callback(test_dataset.close)
        state = create_train_state(config, dataset.peek(), device)
        # Each process samples its own points along its own rays, as the original shifts its key.
        rng = torch.Generator(device=device).manual_seed(dist.rank_seed(TORCH_SEED))
        if saved is not None:
            restore_checkpoint(saved, state, rng)
            del saved
            if info.is_main:
                print(f'resuming from {restored} at step {state.step}')
        # Probed on the eager model: saved-tensor hooks do not see inside a compiled graph.
        bytes_per_ray = probe_bytes_per_ray(state.model, config, dataset.peek()) if info.is_main else 0
        model = dist.wrap_ddp(state.model, info)
        if config.use_compile:
            model.forward = device_utils.maybe_compile(model.forward, True)
        if info.is_main:
            utils.makedirs(train_dir)
            with utils.open_file(os.path.join(train_dir, 'config.gin'), 'w') as f:
                f.write(gin.config_str())
        num_params = sum(p.numel() for p in state.model.parameters())
        if info.is_main:
            print(f'Number of parameters being optimized: {num_params} on {device}, '
                  f'{config.batch_size} rays per step over {info.world_size} process(es); training '
                  f'rays on {device if dataset.on_device else "the host"}')
            print(memory.describe_prediction(list(state.model.parameters()), bytes_per_ray,
                                             dataset.batch_size, config.grad_accum_steps,
                                             probe_rays=min(64, dataset.batch_size)))

        lr_fn = learning_rate_fn(config)
        log = logger.Logger(train_dir, is_main=info.is_main)
        bar = logger.progress(config.max_steps, initial=state.step, disable=not info.is_main)
        init_step = state.step + 1
        last_checkpoint = restored
        stats_trace, window_start, window_time = [], init_step, time.time()
        gc.disable()  # As the original: collect every Config.gc_every steps instead.
        try:
            for step in range(init_step, config.max_steps + 1):
                stats, lr = train_iteration(state, model, config, rng, dataset, lr_fn)
                stats_trace.append(stats)
                bar.update(1)
                if step % config.gc_every == 0:
                    gc.collect()
                report = step % config.print_every == 0 or step == config.max_steps
                save = step % config.save_every == 0 or step == config.max_steps
                if config.nan_check and (report or save):
                    check_finite([s['loss'] for s in stats_trace], window_start, last_checkpoint)
                if report:
                    log_train_stats(log, bar, stats_trace, step, lr, time.time() - window_time,
                                    step - window_start + 1, config.batch_size, num_params)
                    stats_trace, window_start, window_time = [], step + 1, time.time()
                if save:
                    last_checkpoint = checkpoints.checkpoint_path(train_dir, step)
                    if info.is_main:
                        save_checkpoint(train_dir, state, rng, config.checkpoint_keep)
                if info.is_main and render_every > 0 and step % render_every == 0:
                    log_test_render(log, config, state.model, test_dataset, step, chunk, device)
        finally:
            gc.enable()
            bar.close()
            log.close()
    return state


def main(unused_argv, info):
    train_dir, data_dir = resolve_paths(FLAGS.train_dir, FLAGS.data_dir, FLAGS.out_dir,
                                        FLAGS.data_path, FLAGS.exp_name)
    torch.manual_seed(TORCH_SEED)
    np.random.seed(NUMPY_SEED + info.rank)
    random.seed(NUMPY_SEED + info.rank)  # Unused by training; seeded so a checkpoint's states are the run's.
    try:
        config = parse_config(FLAGS.gin_file, FLAGS.gin_param, FLAGS.dataset_name)
        if config.batch_size % info.world_size:
            raise ValueError(f'Config.batch_size={config.batch_size} must divide by the '
                             f'{info.world_size} processes')
        if FLAGS.device is not None:
            info = dataclasses.replace(
                info, device=device_utils.resolve_device(FLAGS.device, setting='--device'))
        state = train(config, train_dir, data_dir, info, FLAGS.render_every, FLAGS.chunk,
                      FLAGS.start_afresh)
    except (NonFiniteLossError, FileNotFoundError, ValueError, checkpoints.UnreadableCheckpointsError,
            checkpoints.RunDirLockedError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    finally:
        dist.cleanup()
    if info.is_main:
        print(f'trained to step {state.step}; checkpoints in {train_dir}')


if __name__ == '__main__':
    # Before absl parses the flags: this strips torch.distributed.launch's --local_rank.
    app.run(functools.partial(main, info=dist.init_distributed()))
