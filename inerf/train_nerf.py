# Derived from yenchenlin/nerf-pytorch (MIT licence, Copyright (c) 2020 bmild; see THIRD_PARTY_NOTICES.md).
"""NeRF training for the pose-estimation experiments, as nerf-pytorch's run_nerf.py trains.

    python -m inerf.train_nerf --gin_configs=inerf/configs/nerf_blender.gin \
        --gin_bindings="Config.data_dir='data/synthetic/object360'" --gin_bindings="Config.model_name='object360'"

Rays are drawn at random from all training pixels (nerf-pytorch's batching); the loss is the MSE of
the fine and the coarse colours; Adam at lrate_train decayed to 0.1x every lrate_decay*1000 steps.
Checkpoints (nerf-pytorch's keys: global_step, network_fn_state_dict, network_fine_state_dict,
optimizer_state_dict) go to <ckpt_dir>/<model_name>/checkpoint_<step>.pt, which run.py loads; a run
restarts from its newest readable one (unreadable newer ones are renamed to <name>.unreadable; none
readable refuses, unless --start_afresh) and holds the folder's lock: a second run there refuses.
The held-out test PSNR is written to metrics.json at the end.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

from common import checkpoints, logger, memory
from common import device as device_utils
from common import metrics as image_metrics
from inerf import nerf_helpers, render_helpers, utils

PROBE_RAYS = 64  # rays of the start-up measurement of the bytes saved for backward


def load_scene(config):
    """(images [N, H, W, 3], poses [N, 4, 4], hwf, i_train, i_test, near, far) of config's scene."""
    if config.dataset_type == 'blender':
        images, poses, hwf, i_split = utils.load_blender_data(
            config.data_dir, config.half_res, config.testskip, config.white_bkgd)
        return images, poses, hwf, i_split[0], i_split[2], config.near, config.far
    if config.dataset_type == 'llff':
        images, poses, bds, hwf = utils.load_llff_data(
            config.data_dir, config.factor, recenter=True, bd_factor=.75, spherify=config.spherify)
        i_test = np.arange(images.shape[0])[::config.llffhold]
        i_train = np.array([i for i in range(images.shape[0]) if i not in i_test])
        if config.no_ndc:
            near, far = float(bds.min()) * .9, float(bds.max())
        else:
            near, far = 0., 1.
        return images, poses, hwf, i_train, i_test, near, far
    raise ValueError(f"Config.dataset_type must be 'blender' or 'llff', got {config.dataset_type!r}")


def all_rays(poses, hwf, device, pixel_center=False):
    """(rays_o, rays_d) [N, H, W, 3] of every pose [N, 4, 4]."""
    H, W, focal = hwf
    rays = [render_helpers.get_rays(H, W, focal, torch.as_tensor(p, device=device), pixel_center)
            for p in poses]
    return torch.stack([r[0] for r in rays]), torch.stack([r[1] for r in rays])


def precrop_mask(H, W, frac):
    """Boolean [H, W]: the central frac x frac box (nerf-pytorch's precrop)."""
    dh, dw = int(H // 2 * frac), int(W // 2 * frac)
    mask = np.zeros((H, W), bool)
    mask[H // 2 - dh:H // 2 + dh, W // 2 - dw:W // 2 + dw] = True
    return mask


def evaluate(render_kwargs, images, poses, hwf, chunk, near, far):
    """Mean PSNR (dB) of the renders of poses [N, 4, 4] against images [N, H, W, 3]."""
    kwargs = dict(render_kwargs, perturb=0., raw_noise_std=0.)
    device = render_kwargs['network_fn'].pts_linears[0].weight.device
    rgbs, _ = render_helpers.render_path(torch.as_tensor(poses, device=device), hwf, chunk,
                                         dict(kwargs, near=near, far=far))
    return float(image_metrics.psnr(torch.as_tensor(rgbs), torch.as_tensor(images)).mean())


def data_fits_on_device(n_bytes, device, fraction=0.5):
    """Whether n_bytes of training data fit in `fraction` of the free memory of device (CUDA only)."""
    device = torch.device(device)
    if device.type == 'cpu':
        return True
    if device.type != 'cuda':
        return False
    return memory.fits_free_memory(n_bytes, device, fraction)


def training_data(images, poses, hwf, config, device):
    """The training set as drawn by draw_batch: {'rays_o', 'rays_d', 'target' [N, H, W, 3], 'crop_flat'}.

    The rays and pixels live on `device` when Config.data_on_device says so (None: when they take
    at most half of its free memory), else on the host (pinned on CUDA), and each batch is copied over.
    """
    H, W, _ = hwf
    n_bytes = 3 * len(poses) * H * W * 3 * 4  # rays_o, rays_d and rgb, float32
    on_device = config.data_on_device
    if on_device is None:
        on_device = data_fits_on_device(n_bytes, device)
    home = torch.device(device) if on_device else torch.device('cpu')
    rays_o, rays_d = all_rays(poses, hwf, home, config.pixel_center)
    data = {'rays_o': rays_o, 'rays_d': rays_d,
            'target': torch.as_tensor(np.asarray(images), dtype=torch.float32, device=home)}
    if home.type == 'cpu' and torch.device(device).type == 'cuda':
        data = {k: v.pin_memory() for k, v in data.items()}
    # Flat indices of the central crop of every training image (nerf-pytorch's precrop), found on
    # the host: nonzero on the device would wait for it.
    crop = np.broadcast_to(precrop_mask(H, W, config.precrop_frac), (len(poses), H, W))
    data['crop_flat'] = torch.as_tensor(np.flatnonzero(crop), device=home)
    return data


def draw_batch(data, config, step, device):
    """(rays_o, rays_d, target_s) [N_rand, 3] on device: N_rand training pixels drawn uniformly
    (within the central crop for the first precrop_iters steps) where the data lives.

    The draw uses the default generator of the data's device, seeded by torch.manual_seed and
    saved in the checkpoints; host data is gathered on the host and copied without blocking.
    """
    rays_o, rays_d, target = data['rays_o'], data['rays_d'], data['target']
    home = target.device
    n_img, H, W = target.shape[:3]
    if step <= config.precrop_iters:
        crop_flat = data['crop_flat']
        flat = crop_flat[torch.randint(crop_flat.shape[0], (config.N_rand,), device=home)]
    else:
        flat = torch.randint(n_img * H * W, (config.N_rand,), device=home)
    img, rows, cols = flat // (H * W), flat % (H * W) // W, flat % W
    batch = (rays_o[img, rows, cols], rays_d[img, rows, cols], target[img, rows, cols])
    return tuple(x.to(device, non_blocking=True) for x in batch)


def step_losses(batch, hwf, train_kwargs, chunk):
    """(loss, img_loss) of one (micro-)batch: MSE of the fine colours (+ MSE of the coarse ones)."""
    H, W, focal = hwf
    rays_o, rays_d, target_s = batch
    rgb, _, _, extras = render_helpers.render(H, W, focal, chunk=chunk, rays=(rays_o, rays_d),
                                              **train_kwargs)
    img_loss = utils.img2mse(rgb, target_s)
    loss = img_loss + (utils.img2mse(extras['rgb0'], target_s) if 'rgb0' in extras else 0.)
    return loss, img_loss


def train_step(optimizer, batch, hwf, train_kwargs, config, step):
    """One training step: forward and backward of Config.grad_accum_steps micro-batches, Adam, lr decay.

    Each micro-loss is scaled by 1 / grad_accum_steps, so the accumulated gradient is that of the
    mean loss over the whole batch. Returns {'loss', 'img_loss', 'psnr'}: 0-dim device tensors
    (the one-shot values), read by the caller on report steps only.
    """
    k = config.grad_accum_steps
    optimizer.zero_grad()
    loss_sum = img_loss_sum = 0.
    for micro in memory.split_batch(batch, k):
        loss, img_loss = step_losses(micro, hwf, train_kwargs, config.chunk)
        (loss / k).backward()
        loss_sum = loss_sum + loss.detach() / k
        img_loss_sum = img_loss_sum + img_loss.detach() / k
    optimizer.step()
    new_lrate = config.lrate_train * 0.1 ** (step / (config.lrate_decay * 1000))
    for group in optimizer.param_groups:
        group['lr'] = new_lrate
    return {'loss': loss_sum, 'img_loss': img_loss_sum, 'psnr': utils.mse2psnr(img_loss_sum)}


def train_kwargs_of(render_kwargs, config, near, far):
    """The render kwargs of training: stratified jitter and sigma noise of the training settings."""
    return dict(render_kwargs, perturb=config.train_perturb, raw_noise_std=config.train_raw_noise_std,
                near=near, far=far)


def bytes_per_ray(data, hwf, render_kwargs, config, near, far, probe_rays=PROBE_RAYS):
    """Bytes autograd saves per training ray, measured on probe_rays rays of the first image.

    Without jitter or noise, so the probe draws nothing from the generators of the training run.
    """
    device = render_kwargs['network_fn'].pts_linears[0].weight.device
    side = int(np.ceil(np.sqrt(probe_rays)))
    probe = tuple(data[k][0, :side, :side].reshape(-1, 3)[:probe_rays].to(device)
                  for k in ('rays_o', 'rays_d', 'target'))
    kwargs = dict(render_kwargs, perturb=0., raw_noise_std=0., near=near, far=far)
    _, n_bytes = memory.saved_bytes(lambda: step_losses(probe, hwf, kwargs, config.chunk))
    return n_bytes / probe_rays


def train(config, pose_overrides=None, device='cpu', start_afresh=False):
    """Trains (or resumes) the NeRF of config; returns {'test_psnr', 'steps', 'run_dir'}.

    pose_overrides: {image index: pose [4, 4]} used instead of the dataset's poses (the LLFF
    self-supervision experiment adds images with iNeRF's poses this way). The run holds its
    folder's lock throughout. start_afresh: when every checkpoint there is unreadable, rename them
    aside and start at step 0 (otherwise common.checkpoints.UnreadableCheckpointsError, nothing
    changed).
    """
    memory.check_grad_accum_steps(config.N_rand, config.grad_accum_steps,
                                  setting='Config.grad_accum_steps', batch_setting='Config.N_rand')
    device = device_utils.resolve_device(device, setting='--device')
    images, poses, hwf, i_train, i_test, near, far = load_scene(config)
    if config.train_views:
        i_train = np.asarray(config.train_views)
    poses = poses.copy()
    for index, pose in (pose_overrides or {}).items():
        poses[index] = pose
    run_dir = os.path.join(config.ckpt_dir, config.model_name)
    render_kwargs, models = nerf_helpers.create_nerf(config, device)
    params = [p for m in models.values() if m is not None for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.lrate_train, betas=(0.9, 0.999))
    # Held for the whole run: a second run in the same folder refuses to start.
    with checkpoints.lock_run_dir(run_dir):
        state, _ = checkpoints.restore_latest(run_dir, map_location=device, start_afresh=start_afresh,
                                              set_aside=True, afresh_flag='--start_afresh')
        start = 0
        if state is not None:
            start = state['global_step']
            models['network_fn'].load_state_dict(state['network_fn_state_dict'])
            if models['network_fine'] is not None:
                models['network_fine'].load_state_dict(state['network_fine_state_dict'])
            optimizer.load_state_dict(state['optimizer_state_dict'])
            checkpoints.restore_rng_state(state['rng'])

        data = training_data(images[i_train], poses[i_train], hwf, config, device)
        print(memory.describe_prediction(params, bytes_per_ray(data, hwf, render_kwargs, config, near, far),
                                         config.N_rand, config.grad_accum_steps, PROBE_RAYS))
        train_kwargs = train_kwargs_of(render_kwargs, config, near, far)
        os.makedirs(run_dir, exist_ok=True)
        log = logger.Logger(os.path.join(run_dir, 'logs'), is_main=True)
        bar = logger.progress(config.N_iters, initial=start, desc='train_nerf')
        for step in range(start + 1, config.N_iters + 1):
            stats = train_step(optimizer, draw_batch(data, config, step, device), hwf, train_kwargs,
                               config, step)
            bar.update(1)
            report = step % config.i_print == 0
            save = step % config.i_weights == 0 or step == config.N_iters
            # Read on report and save steps only (a host sync); a NaN loss never reaches a checkpoint.
            if config.nan_check and (report or save) and not bool(torch.isfinite(stats['loss'])):
                raise FloatingPointError(f"loss is {float(stats['loss'])} at step {step}: training stopped; "
                                         f"the last good checkpoint in {run_dir} is kept (Config.nan_check)")
            if report:
                values = {k: float(v) for k, v in stats.items()}
                bar.set_postfix(loss=f"{values['loss']:.4f}", psnr=f"{values['psnr']:.2f}")
                log.scalars({'loss': values['loss'], 'psnr': values['psnr'],
                             'lr': optimizer.param_groups[0]['lr']}, step, prefix='train/')
            if save:
                fine = models['network_fine']
                checkpoints.save_checkpoint(run_dir, step, {
                    'global_step': step,
                    'network_fn_state_dict': models['network_fn'].state_dict(),
                    'network_fine_state_dict': None if fine is None else fine.state_dict(),
                    'optimizer_state_dict': optimizer.state_dict(),
                    'rng': checkpoints.capture_rng_state()}, keep=3)
        bar.close()
        for model in models.values():
            if model is not None:
                model.eval()
        with torch.no_grad():
            test_psnr = evaluate(render_kwargs, images[i_test], poses[i_test], hwf, config.chunk, near, far)
        log.scalar('test/psnr', test_psnr, config.N_iters)
        log.close()
        metrics = {'test_psnr': test_psnr, 'steps': config.N_iters, 'run_dir': run_dir,
                   'train_views': [int(i) for i in i_train], 'test_views': [int(i) for i in i_test]}
        with open(os.path.join(run_dir, 'metrics.json'), 'w') as f:
            json.dump(metrics, f, indent=1)
    return metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gin_configs', action='append', default=[], help='gin config files')
    parser.add_argument('--gin_bindings', action='append', default=[], help='gin bindings')
    parser.add_argument('--start_afresh', action='store_true',
                        help='when every checkpoint of the run is unreadable, rename them to '
                             '<name>.unreadable and train from step 0')
    parser.add_argument('--device', default=None, help='cpu, cuda, ... (default: the best available)')
    args = parser.parse_args(argv)
    config = utils.parse_config(args.gin_configs, args.gin_bindings)
    device = (device_utils.resolve_device(args.device, setting='--device') if args.device
              else device_utils.pick_device())
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    try:
        metrics = train(config, device=device, start_afresh=args.start_afresh)
    except (FloatingPointError, checkpoints.UnreadableCheckpointsError,
            checkpoints.RunDirLockedError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    print(json.dumps(metrics))


if __name__ == '__main__':
    main()
