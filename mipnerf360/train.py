"""Training script (multinerf's train.py): `python -m mipnerf360.train --gin_configs=... --gin_bindings=...`.

Several processes train one model under torchrun (DDP, the batch split across ranks); rank 0 logs,
renders test views and writes checkpoints. A run restarts from the newest checkpoint in
Config.checkpoint_dir.
"""

import functools
import sys
import time

import numpy as np
import torch
from absl import app

from common import device as device_utils
from common import dist, logger
from mipnerf360.internal import configs, datasets, image, models, train_utils, vis

configs.define_common_flags()

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


def check_finite(loss_history, first_step):
    """Raises NonFiniteLossError naming the first step whose loss is not finite."""
    finite = torch.isfinite(torch.stack(loss_history)).cpu().numpy()
    if not finite.all():
        bad_step = first_step + int(np.argmin(finite))
        raise NonFiniteLossError(
            f'the loss became {"NaN" if torch.stack(loss_history).isnan().any() else "infinite"} at '
            f'step {bad_step}; training stopped and the last good checkpoint stays in place')


def train(config, info):
    """Trains config's model on its data, resuming from config.checkpoint_dir. Returns the state."""
    device = info.device
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    dataset = datasets.load_dataset('train', config.data_dir, config, device=device)
    test_dataset = datasets.load_dataset('test', config.data_dir, config)
    init_rng = torch.Generator().manual_seed(TORCH_SEED)
    model, state, render_eval_fn, train_step, _ = train_utils.setup_model(
        config, init_rng, dataset=dataset, device=device)
    # Each rank samples its own points along its own rays, as multinerf folds in the host id.
    rng = torch.Generator(device=device).manual_seed(dist.rank_seed(TORCH_SEED))
    restored = train_utils.restore_checkpoint(config, state, rng, device=device)
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
              f'{config.batch_size} rays per step over {info.world_size} process(es)')

    log = logger.Logger(config.checkpoint_dir, is_main=info.is_main)
    init_step = state.step + 1
    bar = logger.progress(config.max_steps, initial=state.step, disable=not info.is_main)
    loss_history, psnr_history, window_start, window_time = [], [], init_step, time.time()
    try:
        for step in range(init_step, config.max_steps + 1):
            batch = next(dataset)
            state, stats, rng = train_step(
                rng, state, batch, dataset.cameras, train_frac_at(step, config.max_steps))
            loss_history.append(stats['loss'])
            psnr_history.append(stats['psnr'])
            bar.update(1)
            report = step % config.print_every == 0 or step == config.max_steps
            save = step % config.checkpoint_every == 0 or step == config.max_steps
            if config.nan_check and (report or save):
                check_finite(loss_history, window_start)
            if report:
                elapsed = time.time() - window_time
                steps = step - window_start + 1
                rays_per_sec = steps * config.batch_size / elapsed
                loss = dist.all_reduce_mean(torch.stack(loss_history).mean())
                psnr = dist.all_reduce_mean(torch.stack(psnr_history).mean())
                logger.set_progress_stats(bar, loss=loss, psnr=psnr, rays_per_sec=rays_per_sec)
                log.scalar('train_avg_loss', loss, step)
                log.scalar('train_avg_psnr', psnr, step)
                log.scalar('train_rays_per_sec', rays_per_sec, step)
                log.scalar('train_steps_per_sec', steps / elapsed, step)
                log.scalar('learning_rate', state.lr_fn(step - 1), step)
                log.scalars({k: v for k, v in stats['losses'].items()}, step, prefix='train_losses/')
                log.scalars({str(i): v for i, v in enumerate(stats['psnrs'])}, step,
                            prefix='train_psnrs/')
                log.scalars(stats['grad_norms'], step, prefix='train_grad_norms/')
                loss_history, psnr_history, window_start, window_time = [], [], step + 1, time.time()
            if save and info.is_main:
                train_utils.save_checkpoint(config, state, rng)
            if info.is_main and config.train_render_every > 0 and step % config.train_render_every == 0:
                log_test_render(log, config, render_eval_fn, test_dataset, step, device)
    finally:
        bar.close()
        log.close()
        dataset.close()
        test_dataset.close()
    return state


def main(unused_argv, info):
    config = configs.load_config()  # models is imported: its gin classes are known
    torch.manual_seed(TORCH_SEED)
    np.random.seed(NUMPY_SEED + info.rank)
    if config.batch_size % info.world_size:
        raise ValueError(f'batch_size {config.batch_size} must divide by the {info.world_size} processes')
    try:
        state = train(config, info)
    except (NonFiniteLossError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    finally:
        dist.cleanup()
    if info.is_main:
        print(f'trained to step {state.step}; checkpoints in {config.checkpoint_dir}')


if __name__ == '__main__':
    # Before absl parses the flags: this strips torch.distributed.launch's --local_rank.
    app.run(functools.partial(main, info=dist.init_distributed()))
