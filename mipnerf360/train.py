# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Training script (multinerf's train.py): `python -m mipnerf360.train --gin_configs=... --gin_bindings=...`.

Several processes train one model under torchrun (DDP, the batch split across ranks); rank 0 logs,
renders test views and writes checkpoints. A run restarts from the newest readable checkpoint in
Config.checkpoint_dir (unreadable newer ones are renamed to <name>.unreadable); when none is
readable it refuses, unless --start_afresh. Rank 0 holds the folder's lock: a second run there
refuses to start, as does one whose settings differ from the folder's config.gin (unless
--overwrite_config). A resumed run is fed the batches and samples an uninterrupted one would be.
"""

import contextlib
import dataclasses
import functools
import os
import sys
import time

import gin
import numpy as np
import torch
from absl import app, flags

from common import checkpoints, dist, logger, memory
from common import device as device_utils
from mipnerf360.internal import configs, datasets, image, models, train_utils, vis

configs.define_common_flags()
AFRESH_FLAG = '--start_afresh'
flags.DEFINE_bool('start_afresh', False, 'When every checkpoint in Config.checkpoint_dir is '
                  'unreadable, rename them to <name>.unreadable and train from step 0.')
OVERWRITE_CONFIG_FLAG = '--overwrite_config'
flags.DEFINE_bool('overwrite_config', False, 'Train even if Config.checkpoint_dir/config.gin holds '
                  'other settings than this run, and write this run\'s settings over it.')

# multinerf's fixed seeds: the JAX key of the model and the numpy seed of the data (plus the host).
TORCH_SEED = 20200823
NUMPY_SEED = 20201473


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def train_frac_at(step, max_steps):
    """Fraction of training done before `step` (1-based), as multinerf anneals by it."""
    return float(np.clip((step - 1) / max(max_steps - 1, 1), 0, 1))


def log_test_render(log, config, render_eval_fn, test_dataset, step, device):
    """Renders the next test view and logs its images and PSNR to TensorBoard."""
    test_case = next(test_dataset)
    rays = test_case.rays.map(lambda x: x.to(device))
    start = time.time()
    rendering = models.render_image(
        functools.partial(render_eval_fn, train_frac_at(step, config.max_steps)), rays, None, config,
        verbose=False)
    rays_per_sec = rays.origins[..., 0].numel() / (time.time() - start)
    rgb = rendering['rgb'].cpu()
    psnr = image.mse_to_psnr(((rgb - torch.as_tensor(test_case.rgb)[..., :3]) ** 2).mean())
    log.scalar('test_psnr', psnr, step)
    log.scalar('test_rays_per_sec', rays_per_sec, step)
    log.image('test_pred_color', rgb, step)
    log.image('test_true_color', torch.as_tensor(test_case.rgb)[..., :3], step)
    for name, picture in vis.visualize_suite(rendering, rays).items():
        if name.startswith('ray_'):
            continue  # the per-ray plots are for eval's output, not a TensorBoard panel
        log.image(f'test_output_{name}', picture, step)


def check_finite(loss_history, first_step, last_checkpoint=None):
    """Raises NonFiniteLossError naming the first step whose loss is not finite.

    last_checkpoint: the path of the run's newest checkpoint, or None when there is none yet.
    """
    finite = torch.isfinite(torch.stack(loss_history)).cpu().numpy()
    if not finite.all():
        bad_step = first_step + int(np.argmin(finite))
        kept = (f'the last good checkpoint, {last_checkpoint}, stays in place' if last_checkpoint
                else 'no checkpoint had been written yet')
        raise NonFiniteLossError(
            f'the loss became {"NaN" if torch.stack(loss_history).isnan().any() else "infinite"} at '
            f'step {bad_step}; training stopped and {kept}')


def sampling_seed(step, rank):
    """The seed of the point sampling of training step `step` on `rank`: a function of both, so a
    resumed run samples as an uninterrupted one (multinerf splits its JAX key once per step)."""
    return int(np.random.SeedSequence([TORCH_SEED, rank, step]).generate_state(1)[0])


def check_run_dir(run_dir):
    """Raises ValueError naming Config.checkpoint_dir when it (or a folder above it) is a file."""
    path = os.path.abspath(run_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        which = '' if path == os.path.abspath(run_dir) else f' (its parent {path} is a file)'
        raise ValueError(f'Config.checkpoint_dir = {run_dir!r} is not a folder{which}: name a '
                         'folder (new or of an earlier run) for the checkpoints')


def lock_run_dir(run_dir):
    """common.checkpoints.lock_run_dir, with an OSError (a read-only folder) naming the folder."""
    try:
        return checkpoints.lock_run_dir(run_dir)
    except OSError as error:
        raise train_utils.CheckpointSaveError(
            error.errno, f'cannot write in Config.checkpoint_dir {run_dir} ({error.strerror or error}); '
            'make it writable or train in another folder') from error


def check_saved_config(run_dir, replace):
    """Raises ValueError when run_dir/config.gin holds other settings than this run's (gin's),
    unless `replace`; the same settings (a resume) pass silently."""
    path = os.path.join(run_dir, 'config.gin')
    if replace or not os.path.exists(path):
        return
    with open(path) as f:
        saved = f.read()
    if saved != gin.config_str():
        raise ValueError(
            f'{path} holds other settings than this run (other gin files or bindings); nothing '
            f'was changed. Resume with the same settings, train in another Config.checkpoint_dir, '
            f'or pass {OVERWRITE_CONFIG_FLAG} to train with these and write them over it')


def flatten_stats(stats, prefix=''):
    """{'losses': {'data': t}, 'psnrs': [k]} -> {'losses/data': t, 'psnrs/0': .., ...}: 0-d tensors.

    multinerf flattens its statistics tree with '/' and splits every vector into its entries.
    """
    flat = {}
    for k, v in stats.items():
        if isinstance(v, dict):
            flat.update(flatten_stats(v, f'{prefix}{k}/'))
        elif v.dim() == 0:
            flat[prefix + k] = v
        else:
            flat.update({f'{prefix}{k}/{i}': vi for i, vi in enumerate(v.reshape(-1))})
    return flat


def window_statistics(stats_buffer):
    """{name: [n] float64 array} of every statistic over the n steps of stats_buffer.

    Every step's statistics stay on the device until here; this is one host copy per report.
    """
    flat = [flatten_stats(s) for s in stats_buffer]
    names = list(flat[0])
    stacked = torch.stack([torch.stack([f[k].float() for k in names]) for f in flat])
    values = stacked.cpu().double().numpy()
    return {k: values[:, j] for j, k in enumerate(names)}


def log_train_statistics(log, window, step):
    """multinerf's report: the histogram, mean and max of each statistic since the last report."""
    for k, v in window.items():
        log.histogram(f'train_{k}', v, step)
        log.scalar(f'train_avg_{k}', v.mean(), step)
        log.scalar(f'train_max_{k}', v.max(), step)


def device_cameras(cameras, device):
    """The dataset's camera tuple with its tensors on `device`, as multinerf hands jnp arrays to
    its train step (the distortion dict holds floats)."""
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in cameras)


def check_glo_embeddings(model, dataset):
    """multinerf's check: one GLO code per training image."""
    if dataset.size > model.num_glo_embeddings and model.num_glo_features > 0:
        raise ValueError(f'Model.num_glo_embeddings={model.num_glo_embeddings} must be at least the '
                         f'number of training images, {dataset.size}')


def predict_memory(model, dataset, cameras, config, device, probe_rays=64):
    """The start-up line: predicted peak memory of a step from the bytes a probe batch saves."""
    patches = max(1, probe_rays // max(config.patch_size, 1) ** 2)
    probe = dataset.peek().map(lambda x: x[:patches])
    rng = torch.Generator(device=device).manual_seed(0)
    step_fn = functools.partial(
        train_utils.compute_losses, model, model, rng, probe, cameras, dataset.camtype, 0.5, 1.0,
        config)
    _, nbytes = memory.saved_bytes(step_fn)
    rays = probe.rgb[..., 0].numel()
    return memory.describe_prediction(
        list(model.parameters()), nbytes / rays, config.batch_size // dist.get_world_size(),
        config.grad_accum_steps, rays)


def train(config, info, start_afresh=False, overwrite_config=False):
    """Trains config's model on its data, resuming from config.checkpoint_dir. Returns the state.

    Rank 0 holds the folder's lock for the whole run. start_afresh: when every checkpoint there is
    unreadable, rename them aside and start at step 0 (otherwise
    common.checkpoints.UnreadableCheckpointsError, nothing changed). overwrite_config: write this
    run's config.gin over one with other settings (otherwise a ValueError, nothing changed).
    Training batch k and the point sampling of step k are functions of the fixed seeds, the rank
    and k, so a resumed run trains exactly as an uninterrupted one.
    """
    if config.checkpoint_dir is None:
        raise ValueError('Config.checkpoint_dir must be set: the run writes its checkpoints there')
    check_run_dir(config.checkpoint_dir)
    device = info.device
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    dataset = datasets.load_dataset('train', config.data_dir, config, device=device, seed=NUMPY_SEED)
    test_dataset = datasets.load_dataset('test', config.data_dir, config)
    with contextlib.ExitStack() as stack:
        stack.callback(dataset.close)
        stack.callback(test_dataset.close)
        cameras = device_cameras(dataset.cameras, device)
        init_rng = torch.Generator().manual_seed(TORCH_SEED)
        model, state, render_eval_fn, train_step, _ = train_utils.setup_model(
            config, init_rng, dataset=dataset, device=device)
        check_glo_embeddings(model, dataset)
        # Each rank samples its own points along its own rays, as multinerf folds in the host id;
        # the generator is seeded anew every step (sampling_seed).
        rng = torch.Generator(device=device)
        if info.is_main:  # Rank 0 holds the folder for the whole run: a second run there refuses.
            stack.enter_context(lock_run_dir(config.checkpoint_dir))
            check_saved_config(config.checkpoint_dir, overwrite_config)
        restored = train_utils.restore_checkpoint(
            config, state, device=device, start_afresh=start_afresh, set_aside=info.is_main,
            afresh_flag=AFRESH_FLAG)
        configs.write_config(config)  # once the settings have passed every check and the run is ours
        dataset.seek(state.step + 1)
        if restored and info.is_main:
            print(f'resuming from {restored} at step {state.step}')
        if info.world_size > 1:
            ddp_model = dist.wrap_ddp(model, info)
            train_step = train_utils.create_train_step(ddp_model, config, dataset)
        if config.use_compile:
            model.forward = device_utils.maybe_compile(model.forward, True, dynamic=False)
        num_params = sum(p.numel() for p in model.parameters())
        if info.is_main:
            print(f'{num_params / 1e6:.3f} M parameters on {device}, '
                  f'{config.batch_size} rays per step over {info.world_size} process(es), '
                  f'training images {"on the device" if dataset.on_device else "prefetched from the host"}')
            print(predict_memory(model, dataset, cameras, config, device))

        log = logger.Logger(config.checkpoint_dir, is_main=info.is_main)
        init_step = state.step + 1
        # As in multinerf, early_exit_steps ends the run early; the schedules still span max_steps.
        num_steps = config.early_exit_steps if config.early_exit_steps is not None else config.max_steps
        bar = logger.progress(num_steps, initial=state.step, disable=not info.is_main)
        stats_buffer, window_start, window_time = [], init_step, time.time()
        last_checkpoint = restored
        try:
            for step in range(init_step, num_steps + 1):
                report = step % config.print_every == 0 or step == num_steps
                save = step % config.checkpoint_every == 0 or step == num_steps
                batch = next(dataset)
                rng.manual_seed(sampling_seed(step, info.rank))
                state, stats, rng = train_step(
                    rng, state, batch, cameras, train_frac_at(step, config.max_steps),
                    compute_stats=report)
                stats_buffer.append(stats)
                bar.update(1)
                if config.nan_check and (report or save):
                    check_finite([s['loss'] for s in stats_buffer], window_start, last_checkpoint)
                if report:
                    elapsed = time.time() - window_time
                    steps = step - window_start + 1
                    rays_per_sec = steps * config.batch_size / elapsed
                    # The parameter statistics are computed on report steps only (see README).
                    window = window_statistics(
                        [{k: v for k, v in s.items() if k in WINDOW_STATS} for s in stats_buffer])
                    window.update(window_statistics(
                        [{k: v for k, v in stats.items() if k not in WINDOW_STATS}]))
                    loss = dist.all_reduce_mean(torch.tensor(window['loss'].mean(), device=device))
                    psnr = dist.all_reduce_mean(torch.tensor(window['psnr'].mean(), device=device))
                    logger.set_progress_stats(bar, loss=loss, psnr=psnr, rays_per_sec=rays_per_sec)
                    log_train_statistics(log, window, step)
                    log.scalar('train_num_params', num_params, step)
                    log.scalar('train_learning_rate', state.lr_fn(step - 1), step)
                    log.scalar('train_steps_per_sec', steps / elapsed, step)
                    log.scalar('train_rays_per_sec', rays_per_sec, step)
                    stats_buffer, window_start, window_time = [], step + 1, time.time()
                if save and info.is_main:
                    last_checkpoint = train_utils.save_checkpoint(config, state)
                if info.is_main and config.train_render_every > 0 and step % config.train_render_every == 0:
                    log_test_render(log, config, render_eval_fn, test_dataset, step, device)
        finally:
            bar.close()
            log.close()
    return state


# The statistics every step returns; the others come from report steps alone.
WINDOW_STATS = ('loss', 'losses', 'mses', 'psnrs', 'psnr', 'disparity_mses', 'normal_maes')


def check_config(config, info):
    """Raises ValueError naming the setting for a config this run cannot train (nothing written)."""
    if config.batch_size % info.world_size:
        raise ValueError(f'Config.batch_size={config.batch_size} must divide by the '
                         f'{info.world_size} processes')
    patches = config.batch_size // info.world_size // max(config.patch_size, 1) ** 2
    memory.check_grad_accum_steps(
        patches, config.grad_accum_steps,
        batch_setting='the patches per process (Config.batch_size / processes / Config.patch_size^2)')


def main(unused_argv, info):
    config = configs.load_config(save_config=False)  # models is imported: its gin classes are known
    try:
        if config.device is not None:
            info = dataclasses.replace(
                info, device=device_utils.resolve_device(config.device, 'Config.device'))
        check_config(config, info)
    except ValueError as error:  # before anything is written
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
    torch.manual_seed(TORCH_SEED)
    np.random.seed(NUMPY_SEED + info.rank)
    try:
        state = train(config, info, flags.FLAGS.start_afresh, flags.FLAGS.overwrite_config)
    except (NonFiniteLossError, FileNotFoundError, ValueError, checkpoints.UnreadableCheckpointsError,
            checkpoints.RunDirLockedError, train_utils.CheckpointSaveError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    finally:
        dist.cleanup()
    if info.is_main:
        print(f'trained to step {state.step}; checkpoints in {config.checkpoint_dir}')


if __name__ == '__main__':
    # Before absl parses the flags: this strips torch.distributed.launch's --local_rank.
    info = dist.init_distributed()
    with gin.config_scope('train'):  # as multinerf: `train/...` bindings apply to training only
        app.run(functools.partial(main, info=info))
