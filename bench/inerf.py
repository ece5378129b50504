"""Seconds per iNeRF pose estimate (Config.n_steps steps, 300 by default) of a config.

    python bench/inerf.py [--gin inerf/configs/blender.gin ...] [--size 400] [--steps 3] [--threads 1]
        [--bind 'Config.batch_size=512' ...]
    python bench/inerf.py --pixelnerf [--steps 5] [--n_steps 300] [--rays 1024] [--json]

Without --gin it measures the paper's config (blender.gin: 8x256 coarse and fine NeRF, 64 + 128
samples, batch 2048, interest regions) and demo.gin. The NeRF has random weights and the observed
image is random noise at the config's resolution (400x400 for half-res Blender; demo: 32x32):
only time is measured. One estimate of --steps steps is timed after a warm-up one and scaled to n_steps.

--pixelnerf times the released iNeRF instead (inerf/eval/pose_estimation.py, iNeRF-public's loop): one
pose_step (encode the source, rays of the whole image, 1024 random pixels, render, MSE, Adam on the raw
pose) of srn.conf's pixelNeRF (random weights, pretrained encoder off) on random 128x128 source and target
images; --steps steps after a warm-up one, scaled to --n_steps. bench/inerf_original.py is its twin for the
original (bench/vs_original.py runs both). --json: the last line is {s_per_step, s_per_estimate, ...}.
"""

import argparse
import dataclasses
import json
import os
import sys

# bench/ shares its file name with the package: keep it off the import path, the repository root first.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH_DIR)] + [
    p for p in sys.path if os.path.abspath(p or '.') != _BENCH_DIR]

import gin  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import device as device_utils  # noqa: E402
from inerf import nerf_helpers, run, utils  # noqa: E402

PAPER_AND_DEMO = (('inerf/configs/blender.gin', 400), ('inerf/configs/demo.gin', 32))


def bench(gin_file, size, args, device):
    """Prints seconds per step and per n_steps-step estimate of one config."""
    gin.clear_config()
    config = utils.parse_config([gin_file], args.bind)
    torch.manual_seed(0)
    render_kwargs, models = nerf_helpers.create_nerf(config, device)
    for model in models.values():
        if model is not None:
            model.requires_grad_(False)
    rng = np.random.default_rng(0)
    obs = rng.random((size, size, 3)).astype(np.float32)
    focal = 0.5 * size / np.tan(0.5 * 0.69)
    pose = np.eye(4)
    pose[:3, 3] = [0., 0., 4.]

    def steps(n):
        cfg = dataclasses.replace(config, n_steps=n, eval_steps=())
        run.estimate_pose(render_kwargs, obs, pose, [size, size, focal], cfg, rng, config.near,
                          config.far)

    per_step = device_utils.timed(lambda: steps(args.steps), 1, device) / args.steps
    name = device.type if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'config {gin_file} {" ".join(args.bind)}: {size}x{size} image, batch {config.batch_size}, '
          f'{config.N_samples}+{config.N_importance} samples, {config.sampling_strategy}; device {name}; '
          f'threads {torch.get_num_threads()}')
    print(f'{per_step:.3f} s/step, {per_step * config.n_steps:.1f} s per pose estimate '
          f'({config.n_steps} steps)')


def bench_pixelnerf(args, size=128):
    """Seconds per step of the released pose estimation loop; returns the result dict."""
    import time

    from pyhocon import ConfigFactory

    from inerf.eval import pose_estimation
    from inerf.src.model import make_model
    from inerf.src.render import NeRFRenderer

    conf = ConfigFactory.parse_file(os.path.join(os.path.dirname(_BENCH_DIR), 'inerf', 'conf', 'exp', 'srn.conf'))
    conf.put('model.encoder.pretrained', False)
    torch.manual_seed(0)
    device = torch.device('cpu')
    net = make_model(conf['model']).to(device=device)
    renderer = NeRFRenderer.from_conf(conf['renderer'], eval_batch_size=50000).to(device=device)
    render_par = renderer.bind_parallel(net, [0], simple_output=True)
    H = W = size
    focal = torch.tensor(131.25)
    generator = torch.Generator().manual_seed(1)
    input_image = torch.rand(3, H, W, generator=generator) * 2 - 1
    input_pose = torch.eye(4)
    input_pose[2, -1] = 1.3
    target_flat = torch.rand(H * W, 3, generator=generator)
    cam_pose = input_pose.clone().unsqueeze(0).requires_grad_(True)
    optimizer = torch.optim.Adam(params=[cam_pose], lr=1e-3)

    def step():
        idxs = pose_estimation.sample_pixels('random', H, W, n_rays=args.rays)
        return pose_estimation.pose_step(render_par, net, optimizer, cam_pose, input_image, input_pose,
                                         target_flat, idxs, focal, W, H, 0.8, 1.8)[1]

    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    per_step = (time.perf_counter() - start) / args.steps
    print(f'pixelNeRF pose estimation (srn.conf, {size}x{size}, {args.rays} rays/step): device cpu; '
          f'threads {torch.get_num_threads()}')
    print(f'{per_step:.3f} s/step, {per_step * args.n_steps:.1f} s per pose estimate ({args.n_steps} steps)')
    return {'config': 'pixelnerf srn.conf pose_estimation', 'threads': torch.get_num_threads(),
            's_per_step': per_step, 's_per_estimate': per_step * args.n_steps, 'n_steps': args.n_steps,
            'loss': loss.item(), 'rays': args.rays}


def nerf_layer_sizes(config, fine=False):
    """[(fan_in, fan_out), ...] of the dense layers of create_nerf's coarse (or fine) NeRF."""
    D, W = (config.netdepth_fine, config.netwidth_fine) if fine else (config.netdepth, config.netwidth)
    input_ch = 3 + 3 * 2 * config.multires if config.i_embed == 0 else 3
    views_ch = 3 + 3 * 2 * config.multires_views if config.i_embed == 0 else 3
    skips = (4,)
    layers = [(input_ch, W)] + [(W + input_ch if i in skips else W, W) for i in range(D - 1)]
    if config.use_viewdirs:
        return layers + [(W, W), (W, 1), (views_ch + W, W // 2), (W // 2, 3)]
    return layers + [(W, 5 if config.N_importance > 0 else 4)]


def nerf_flops_per_ray(config):
    """2 x multiply-adds per ray of a forward pass: coarse MLP at N_samples, fine at N_samples + N_importance."""
    from bench import gpu_case

    flops = gpu_case.linear_flops(nerf_layer_sizes(config), config.N_samples)
    if config.N_importance > 0:
        flops += gpu_case.linear_flops(nerf_layer_sizes(config, fine=True),
                                       config.N_samples + config.N_importance)
    return flops


def gpu_check_case(device, precision, *, paper=True, compiled=False, batch_rays=None, seed=0):
    """bench.gpu_case.Case of train_nerf's step at nerf_blender.gin (paper: 8x256 coarse + fine NeRF,
    64 + 128 samples, N_rand 1024) or demo.gin, on `device` (see bench/gpu_case.py).

    Weights and rays are made on the CPU from the seed and moved; no jitter and no sigma noise, so
    the step is deterministic. Rays start 4 units from the origin and point at the unit ball.
    """
    from bench import gpu_case
    from inerf import render_helpers, train_nerf

    gpu_case.check_precision(precision)
    device = torch.device(device)
    gin_file = 'inerf/configs/nerf_blender.gin' if paper else 'inerf/configs/demo.gin'
    gin.clear_config()
    config = utils.parse_config([gin_file], [])
    gin.clear_config()
    config = dataclasses.replace(config, train_perturb=0., train_raw_noise_std=0., perturb=0.,
                                 bf16=precision == 'bf16', N_rand=batch_rays or config.N_rand)
    gpu_case.set_tf32(device, precision)
    torch.manual_seed(seed)
    render_kwargs, models = nerf_helpers.create_nerf(config, device)
    params = [p for m in models.values() if m is not None for p in m.parameters()]
    if compiled:
        render_kwargs['network_fn'] = torch.compile(models['network_fn'])
        if models['network_fine'] is not None:
            render_kwargs['network_fine'] = torch.compile(models['network_fine'])
    optimizer = torch.optim.Adam(params, lr=config.lrate_train, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)

    def rays(n):
        origins = torch.tensor([0., 0., 4.]).expand(n, 3)
        aim = torch.rand(n, 3, generator=generator) * 2 - 1
        return origins.to(device), (aim - origins).to(device)

    render_rays = gpu_case.render_rays(paper)
    rays_o, rays_d = rays(config.N_rand)
    batch = (rays_o, rays_d, torch.rand(config.N_rand, 3, generator=generator).to(device))
    render_o, render_d = rays(render_rays)
    hwf = (64, 64, 80.)
    train_kwargs = train_nerf.train_kwargs_of(render_kwargs, config, config.near, config.far)
    step_count = [0]

    def train_step():
        step_count[0] += 1
        stats = train_nerf.train_step(optimizer, batch, hwf, train_kwargs, config, step_count[0])
        grads = [p.grad for p in params if p.grad is not None]
        return dict(stats, grad_norm=torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))

    def render():
        with torch.no_grad():
            rgb, _, _, _ = render_helpers.render(*hwf, chunk=config.chunk, rays=(render_o, render_d),
                                                 **dict(render_kwargs, near=config.near, far=config.far))
        return rgb

    forward = nerf_flops_per_ray(config)
    return gpu_case.Case(
        name=f'inerf train_nerf {os.path.basename(gin_file)}', train_step=train_step, render=render,
        train_rays=config.N_rand, render_rays=render_rays, flops_per_ray_train=3 * forward,
        flops_per_ray_render=forward)


def smallest_fitting_accum(params, per_ray, batch, budget=24 * 2**30):
    """The smallest grad_accum_steps dividing batch whose predicted peak fits budget bytes."""
    from common import memory

    for k in range(1, batch + 1):
        if batch % k == 0 and memory.predicted_peak_bytes(params, per_ray, batch // k) <= budget:
            return k
    return None


def memory_table(probe_rays=64):
    """Markdown rows: predicted peak memory of each paper config at its paper batch (saved_bytes on
    probe_rays rays on the CPU), with grad_accum_steps 1 and the smallest value that fits 24 GiB."""
    from pyhocon import ConfigFactory

    from common import memory
    from inerf import train_nerf
    from inerf.src.model import make_model
    from inerf.src.render import NeRFRenderer
    from inerf.train import train as pixelnerf_train

    rows = []
    for gin_file in ('inerf/configs/nerf_blender.gin', 'inerf/configs/nerf_llff.gin'):
        gin.clear_config()
        config = utils.parse_config([gin_file], [])
        gin.clear_config()
        torch.manual_seed(0)
        render_kwargs, models = nerf_helpers.create_nerf(config)
        params = [p for m in models.values() if m is not None for p in m.parameters()]
        near, far = (config.near, config.far) if config.dataset_type == 'blender' else (0., 1.)
        data = {'rays_o': torch.zeros(1, 8, 8, 3), 'rays_d': torch.tensor([0., 0., -1.]).expand(1, 8, 8, 3),
                'target': torch.rand(1, 8, 8, 3)}
        per_ray = train_nerf.bytes_per_ray(data, [8, 8, 10.], render_kwargs, config, near, far, probe_rays)
        rows.append((f'train_nerf {os.path.basename(gin_file)}', 'Config.N_rand', config.N_rand, params, per_ray))
    for conf_name in ('srn', 'dtu', 'sn64'):
        conf = ConfigFactory.parse_file(f'inerf/conf/exp/{conf_name}.conf')
        torch.manual_seed(0)
        net = make_model(conf['model'])
        renderer = NeRFRenderer.from_conf(conf['renderer'])
        size = {'srn': 128, 'dtu': 300, 'sn64': 64}[conf_name]
        poses = torch.eye(4)[None].clone()
        poses[0, 2, 3] = 1.3
        data = {'images': torch.rand(1, 3, size, size) * 2 - 1, 'poses': poses, 'focal': torch.tensor(size * 1.)}
        crit = torch.nn.MSELoss()
        per_ray = pixelnerf_train.bytes_per_ray(net, renderer, crit, data, 0.8, 1.8, 'cpu', probe_rays)
        # The release's defaults: -B 4 objects x -R 128 rays.
        rows.append((f'pixelNeRF {conf_name}.conf', '-B 4 x -R 128', 4 * 128,
                     [p for p in net.parameters()], per_ray))
    lines = ['| config | batch (rays) | KiB saved per ray | peak, grad_accum_steps 1 | grad_accum_steps for 24 GiB |',
             '|---|---|---|---|---|']
    for name, setting, batch, params, per_ray in rows:
        peak = memory.predicted_peak_bytes(params, per_ray, batch) / memory.GIB
        lines.append(f'| {name} | {setting} = {batch} | {per_ray / 1024:.1f} | {peak:.2f} GiB | '
                     f'{smallest_fitting_accum(params, per_ray, batch)} |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gin', action='append', help='config file (repeatable; default: paper and demo)')
    parser.add_argument('--size', type=int, default=None, help='image side in pixels')
    parser.add_argument('--steps', type=int, default=3, help='timed steps')
    parser.add_argument('--bind', action='append', default=[], help='extra gin binding (repeatable)')
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    parser.add_argument('--memory', action='store_true',
                        help='print the predicted peak memory of the paper configs (README table) and exit')
    parser.add_argument('--pixelnerf', action='store_true',
                        help="time the released (pixelNeRF) pose estimation loop instead of the paper's")
    parser.add_argument('--n_steps', type=int, default=300, help='--pixelnerf: steps of one estimate')
    parser.add_argument('--rays', type=int, default=1024, help='--pixelnerf: rays per step (released: 1024)')
    parser.add_argument('--json', action='store_true', help='--pixelnerf: last line as JSON')
    args = parser.parse_args()
    if args.memory:
        print(memory_table())
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pixelnerf:
        result = bench_pixelnerf(args)
        if args.json:
            print(json.dumps(result))
        return
    device = device_utils.pick_device()
    configs = [(g, args.size or 400) for g in args.gin] if args.gin else PAPER_AND_DEMO
    for gin_file, size in configs:
        bench(gin_file, args.size or size, args, device)


if __name__ == '__main__':
    main()
