"""Training: the fork's train.py + MipNeRFSystem.training_step, without Lightning.

    python -m depth_mipnerf.train --gin_configs=depth_mipnerf/configs/lego.gin \
        --gin_bindings="Config.data_dir='data/lego'" \
        --gin_bindings="Config.checkpoint_dir='runs/lego'"
    torchrun --standalone --nproc_per_node=4 -m depth_mipnerf.train ...   # DDP, as Lightning

Adam on MSELoss (Charbonnier RGB + the loss.* terms), MipLRDecay per step, the gradient norm
clipped at Config.gradient_clip_val, batches of train.batch_size rays shuffled over the first
train.num_images views. Checkpoints every Config.save_every steps and at the end; a run resumes
from its newest checkpoint (or checkpoint.resume_path). TensorBoard scalars every
Config.print_every steps, val.sample_num val renderings every val.check_interval steps.
Under torchrun each process draws its own train.batch_size rays and DDP averages the gradients;
rank 0 alone writes checkpoints, config.gin, TensorBoard and the progress bar. A NaN or infinite
loss stops training with an error naming the step before anything of that step is written.
"""

import argparse
import dataclasses
import hashlib
import os
import sys
import time

import gin
import torch

from common import checkpoints, dist, logger
from common import device as device_utils
from depth_mipnerf.configs import config as config_lib
from depth_mipnerf.datasets import datasets
from depth_mipnerf.models import loss as loss_lib
from depth_mipnerf.models import nerf_system
from depth_mipnerf.utils.lr_schedule import MipLRDecay


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def parse_args(argv=None):
    """--gin_configs FILE (repeatable) and --gin_bindings 'a.b = c' (repeatable), as mipnerf360."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gin_configs', action='append', default=[], help='gin config file(s)')
    parser.add_argument('--gin_bindings', action='append', default=[], help='gin binding(s)')
    parser.add_argument('--device', default='cuda',
                        help='cuda, cpu, mps (falls back to the CPU); under torchrun cuda means '
                             'cuda:<LOCAL_RANK>')
    # torch.distributed.launch's flag (torchrun sets LOCAL_RANK instead); init_distributed reads it.
    parser.add_argument('--local_rank', '--local-rank', type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def init_process(requested, argv):
    """DistInfo of this process: under torchrun cuda:<LOCAL_RANK> (nccl) when `requested` is a
    CUDA device and one is available, else pick_device(requested) (gloo); alone pick_device."""
    device = device_utils.pick_device(requested)
    info = dist.init_distributed('nccl' if device.type == 'cuda' else 'gloo', argv=list(argv))
    if info.world_size == 1 or device.type != 'cuda':
        info = dataclasses.replace(info, device=device)
    return info


class RayBatches:
    """Batches of the train split's rays, reshuffled at every pass (the DataLoader's shuffle)."""

    def __init__(self, dataset, batch_size, seed, device):
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(dataset), generator=self.generator), 0

    def __next__(self):
        if self.pos + self.batch_size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.dataset), generator=self.generator), 0
        index = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        rays, rgbs = self.dataset[index]
        return datasets.namedtuple_map(lambda r: r.to(self.device), rays), rgbs.to(self.device)


def train_step(model, loss_fn, optimizer, batches, step, config, sections):
    """One optimiser step (train.randomized sampling, per-camera GLO codes): the detached losses."""
    eps = nerf_system.depth_eps(step, sections['optimizer'].max_steps)
    optimizer.zero_grad(set_to_none=True)
    for _ in range(config.accumulate_grad_batches):
        rays, rgbs = next(batches)
        ret = model(rays, sections['train'].randomized, sections['train'].white_bkgd,
                    sections['nerf'].compute_density_normals, eps, zero_glo=False)
        losses = loss_fn(ret, nerf_system.targets(rays, rgbs))
        (losses['total'].sum() / config.accumulate_grad_batches).backward()
    if config.gradient_clip_val > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip_val)
    optimizer.step()
    return {k: v.detach().sum() for k, v in losses.items()}


def check_finite(loss, step):
    """Raises NonFiniteLossError naming `step` when loss (0-d) is NaN or infinite."""
    if not bool(torch.isfinite(loss)):
        kind = 'NaN' if bool(loss.isnan()) else 'infinite'
        raise NonFiniteLossError(f'the loss became {kind} at step {step}; training stopped and the '
                                 'last good checkpoint stays in place')


def weights_digest(state_dict):
    """16 hex digits of sha256 over a state_dict's tensors in order: equal on every DDP rank."""
    digest = hashlib.sha256()
    for tensor in state_dict.values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def validate(log, model, val_dataset, sections, step):
    """Renders the first val.sample_num val images; logs their mean PSNR, the first's pictures."""
    psnrs = []
    device = next(model.parameters()).device
    for i in range(min(sections['val'].sample_num, val_dataset.n_examples)):
        rays, rgbs = val_dataset[i]
        out = nerf_system.render_image(model, datasets.namedtuple_map(lambda r: r.to(device), rays),
                                       sections['val'].chunk_size, sections['val'].randomized,
                                       sections['val'].white_bkgd)
        psnrs.append(float(loss_lib.calc_psnr(out['rgb_fine'].cpu(), rgbs)))
        if i == 0:
            log.image('val/rgb', out['rgb_fine'].clamp(0, 1), step)
            log.image('val/gt', rgbs, step)
            log.image('val/depth', out['depth'] / max(float(out['depth'].max()), 1e-6), step)
    log.scalar('val/psnr', sum(psnrs) / len(psnrs), step)


def restore(model, optimizer, scheduler, config, sections, info):
    """Loads checkpoint.resume_path or the newest checkpoint of checkpoint_dir on every rank (the
    global RNG state, rank 0's, on rank 0 only); the step reached (0)."""
    path = sections['checkpoint'].resume_path
    if path:
        state = checkpoints.load_checkpoint(path, info.device)
    else:
        state, path = checkpoints.restore_latest(config.checkpoint_dir, map_location=info.device)
    if state is None:
        return 0
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    if info.is_main:
        checkpoints.restore_rng_state(state['rng'])
        print(f'resuming from {path} at step {state["step"]}')
    return int(state['step'])


def train(config, sections, device='cpu', info=None):
    """Trains the configured model; returns it, unwrapped (after optimizer.max_steps steps).

    info: common.dist.DistInfo of this process under torchrun (its device is used); None: a
    single process on pick_device(device).
    """
    if not config.checkpoint_dir:
        raise ValueError(
            "Config.checkpoint_dir is not set (--gin_bindings=\"Config.checkpoint_dir='...'\")")
    if info is None:
        info = dist.DistInfo(0, 0, 1, device_utils.pick_device(device), is_main=True)
    device = info.device
    if device.type == 'cuda':
        device_utils.setup_tf32(True)
    # Ranks sample their own points along the rays; DDP broadcasts rank 0's initial weights.
    torch.manual_seed(dist.rank_seed(config.seed, info.rank))
    dataset = nerf_system.build_dataset(config, sections, 'train')
    val_dataset = None
    if sections['val'].sample_num > 0 and info.is_main:
        val_dataset = nerf_system.build_dataset(config, sections, 'val')
    model = nerf_system.build_model(sections).to(device)
    nerf_system.use_mlp_autocast(model, config, device)
    if model.num_glo_features > 0 and dataset.n_examples > model.num_glo_embeddings:
        raise ValueError(f'{dataset.n_examples} training images but nerf.mlp.num_glo_embeddings = '
                         f'{model.num_glo_embeddings}: one GLO embedding per image is needed')
    loss_fn = nerf_system.build_loss(config, sections)
    opt = sections['optimizer']
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr_init)
    scheduler = MipLRDecay(optimizer, opt.lr_init, opt.lr_final, opt.max_steps, opt.lr_delay_steps,
                           opt.lr_delay_mult)
    start = restore(model, optimizer, scheduler, config, sections, info)
    # As Lightning 1.x's DDP: some parameters may get no gradient (depth_network.variance
    # without nerf.depth_sampling).
    ddp_model = dist.wrap_ddp(model, info, find_unused_parameters=True)
    if info.is_main:
        os.makedirs(config.checkpoint_dir, exist_ok=True)
        with open(os.path.join(config.checkpoint_dir, 'config.gin'), 'w') as f:
            f.write(gin.config_str())
        print(f'{sum(p.numel() for p in model.parameters())} parameters on {device}, '
              f'{sections["train"].batch_size} rays per step in each of {info.world_size} '
              'process(es)')
    batches = RayBatches(dataset, sections['train'].batch_size,
                         dist.rank_seed(config.seed + start, info.rank), device)
    log = logger.Logger(config.checkpoint_dir, is_main=info.is_main)
    bar = logger.progress(opt.max_steps, initial=start, disable=not info.is_main)
    model.train()
    tic = time.time()
    # Non-finite sample positions reach the loss (and check_finite) instead of raising inside
    # the depth losses' torch.distributions.Normal.
    validate_args = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        for step in range(start + 1, opt.max_steps + 1):
            losses = train_step(ddp_model, loss_fn, optimizer, batches, step, config, sections)
            # Every rank checks the mean of all ranks' losses, so all stop at the same step.
            check_finite(dist.all_reduce_mean(losses['total']), step)
            scheduler.step()
            bar.update(1)
            if step % config.print_every == 0 or step == opt.max_steps:
                rays_per_sec = (config.print_every * sections['train'].batch_size * info.world_size
                                / (time.time() - tic))
                mean = dict(zip(losses, dist.all_reduce_mean(torch.stack(list(losses.values())))))
                log.scalars({f'train/{k}': v for k, v in mean.items()}, step)
                log.scalar('lr', optimizer.param_groups[0]['lr'], step)
                log.scalar('train/rays_per_sec', rays_per_sec, step)
                logger.set_progress_stats(bar, loss=mean['total'], psnr=mean['psnr'],
                                          rays_per_sec=rays_per_sec)
                tic = time.time()
            if info.is_main and (step % config.save_every == 0 or step == opt.max_steps):
                checkpoints.save_checkpoint(config.checkpoint_dir, step, {
                    'step': step, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                    'scheduler': scheduler.state_dict(), 'rng': checkpoints.capture_rng_state()},
                    keep=config.checkpoint_keep)
            if val_dataset is not None and step % sections['val'].check_interval == 0:
                model.eval()
                validate(log, model, val_dataset, sections, step)
                model.train()
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate_args)
        bar.close()
        log.close()
    model.eval()
    return model


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    config, sections = config_lib.parse(args.gin_configs, args.gin_bindings)
    info = init_process(args.device, argv)
    try:
        model = train(config, sections, info=info)
    except (FileNotFoundError, ValueError, NonFiniteLossError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(1)
    finally:
        dist.cleanup()
    print(f'rank {info.rank}: weights {weights_digest(model.state_dict())}')
    if info.is_main:
        print(f'trained to step {sections["optimizer"].max_steps}; '
              f'checkpoints in {config.checkpoint_dir}')


if __name__ == '__main__':
    main()
