# Copyright 2022 Google LLC
# Licensed under the Apache License, Version 2.0 (see LICENSE).
# Modified: ported from JAX to PyTorch by the nerf-ports authors.
"""Losses, per-MLP gradient clipping, the optimizer, and the training and rendering steps.

Statistics name parameters by their multinerf flax paths ('NerfMLP_0/Dense_3/kernel', see
models.Model.flax_names), so Config.weight_decay_mults and the TensorBoard tags read as in
multinerf.
"""

import collections
import contextlib
import dataclasses
import functools
from typing import Any, Callable

import torch

from common import checkpoints
from mipnerf360.internal import camera_utils, image, math, models, ref_utils, stepfun, utils


def tree_sum(values):
    """Sum of a list of scalar tensors."""
    return functools.reduce(lambda x, y: x + y, values, 0)


def tree_norm_sq(tensors):
    """Sum of squares of every entry of a list of tensors: []."""
    return tree_sum([torch.sum(t**2) for t in tensors])


def summarize_tree(named, reduce_leaves, combine, max_depth=3):
    """{prefix: statistic of the tensors under prefix} for every '/'-path prefix (max_depth parts).

    Args:
      named: {'NerfMLP_0/Dense_0/kernel': tensor, ...}.
      reduce_leaves: list of tensors -> [n] one statistic per tensor, one foreach kernel for all
        (e.g. leaf_norms_sq).
      combine: [m] leaf statistics of a prefix -> [] (e.g. torch.sum, torch.amax).

    Returns:
      {'NerfMLP_0': ..., 'NerfMLP_0/Dense_0': ..., 'NerfMLP_0/Dense_0/kernel': ..., ...}.
    """
    leaf_stats = reduce_leaves(list(named.values()))
    groups = collections.defaultdict(list)
    for i, path in enumerate(named):
        parts = path.split('/')
        for depth in range(1, min(len(parts), max_depth) + 1):
            groups['/'.join(parts[:depth])].append(i)
    return {k: combine(leaf_stats[idx]) for k, idx in groups.items()}


def leaf_norms_sq(tensors):
    """[n] squared L2 norms of n tensors (one foreach kernel)."""
    return torch.stack(torch._foreach_norm(tensors)) ** 2


def leaf_abs_maxes(tensors):
    """[n] largest absolute entries of n tensors (one foreach kernel)."""
    return torch.stack(torch._foreach_norm(tensors, ord=float('inf')))


def param_statistics(params, grads):
    """multinerf's 'weight_l2s', 'grad_norms', 'grad_maxes', each {flax prefix: []}."""
    return {
        'weight_l2s': summarize_tree(params, leaf_norms_sq, torch.sum),
        'grad_norms': summarize_tree(grads, leaf_norms_sq, lambda x: torch.sqrt(torch.sum(x))),
        'grad_maxes': summarize_tree(grads, leaf_abs_maxes, torch.amax),
    }


def update_statistics(params, old_params):
    """multinerf's 'opt_update_norms', 'opt_update_maxes' of params - old_params, {prefix: []}."""
    delta = dict(zip(params, torch._foreach_sub(list(params.values()), list(old_params.values()))))
    return {
        'opt_update_norms': summarize_tree(delta, leaf_norms_sq, lambda x: torch.sqrt(torch.sum(x))),
        'opt_update_maxes': summarize_tree(delta, leaf_abs_maxes, torch.amax),
    }


def split_batch(batch, num_micro):
    """utils.Batch [n, ...] -> num_micro utils.Batch [n / num_micro, ...] (views along dim 0)."""
    return [batch.map(lambda x, i=i: x.chunk(num_micro)[i]) for i in range(num_micro)]


def flax_named_params(model):
    """{flax path: parameter} of a models.Model."""
    params = dict(model.named_parameters())
    return {flax: params[name] for name, flax in model.flax_names().items()}


def compute_data_loss(batch, renderings, rays, loss_threshold, config):
    """The weighted data loss summed over levels, and per-level statistics.

    Args:
      batch: utils.Batch with rgb [..., 3(+)] (and disps, normals, alphas for the metrics).
      renderings: the Model's per-level renderings.
      rays: utils.Rays; lossmult [..., 1] weighs each ray.
      loss_threshold: the RobustNeRF inlier threshold (unused: RobustNeRF is not ported).
      config: the Config.

    Returns:
      loss: [], data_coarse_loss_mult * (proposal levels) + data_loss_mult * (final level).
      stats: {'mses': [levels], and 'disparity_mses', 'normal_maes' when asked for}.
    """
    data_losses = []
    stats = collections.defaultdict(list)

    # lossmult weighs rays: masks, Bayer patterns, multiscale level weights.
    lossmult = torch.broadcast_to(rays.lossmult, batch.rgb[..., :3].shape)
    if config.disable_multiscale_loss:
        lossmult = torch.ones_like(lossmult)

    for rendering in renderings:
        resid_sq = (rendering['rgb'] - batch.rgb[..., :3]) ** 2
        denom = lossmult.sum()
        stats['mses'].append((lossmult * resid_sq).sum() / denom)

        if config.data_loss_type == 'mse':
            data_loss = resid_sq
        elif config.data_loss_type == 'charb':
            data_loss = torch.sqrt(resid_sq + config.charb_padding**2)
        elif config.data_loss_type == 'rawnerf':
            # Clip at 1 like an overexposed sensor, and reweigh the L2 loss by the gradient of
            # a log tone curve.
            rgb_render_clip = torch.clamp(rendering['rgb'], max=1.)
            resid_sq_clip = (rgb_render_clip - batch.rgb[..., :3]) ** 2
            scaling_grad = 1. / (1e-3 + rgb_render_clip.detach())
            data_loss = resid_sq_clip * scaling_grad**2
        elif config.data_loss_type == 'robustnerf':
            raise NotImplementedError('The robustnerf data loss is not ported.')
        else:
            raise ValueError(f'Unknown data_loss_type {config.data_loss_type!r}.')
        data_losses.append((lossmult * data_loss).sum() / denom)

        if config.compute_disp_metrics:
            # Disparity of the mean distance (other distance statistics would do as well).
            disp = 1 / (1 + rendering['distance_mean'])
            stats['disparity_mses'].append(((disp - batch.disps) ** 2).mean())

        if config.compute_normal_metrics:
            if 'normals' in rendering:
                weights = rendering['acc'] * batch.alphas
                normalized_normals_gt = ref_utils.l2_normalize(batch.normals)
                normalized_normals = ref_utils.l2_normalize(rendering['normals'])
                normal_mae = ref_utils.compute_weighted_mae(
                    weights, normalized_normals, normalized_normals_gt)
            else:
                normal_mae = torch.tensor(torch.nan, device=resid_sq.device)
            stats['normal_maes'].append(normal_mae)

    loss = (config.data_coarse_loss_mult * tree_sum(data_losses[:-1]) +
            config.data_loss_mult * data_losses[-1])
    return loss, {k: torch.stack(v) for k, v in stats.items()}


def interlevel_loss(ray_history, config):
    """The proposal loss of mip-NeRF 360 (Eq. 13), summed over the proposal levels: []."""
    # The NeRF level is the target: no gradient flows into it from this loss.
    c = ray_history[-1]['sdist'].detach()
    w = ray_history[-1]['weights'].detach()
    loss_interlevel = 0.
    for ray_results in ray_history[:-1]:
        loss_interlevel += torch.mean(
            stepfun.lossfun_outer(c, w, ray_results['sdist'], ray_results['weights']))
    return config.interlevel_loss_mult * loss_interlevel


def distortion_loss(ray_history, config):
    """The distortion regulariser of mip-NeRF 360 (Eq. 15) on the final level, in s-space: []."""
    c = ray_history[-1]['sdist']
    w = ray_history[-1]['weights']
    return config.distortion_loss_mult * torch.mean(stepfun.lossfun_distortion(c, w))


def orientation_loss(rays, model, ray_history, config):
    """Ref-NeRF's orientation loss: weighted squared back-facing n . v, per level: []."""
    total_loss = 0.
    for i, ray_results in enumerate(ray_history):
        w = ray_results['weights']
        n = ray_results[config.orientation_loss_target]
        if n is None:
            raise ValueError('Normals cannot be None if orientation loss is on.')
        v = -1. * rays.viewdirs  # Unit vectors from the point towards the camera.
        n_dot_v = (n * v[..., None, :]).sum(dim=-1)
        loss = torch.mean((w * torch.clamp(n_dot_v, max=0.0) ** 2).sum(dim=-1))
        if i < model.num_levels - 1:
            total_loss += config.orientation_coarse_loss_mult * loss
        else:
            total_loss += config.orientation_loss_mult * loss
    return total_loss


def predicted_normal_loss(model, ray_history, config):
    """Ref-NeRF's loss tying predicted normals to density-gradient normals, per level: []."""
    total_loss = 0.
    for i, ray_results in enumerate(ray_history):
        w = ray_results['weights']
        n = ray_results['normals']
        n_pred = ray_results['normals_pred']
        if n is None or n_pred is None:
            raise ValueError(
                'Predicted normals and gradient normals cannot be None if predicted normal loss '
                'is on.')
        loss = torch.mean((w * (1.0 - torch.sum(n * n_pred, dim=-1))).sum(dim=-1))
        if i < model.num_levels - 1:
            total_loss += config.predicted_normal_coarse_loss_mult * loss
        else:
            total_loss += config.predicted_normal_loss_mult * loss
    return total_loss


def clip_gradients(model, config):
    """Clips the gradients of each top-level module (NerfMLP_0, PropMLP_0, ...) on its own, in place.

    First by value (grad_max_val > 0), then by norm: each module's gradient is scaled by
    min(1, grad_max_norm / (eps + its norm)) when grad_max_norm > 0.
    """
    eps = torch.finfo(torch.float32).eps
    for child in model.children():
        grads = [p.grad for p in child.parameters() if p.grad is not None]
        if not grads:
            continue
        if config.grad_max_val > 0:
            torch._foreach_clamp_min_(grads, -config.grad_max_val)
            torch._foreach_clamp_max_(grads, config.grad_max_val)
        if config.grad_max_norm > 0:
            # eps: a zero gradient stays zero instead of 0/0.
            norm = torch.sqrt(torch.sum(leaf_norms_sq(grads)))
            mult = torch.clamp(config.grad_max_norm / (eps + norm), max=1)
            torch._foreach_mul_(grads, mult)


@dataclasses.dataclass
class TrainState:
    """The model, its Adam optimizer, the learning-rate schedule and the number of steps taken."""

    model: models.Model
    optimizer: torch.optim.Optimizer
    lr_fn: Callable[[int], Any]
    step: int = 0

    def state_dict(self):
        """What a checkpoint holds: parameters, optimizer moments and the step."""
        return {
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'step': self.step,
        }

    def load_state_dict(self, state):
        """Restores a state_dict() in place."""
        self.model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.step = int(state['step'])


def weight_decay_loss(params, weight_decay_mults):
    """sum_k mult_k * |params under the flax prefix k|^2 (Config.weight_decay_mults): []."""
    return tree_sum([
        m * tree_norm_sq([p for path, p in params.items() if path == k or path.startswith(k + '/')])
        for k, m in weight_decay_mults.items()])


def compute_losses(model, module, rng, batch, cameras, camtype, train_frac, loss_threshold, config):
    """The forward pass and every loss of one (micro-)batch.

    Returns:
      losses: {'data', 'interlevel', 'distortion', ...} of this batch, each [] (no weight decay).
      stats: {'mses': [levels], ...} as compute_data_loss gives them.
      denom: [] the lossmult sum of this batch, the weight of its data terms.
    """
    rays = batch.rays
    if config.cast_rays_in_train_step:
        rays = camera_utils.cast_ray_batch(cameras, rays, camtype)

    # 2D outputs (distances, normals) are only needed for these metrics.
    compute_extras = config.compute_disp_metrics or config.compute_normal_metrics

    renderings, ray_history = model(
        rng if config.randomized else None,
        rays,
        train_frac=train_frac,
        compute_extras=compute_extras,
        zero_glo=False)

    losses = {}
    data_loss, stats = compute_data_loss(batch, renderings, rays, loss_threshold, config)
    losses['data'] = data_loss
    if config.interlevel_loss_mult > 0:
        losses['interlevel'] = interlevel_loss(ray_history, config)
    if config.distortion_loss_mult > 0:
        losses['distortion'] = distortion_loss(ray_history, config)
    if config.orientation_coarse_loss_mult > 0 or config.orientation_loss_mult > 0:
        losses['orientation'] = orientation_loss(rays, module, ray_history, config)
    if config.predicted_normal_coarse_loss_mult > 0 or config.predicted_normal_loss_mult > 0:
        losses['predicted_normals'] = predicted_normal_loss(module, ray_history, config)
    lossmult = rays.lossmult if not config.disable_multiscale_loss else torch.ones_like(rays.lossmult)
    denom = torch.broadcast_to(lossmult, batch.rgb[..., :3].shape).sum()
    return losses, stats, denom


def create_train_step(model, config, dataset=None):
    """Builds the training step of `model` (a models.Model, or a DDP wrapper around one).

    Args:
      model: the model to call; with DistributedDataParallel the gradients arrive averaged over
        processes, as multinerf's pmean does.
      config: the Config. With grad_accum_steps = k > 1 the batch is split into k micro-batches
        whose gradients add up to the gradient of the whole batch: each micro-batch's data terms
        are weighted by its share of the lossmult sum, its ray means by 1 / k.
      dataset: the training dataset; its camtype is used when rays are cast in the step.

    Returns:
      train_step(rng, state, batch, cameras, train_frac, loss_threshold=1.0,
      compute_stats=False) -> (state, stats, rng): one forward, backward, per-MLP clipping and
      Adam update of `state` (in place). rng: torch.Generator for the sampling (ignored when not
      config.randomized); batch: utils.Batch; cameras: the dataset's camera tuple on the model's
      device (used with cast_rays_in_train_step); train_frac: float in [0, 1]. stats, as
      multinerf's (detached device tensors, no host sync): 'loss', 'losses' {data, interlevel,
      distortion, ...}, 'mses' and 'psnrs' [levels], 'psnr'; with compute_stats (report steps
      only: they cost a pass over every parameter) also per flax path 'weight_l2s',
      'grad_norms', 'grad_maxes', 'opt_update_norms', 'opt_update_maxes'.
    """
    if config.data_loss_type == 'robustnerf' or config.enable_robustnerf_loss:
        raise NotImplementedError('The robustnerf data loss is not ported.')
    camtype = camera_utils.ProjectionType.PERSPECTIVE if dataset is None else dataset.camtype
    module = getattr(model, 'module', model)  # The Model inside a DDP wrapper.
    num_micro = config.grad_accum_steps
    params = flax_named_params(module)

    def train_step(rng, state, batch, cameras, train_frac, loss_threshold=1.0, compute_stats=False):
        micro_batches = split_batch(batch, num_micro) if num_micro > 1 else [batch]
        total_denom = (torch.broadcast_to(batch.rays.lossmult, batch.rgb[..., :3].shape).sum()
                       if not config.disable_multiscale_loss else batch.rgb[..., :3].numel())
        state.optimizer.zero_grad(set_to_none=True)
        losses, stats = {}, {}
        for i, micro in enumerate(micro_batches):
            # DDP averages the gradients over processes once, after the last micro-batch.
            sync = contextlib.nullcontext() if i == num_micro - 1 or not hasattr(model, 'no_sync') \
                else model.no_sync()
            with sync:
                micro_losses, micro_stats, denom = compute_losses(
                    model, module, rng, micro, cameras, camtype, train_frac, loss_threshold, config)
                # Data terms are lossmult-weighted means: a micro-batch weighs its share of the
                # lossmult sum; the other terms are plain means over equal micro-batches.
                data_weight = denom / total_denom if num_micro > 1 else 1.
                weights = {k: data_weight if k == 'data' else 1. / num_micro for k in micro_losses}
                if i == 0 and config.weight_decay_mults:
                    micro_losses['weight'] = weight_decay_loss(params, config.weight_decay_mults)
                    weights['weight'] = 1.
                micro_loss = tree_sum([weights[k] * v for k, v in micro_losses.items()])
                micro_loss.backward()
            for k, v in micro_losses.items():
                losses[k] = losses.get(k, 0.) + weights[k] * v.detach()
            for k, v in micro_stats.items():
                w = data_weight if k == 'mses' else 1. / num_micro
                stats[k] = stats.get(k, 0.) + w * v.detach()

        with torch.no_grad():
            # A parameter the loss did not reach gets a zero gradient, so Adam still steps
            # its moments as optax does.
            for p in params.values():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = {k: p.grad for k, p in params.items()}
            if compute_stats:
                stats.update(param_statistics(params, grads))

            clip_gradients(module, config)
            for g in grads.values():
                torch.nan_to_num_(g)

            for group in state.optimizer.param_groups:
                group['lr'] = float(state.lr_fn(state.step))
            old_params = ({k: p.detach().clone() for k, p in params.items()}
                          if compute_stats else None)
            state.optimizer.step()
            state.step += 1
            if compute_stats:
                stats.update(update_statistics(params, old_params))

            stats['loss'] = tree_sum(list(losses.values()))
            stats['losses'] = losses
            stats['psnrs'] = image.mse_to_psnr(stats['mses'])
            stats['psnr'] = stats['psnrs'][-1]
        return state, stats, rng

    return train_step


def create_optimizer(config, model):
    """Adam (config.adam_beta1/2, adam_eps) over model's parameters with multinerf's lr schedule.

    Returns:
      state: a TrainState at step 0.
      lr_fn: step -> learning rate (math.learning_rate_decay from lr_init to lr_final over
        max_steps, with the lr_delay_steps / lr_delay_mult warm-up). Update k (from 0) uses
        lr_fn(k), as optax's schedule count does.
    """
    lr_fn = functools.partial(
        math.learning_rate_decay,
        lr_init=config.lr_init,
        lr_final=config.lr_final,
        max_steps=config.max_steps,
        lr_delay_steps=config.lr_delay_steps,
        lr_delay_mult=config.lr_delay_mult)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=float(lr_fn(0)),
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps)
    return TrainState(model=model, optimizer=optimizer, lr_fn=lr_fn), lr_fn


def create_render_fn(model):
    """render_eval_fn(train_frac, rng, rays) -> (renderings, ray_history): deterministic, extras on.

    rng is ignored (rendering is deterministic, as in multinerf); bind train_frac with
    functools.partial to get the render_fn that models.render_image takes.
    """

    def render_eval_fn(train_frac, _, rays):
        # no_grad rather than inference_mode: density normals need autograd inside the MLP.
        with torch.no_grad():
            return model(None, rays, train_frac=train_frac, compute_extras=True)

    return render_eval_fn


def dummy_rays(device=None):
    """One all-zero utils.Rays [1, ...] (with exposure values) to build a model from."""
    zeros = lambda n, dtype=torch.float32: torch.zeros((1, n), dtype=dtype, device=device)
    return utils.Rays(
        origins=zeros(3), directions=zeros(3), viewdirs=zeros(3), radii=zeros(1),
        imageplane=zeros(2), lossmult=zeros(1), near=zeros(1), far=zeros(1),
        cam_idx=zeros(1, torch.int64), exposure_values=zeros(1))


def setup_model(config, rng, dataset=None, device=None):
    """Builds the model, its optimizer and the training and rendering steps.

    Args:
      config: the Config (the gin bindings of Model/NerfMLP/PropMLP must be parsed already).
      rng: torch.Generator (any device), or None; its next draw seeds the parameter
        initialisation (done on the CPU, so the initial parameters do not depend on the device).
      dataset: the training dataset (for create_train_step).
      device: where the model lives (default: the CPU).

    Returns:
      model, state (TrainState), render_eval_fn, train_step, lr_fn.
    """
    seed = None if rng is None else int(torch.randint(2**62, (), generator=rng, device=rng.device))
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = models.construct_model(dummy_rays(), config)
    model = model.to(device or 'cpu')
    state, lr_fn = create_optimizer(config, model)
    render_eval_fn = create_render_fn(model)
    train_step = create_train_step(model, config, dataset=dataset)
    return model, state, render_eval_fn, train_step, lr_fn


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (a read-only or full run folder)."""


def save_checkpoint(config, state, rng=None):
    """Writes state (and the sampling generator's state) to config.checkpoint_dir, atomically.

    Keeps the newest config.checkpoint_keep files; returns the path written. An OSError of the
    write (no space, no permission) is a CheckpointSaveError naming the folder; the checkpoints
    written before stay as they were.
    """
    payload = {'state': state.state_dict(), 'rng_state': checkpoints.capture_rng_state()}
    if rng is not None:
        payload['sampling_rng'] = rng.get_state()
    try:
        return checkpoints.save_checkpoint(
            config.checkpoint_dir, state.step, payload, keep=config.checkpoint_keep)
    except OSError as error:
        this = checkpoints.checkpoint_path(config.checkpoint_dir, state.step)
        before = [p for p in checkpoints.list_checkpoints(config.checkpoint_dir) if p != this]
        kept = (f'the checkpoint before, {before[-1]}, is intact' if before
                else 'no checkpoint was written before')
        raise CheckpointSaveError(
            error.errno, f'could not write the checkpoint of step {state.step} to '
            f'{config.checkpoint_dir} ({error.strerror or error}); {kept}. Free space there or make '
            f'it writable, then rerun the same command to resume') from error


def unreadable_checkpoints_message(error, what):
    """One sentence for a checkpoints.UnreadableCheckpointsError that stopped `what` (e.g. 'eval')."""
    return (f'no checkpoint in {error.run_dir} can be read ({", ".join(error.paths)}), so the {what} '
            'stopped; replace them with readable copies or train again')


def restore_checkpoint(config, state, rng=None, device='cpu', start_afresh=False, set_aside=False,
                       afresh_flag=None):
    """Loads the newest readable checkpoint of config.checkpoint_dir into state (and rng).

    start_afresh, set_aside, afresh_flag: as common.checkpoints.restore_latest (a trainer holding
    the folder's lock sets unreadable files aside; eval and render only skip them).

    Returns the path restored from, or None when the directory holds no checkpoint.
    """
    payload, path = checkpoints.restore_latest(
        config.checkpoint_dir, map_location=device, start_afresh=start_afresh, set_aside=set_aside,
        afresh_flag=afresh_flag)
    if payload is None:
        return None
    state.load_state_dict(payload['state'])
    checkpoints.restore_rng_state(payload['rng_state'])
    if rng is not None and 'sampling_rng' in payload:
        rng.set_state(payload['sampling_rng'].cpu())
    return path
