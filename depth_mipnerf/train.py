# Derived from AlexSheldrick/mipnerf_pl@depth-mipnerf (MIT licence, Copyright (c) 2022 Jianxin Huang; see THIRD_PARTY_NOTICES.md).
"""Training: the fork's train.py + MipNeRFSystem.training_step, without Lightning.

    python -m depth_mipnerf.train --gin_configs=depth_mipnerf/configs/lego.gin \
        --gin_bindings="Config.data_dir='data/lego'" \
        --gin_bindings="Config.checkpoint_dir='runs/lego'"
    torchrun --standalone --nproc_per_node=4 -m depth_mipnerf.train ...   # DDP, as Lightning

Adam on MSELoss (Charbonnier RGB + the loss.* terms), MipLRDecay per step, the gradient norm
clipped at Config.gradient_clip_val, batches of train.batch_size rays shuffled over the first
train.num_images views. Checkpoints every Config.save_every steps and at the end; a run resumes
from its newest readable checkpoint (or checkpoint.resume_path): unreadable newer ones are renamed
to <name>.unreadable, none readable refuses unless --start_afresh, a second run in the folder
of a live one refuses, and so does a folder whose config.gin differs unless --overwrite_config.
A resumed run trains exactly as an uninterrupted one: batch b is a function of (Config.seed,
rank, b) and each step's random draws are seeded from (Config.seed, rank, step). TensorBoard
scalars every Config.print_every steps, val.sample_num val renderings every val.check_interval steps.
Under torchrun each process draws its own train.batch_size rays and DDP averages the gradients;
rank 0 alone writes checkpoints, config.gin, TensorBoard and the progress bar. A NaN or infinite
loss stops training with an error naming the step before anything of that step is written.

A step never waits for the device: the training rays live there (Config.data_on_device), the
losses stay there and are read (and checked for NaN) only on the steps that log, save or validate.
train.grad_accum_steps splits a step's rays into micro-batches whose gradients add up to the
one-shot step's.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import os
import sys
import time

import gin
import numpy as np
import torch

from common import checkpoints, dist, logger, memory
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
    parser.add_argument('--start_afresh', action='store_true',
                        help='when every checkpoint in Config.checkpoint_dir is unreadable, rename '
                             'them to <name>.unreadable and train from step 0')
    parser.add_argument('--overwrite_config', action='store_true',
                        help='resume although Config.checkpoint_dir/config.gin differs from this run\'s '
                             'configuration, replacing it (after the restore)')
    parser.add_argument('--device', default='cuda',
                        help='cuda (the default: falls back to the CPU without a GPU), cuda:1, cpu, '
                             'mps (must exist); under torchrun cuda means cuda:<LOCAL_RANK>')
    # torch.distributed.launch's flag (torchrun sets LOCAL_RANK instead); init_distributed reads it.
    parser.add_argument('--local_rank', '--local-rank', type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def select_device(name, setting='--device'):
    """The device `name` names: plain 'cuda' (the default) falls back to the CPU without a GPU;
    any other name (cuda:1, mps, cpu) must exist here, else a ValueError naming `setting`."""
    if name == 'cuda':
        return device_utils.pick_device(name)
    return device_utils.resolve_device(name, setting)


def init_process(requested, argv):
    """DistInfo of this process: under torchrun cuda:<LOCAL_RANK> (nccl) when `requested` is a
    CUDA device and one is available, else select_device(requested) (gloo); alone select_device."""
    device = select_device(requested)
    info = dist.init_distributed('nccl' if device.type == 'cuda' else 'gloo', argv=list(argv))
    if info.world_size == 1 or device.type != 'cuda':
        info = dataclasses.replace(info, device=device)
    return info


def data_on_device(setting, nbytes, device, fraction=0.5):
    """Whether the training rays and pixels (nbytes) live on `device`: Config.data_on_device when
    set, else whether they fit in `fraction` of the GPU's free memory (always, off CUDA)."""
    if setting is not None:
        return setting
    if device.type != 'cuda':
        return True
    return memory.fits_free_memory(nbytes, device, fraction)


def dataset_bytes(dataset):
    """Bytes of a dataset's rays and pixels."""
    return sum(t.numel() * t.element_size() for t in (*dataset.rays, dataset.images))


STREAM_BATCHES, STREAM_STEP = 0, 1


def stream_seed(seed, rank, stream, index):
    """A 32-bit seed of (Config.seed, rank, stream, index): the seed of the permutation of epoch
    `index` (STREAM_BATCHES) or of the random draws of step `index` (STREAM_STEP) of a rank."""
    return int(np.random.SeedSequence([seed, rank, stream, index]).generate_state(1)[0])


class RayBatches:
    """Batches of the train split's rays, reshuffled at every pass (the DataLoader's shuffle).

    Batch b is a function of (seed, rank, b): pass b // (rays // batch_size) is a permutation seeded
    by stream_seed(seed, rank, STREAM_BATCHES, pass) and the batch its (b mod passes)-th slice, so a
    run resumed at batch `first` draws what an uninterrupted one draws there (port addition: the
    fork's DataLoader state is not saved). on_device: the rays and pixels are copied to `device` once
    and every batch is gathered there with a generator of that device; else they stay on the CPU,
    each batch is gathered there and copied (the fallback for a training set larger than the device's memory).
    """

    def __init__(self, dataset, batch_size, seed, device, on_device=True, rank=0, first=0):
        home = torch.device(device) if on_device else torch.device('cpu')
        self.rays = datasets.namedtuple_map(lambda r: r.to(home), dataset.rays)
        self.pixels = dataset.images.to(home)
        self.batch_size, self.device = batch_size, device
        self.seed, self.rank, self.index = seed, rank, first
        # Whole batches per pass (the last partial one is dropped, as before); at least one.
        self.per_pass = max(len(self.pixels) // batch_size, 1)
        self.generator = torch.Generator(device=home)
        self.epoch = first // self.per_pass
        self.order = self._permutation(self.epoch)

    def _permutation(self, epoch):
        """The random order of the rays in pass `epoch`, drawn where they live."""
        self.generator.manual_seed(stream_seed(self.seed, self.rank, STREAM_BATCHES, epoch))
        return torch.randperm(len(self.pixels), generator=self.generator, device=self.generator.device)

    def __next__(self):
        # Python-side counts only: the order is read on the device, never on the host.
        epoch, i = divmod(self.index, self.per_pass)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, self._permutation(epoch)
        self.index += 1
        index = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        rays, rgbs = datasets.namedtuple_map(lambda r: r[index], self.rays), self.pixels[index]
        return (datasets.namedtuple_map(lambda r: r.to(self.device, non_blocking=True), rays),
                rgbs.to(self.device, non_blocking=True))


def rng_state(device):
    """The state of the generator behind `device`'s random draws (the CPU's off CUDA)."""
    return torch.cuda.get_rng_state(device) if device.type == 'cuda' else torch.get_rng_state()


def set_rng_state(state, device):
    """Restores a state of rng_state(device)."""
    if device.type == 'cuda':
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def backward_batch(model, loss_fn, rays, rgbs, eps, sections, grad_accum_steps, scale=1.):
    """Forward + backward of one batch in grad_accum_steps micro-batches: the accumulated gradients
    (times `scale`) are the one-shot batch's. Returns the batch's loss pieces (detached).

    Every loss term is a sum divided by a count over the whole batch, and some counts (the depth
    windows' samples) depend on where the model puts its samples: with several micro-batches a
    forward without gradients first counts them (the same random draws, replayed), so each
    micro-batch's loss is its exact share of the one-shot loss (an extra forward pass).
    """
    train = sections['train']
    device = rays.origins.device

    def pieces(micro_rays, micro_rgbs):
        ret = model(micro_rays, train.randomized, train.white_bkgd,
                    sections['nerf'].compute_density_normals, eps, zero_glo=False)
        return loss_fn.pieces(ret, nerf_system.targets(micro_rays, micro_rgbs))

    micro = memory.split_batch((rays, rgbs), grad_accum_steps)
    counts, states = None, []
    if grad_accum_steps > 1:
        with torch.no_grad():
            counted = []
            for micro_rays, micro_rgbs in micro:
                states.append(rng_state(device))
                counted.append(pieces(micro_rays, micro_rgbs))
        counts = {name: count for name, (_, count) in loss_lib.sum_pieces(counted).items()}
    done = []
    for i, (micro_rays, micro_rgbs) in enumerate(micro):
        if states:
            set_rng_state(states[i], device)
        batch_pieces = pieces(micro_rays, micro_rgbs)
        # DDP averages the gradients once, after the last micro-batch.
        last = i == len(micro) - 1
        with contextlib.nullcontext() if last or not hasattr(model, 'no_sync') else model.no_sync():
            (loss_fn.combine(batch_pieces, counts)['total'].sum() * scale).backward()
        done.append({name: (total.detach(), count) for name, (total, count) in batch_pieces.items()})
    return loss_lib.sum_pieces(done)


def train_step(model, loss_fn, optimizer, scheduler, batches, step, config, sections):
    """One optimiser step (train.randomized sampling, per-camera GLO codes) and the LR schedule's.

    Returns the detached losses and the gradient norm before clipping ('grad_norm'): 0-d device
    tensors, never read on the host here.
    """
    eps = nerf_system.depth_eps(step, sections['optimizer'].max_steps)
    optimizer.zero_grad(set_to_none=True)
    for _ in range(config.accumulate_grad_batches):
        rays, rgbs = next(batches)
        pieces = backward_batch(model, loss_fn, rays, rgbs, eps, sections, sections['train'].grad_accum_steps,
                                scale=1. / config.accumulate_grad_batches)
    # An infinite limit measures the norm without clipping.
    clip = config.gradient_clip_val if config.gradient_clip_val > 0 else float('inf')
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    losses = {k: v.detach().sum() for k, v in loss_fn.combine(pieces).items()}
    return {**losses, 'grad_norm': grad_norm.detach()}


def check_finite(totals, steps):
    """Raises NonFiniteLossError naming the first of `steps` whose loss (totals [K]) is NaN or
    infinite; reads the device once."""
    bad = ~torch.isfinite(totals)
    if bool(bad.any()):
        first = int(bad.to(torch.uint8).argmax())
        kind = 'NaN' if bool(totals[first].isnan()) else 'infinite'
        raise NonFiniteLossError(f'the loss became {kind} at step {steps[first]}; training stopped and the '
                                 'last good checkpoint stays in place')


def check_glo_table(model, dataset, sections):
    """Raises ValueError naming nerf.mlp.num_glo_embeddings when a camera index of the (CPU) training
    rays has no GLO embedding: checked once here, as the forward does not (it would wait on the device)."""
    if model.num_glo_features == 0:
        return
    cameras = int(dataset.rays.cam_idx.max()) + 1
    if cameras > model.num_glo_embeddings:
        raise ValueError(f'{cameras} training cameras (train.num_images = {sections["train"].num_images}) but '
                         f'nerf.mlp.num_glo_embeddings = {model.num_glo_embeddings}: camera index {cameras - 1} '
                         'has no GLO embedding; one embedding per training image is needed')


def probe_bytes_per_ray(model, loss_fn, dataset, sections, device, probe_rays=64):
    """Bytes autograd saves for the backward pass per ray: one forward + loss on the first
    probe_rays training rays (the global random state is left as it was)."""
    rays = datasets.namedtuple_map(lambda r: r[:probe_rays].to(device), dataset.rays)
    rgbs = dataset.images[:probe_rays].to(device)
    train = sections['train']
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        _, nbytes = memory.saved_bytes(lambda: loss_fn(
            model(rays, train.randomized, train.white_bkgd, sections['nerf'].compute_density_normals,
                  zero_glo=False), nerf_system.targets(rays, rgbs))['total'])
    return nbytes / len(rgbs)


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


def check_run_dir(run_dir, config_text, overwrite_config=False):
    """Raises a ValueError, changing nothing, when run_dir is an existing file, or holds a config.gin
    other than config_text (the one this run would write) and not overwrite_config (--overwrite_config)."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f'Config.checkpoint_dir = {run_dir!r} is a file, not a folder; nothing was changed')
    saved = os.path.join(run_dir, 'config.gin')
    if overwrite_config or not os.path.isfile(saved):
        return
    with open(saved) as f:
        old = f.read()
    if old == config_text:
        return
    old_lines, new_lines = old.splitlines(), config_text.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b),
                 min(len(old_lines), len(new_lines)))
    there, now = (repr(lines[first]) if first < len(lines) else 'the end of the file'
                  for lines in (old_lines, new_lines))
    raise ValueError(f'{saved} differs from this run\'s configuration (line {first + 1}: {there} there, '
                     f'{now} now); nothing was changed. Resume with the same gin files and bindings, '
                     'train in another Config.checkpoint_dir, or rerun with --overwrite_config to replace it')


def restore(model, optimizer, scheduler, config, sections, info, start_afresh=False):
    """Loads checkpoint.resume_path or the newest readable checkpoint of checkpoint_dir on every rank
    (the global RNG state, rank 0's, on rank 0 only; rank 0 renames unreadable ones aside); the step
    reached (0). start_afresh: as common.checkpoints.restore_latest (--start_afresh)."""
    path = sections['checkpoint'].resume_path
    if path:
        state = checkpoints.load_checkpoint(path, info.device)
    else:
        state, path = checkpoints.restore_latest(
            config.checkpoint_dir, map_location=info.device, start_afresh=start_afresh,
            set_aside=info.is_main, afresh_flag='--start_afresh')
    if state is None:
        return 0
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    if info.is_main:
        checkpoints.restore_rng_state(state['rng'])
        print(f'resuming from {path} at step {state["step"]}')
    return int(state['step'])


def train(config, sections, device='cpu', info=None, start_afresh=False, overwrite_config=False):
    """Trains the configured model; returns it, unwrapped (after optimizer.max_steps steps).

    info: common.dist.DistInfo of this process under torchrun (its device is used); None: a
    single process on select_device(device). Rank 0 holds Config.checkpoint_dir's lock for the
    whole run. start_afresh: when every checkpoint there is unreadable, rename them aside and start
    at step 0 (otherwise common.checkpoints.UnreadableCheckpointsError, nothing changed).
    overwrite_config: resume although checkpoint_dir's config.gin differs (otherwise a ValueError,
    nothing changed); config.gin is written only once the restore succeeded.
    """
    if not config.checkpoint_dir:
        raise ValueError(
            "Config.checkpoint_dir is not set (--gin_bindings=\"Config.checkpoint_dir='...'\")")
    config_text = gin.config_str()
    check_run_dir(config.checkpoint_dir, config_text, overwrite_config)
    train_section, opt = sections['train'], sections['optimizer']
    memory.check_grad_accum_steps(train_section.batch_size, train_section.grad_accum_steps,
                                  setting='train.grad_accum_steps', batch_setting='train.batch_size')
    if info is None:
        info = dist.DistInfo(0, 0, 1, select_device(device, 'device'), is_main=True)
    device = info.device
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    # Ranks sample their own points along the rays; DDP broadcasts rank 0's initial weights.
    torch.manual_seed(dist.rank_seed(config.seed, info.rank))
    dataset = nerf_system.build_dataset(config, sections, 'train')
    val_dataset = None
    if sections['val'].sample_num > 0 and info.is_main:
        val_dataset = nerf_system.build_dataset(config, sections, 'val')
    model = nerf_system.build_model(sections).to(device)
    nerf_system.use_mlp_autocast(model, config, device)
    check_glo_table(model, dataset, sections)
    loss_fn = nerf_system.build_loss(config, sections)
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr_init)
    scheduler = MipLRDecay(optimizer, opt.lr_init, opt.lr_final, opt.max_steps, opt.lr_delay_steps,
                           opt.lr_delay_mult)
    # Rank 0 holds the folder for the whole run: a second run there refuses to start.
    with checkpoints.lock_run_dir(config.checkpoint_dir) if info.is_main else contextlib.nullcontext():
        start = restore(model, optimizer, scheduler, config, sections, info, start_afresh)
        on_device = data_on_device(config.data_on_device, dataset_bytes(dataset), device)
        bytes_per_ray = probe_bytes_per_ray(model, loss_fn, dataset, sections, device)
        nerf_system.use_compile(model, config.use_compile)
        # As Lightning 1.x's DDP: some parameters may get no gradient (depth_network.variance
        # without nerf.depth_sampling).
        ddp_model = dist.wrap_ddp(model, info, find_unused_parameters=True)
        if info.is_main:
            os.makedirs(config.checkpoint_dir, exist_ok=True)
            with open(os.path.join(config.checkpoint_dir, 'config.gin'), 'w') as f:
                f.write(config_text)
            print(f'{sum(p.numel() for p in model.parameters())} parameters on {device}, '
                  f'{train_section.batch_size} rays per step in each of {info.world_size} '
                  f'process(es); training rays on {device if on_device else "the CPU"}')
            print(memory.describe_prediction(list(model.parameters()), bytes_per_ray, train_section.batch_size,
                                             train_section.grad_accum_steps, probe_rays=64))
        batches = RayBatches(dataset, train_section.batch_size, config.seed, device, on_device, rank=info.rank,
                             first=start * config.accumulate_grad_batches)
        log = logger.Logger(config.checkpoint_dir, is_main=info.is_main)
        bar = logger.progress(opt.max_steps, initial=start, disable=not info.is_main)
        model.train()
        tic = time.time()
        # The total losses of the steps since the last check, on the device until a step reads them.
        pending = []
        try:
            for step in range(start + 1, opt.max_steps + 1):
                # The step's sampling jitter and density noise: a function of (seed, rank, step), so
                # a resumed run draws what an uninterrupted one draws whatever ran in between.
                torch.manual_seed(stream_seed(config.seed, info.rank, STREAM_STEP, step))
                losses = train_step(ddp_model, loss_fn, optimizer, scheduler, batches, step, config, sections)
                pending.append(losses['total'])
                bar.update(1)
                report = step % config.print_every == 0 or step == opt.max_steps
                save = step % config.save_every == 0 or step == opt.max_steps
                validating = sections['val'].sample_num > 0 and step % sections['val'].check_interval == 0
                if not (report or save or validating):
                    continue
                # Every rank checks the mean of all ranks' losses at the same steps, so all stop at
                # the same step, before anything of it is written.
                check_finite(dist.all_reduce_mean(torch.stack(pending)), range(step - len(pending) + 1, step + 1))
                pending = []
                if report:
                    rays_per_sec = (config.print_every * train_section.batch_size * info.world_size
                                    / (time.time() - tic))
                    mean = dict(zip(losses, dist.all_reduce_mean(torch.stack(list(losses.values())))))
                    log.scalars({f'train/{k}': v for k, v in mean.items()}, step)
                    log.scalar('lr', optimizer.param_groups[0]['lr'], step)
                    log.scalar('train/rays_per_sec', rays_per_sec, step)
                    logger.set_progress_stats(bar, loss=mean['total'], psnr=mean['psnr'],
                                              rays_per_sec=rays_per_sec)
                    tic = time.time()
                if info.is_main and save:
                    checkpoints.save_checkpoint(config.checkpoint_dir, step, {
                        'step': step, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                        'scheduler': scheduler.state_dict(), 'rng': checkpoints.capture_rng_state()},
                        keep=config.checkpoint_keep)
                if val_dataset is not None and validating:
                    model.eval()
                    validate(log, model, val_dataset, sections, step)
                    model.train()
        finally:
            bar.close()
            log.close()
    model.eval()
    return model


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    config, sections = config_lib.parse(args.gin_configs, args.gin_bindings)
    try:
        info = init_process(args.device, argv)
        model = train(config, sections, info=info, start_afresh=args.start_afresh,
                      overwrite_config=args.overwrite_config)
    except (FileNotFoundError, ValueError, NonFiniteLossError, checkpoints.UnreadableCheckpointsError,
            checkpoints.RunDirLockedError) as error:
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
