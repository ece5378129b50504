# Derived from salykovaa/inerf (no licence file in that repository: all rights reserved by default; see THIRD_PARTY_NOTICES.md).
"""iNeRF pose estimation and the paper's protocol (salykovaa/inerf's run.py, extended).

    python -m inerf.run --gin_configs=inerf/configs/blender.gin \
        --gin_bindings="Config.data_dir='data/nerf_synthetic/lego'" --gin_bindings="Config.model_name='lego'"

For each of the first n_test_images test views and each of n_trials start poses (the paper's
perturbation: a random axis, an angle uniform in +-max_rotation_deg, a translation uniform in
+-max_translation per axis), Adam (lr 0.01, x0.8 every 100 steps) fits the screw (w, v, theta) of
camera_transf for n_steps steps on batch_size pixels drawn by the sampling strategy, with the MSE
between the frozen NeRF's colours and the observed ones. Rotation (geodesic, degrees) and translation
(Euclidean) errors are recorded at eval_steps; results/inerf_<model_name>.json and .md list every
trial, the shares under rotation_threshold_deg and under translation_threshold (each on its own, as
the paper reports them) and under both, and the protocol block; results/inerf_<model_name>/sheets
holds one contact sheet per trial (observed image | render at the final pose | disparity | error,
with its PSNR) and their summary, also logged to TensorBoard there.
`--obs_img_num N` runs a single estimate as salykovaa's run.py does; `--self_supervision` runs the
LLFF experiment (train NeRF on a subset, pose the other images with iNeRF, retrain with them).
"""

import argparse
import dataclasses
import json
import os

import cv2
import imageio.v2 as imageio
import numpy as np
import torch
import tqdm

from common import device as device_utils
from common import sheets
from common.logger import Logger
from inerf import inerf_helpers, nerf_helpers, render_helpers, train_nerf, utils

SAMPLERS = utils.CHOICES['sampling_strategy']


class PixelSampler:
    """Draws pixel batches (x, y) [B, 2] of an H x W image for one sampling strategy (paper IV-C).

    'random': uniform without replacement; 'interest_points': the interest points, topped up with
    random other pixels; 'interest_regions': uniform over the dilated interest points. A batch
    larger than the pool takes the whole pool (the original fails there).
    """

    def __init__(self, strategy, obs_img_uint8, kernel_size=5, dil_iter=3, detector='sift'):
        if strategy not in SAMPLERS:
            raise ValueError(f'sampling_strategy must be one of {SAMPLERS}, got {strategy!r}')
        self.strategy = strategy
        H, W = obs_img_uint8.shape[:2]
        xs, ys = np.meshgrid(np.arange(W), np.arange(H))
        self.coords = np.stack([xs, ys], -1).reshape(-1, 2)
        self.poi = np.zeros((0, 2), int)
        self.regions = self.coords
        if strategy != 'random':
            self.poi = utils.find_POI(obs_img_uint8, detector=detector)
            if len(self.poi) == 0:
                raise ValueError(f'no {detector} interest points in the observed image: use '
                                 "sampling_strategy='random'")
            self.regions = utils.interest_regions(self.poi, H, W, kernel_size, dil_iter)
        is_poi = np.zeros((H, W), bool)
        is_poi[self.poi[:, 1], self.poi[:, 0]] = True
        self.not_poi = self.coords[~is_poi.reshape(-1)]

    def sample(self, rng, batch_size):
        """A batch [B, 2] of integer (x, y) pixels."""
        def draw(pool, n):
            return pool[rng.choice(pool.shape[0], size=min(n, pool.shape[0]), replace=False)]

        if self.strategy == 'random':
            return draw(self.coords, batch_size)
        if self.strategy == 'interest_regions':
            return draw(self.regions, batch_size)
        if len(self.poi) >= batch_size:
            return draw(self.poi, batch_size)
        return np.concatenate([self.poi, draw(self.not_poi, batch_size - len(self.poi))], 0)


def pose_errors(pose, gt_pose):
    """(rotation error in degrees, translation error, orthonormality error) of pose vs gt [4, 4]."""
    return (utils.rotation_error_deg(pose[:3, :3], gt_pose[:3, :3]),
            utils.translation_error(pose[:3, 3], gt_pose[:3, 3]),
            utils.orthonormality_error(pose[:3, :3]))


def overlay(render_kwargs, pose, obs_img, hwf, chunk, near, far):
    """uint8 [H, W, 3]: 0.7 x render at pose + 0.3 x observed image (salykovaa's overlay)."""
    H, W, focal = hwf
    with torch.no_grad():
        rgb, _, _, _ = render_helpers.render(H, W, focal, chunk=chunk, c2w=pose[:3, :4], near=near,
                                             far=far, **render_kwargs)
    return cv2.addWeighted(render_helpers.to8b(rgb.cpu().numpy()), 0.7,
                           render_helpers.to8b(obs_img), 0.3, 0)


def final_view(render_kwargs, pose, obs_img, hwf, chunk, near, far, label):
    """A trial's contact-sheet view (view_sheet's arguments): the whole image rendered at its final pose
    [4, 4] (numpy) against the observed image [H, W, 3], with the render's disparity and PSNR."""
    H, W, focal = hwf
    device = render_kwargs['network_fn'].pts_linears[0].weight.device
    with torch.no_grad():
        rgb, disp, _, _ = render_helpers.render(H, W, focal, chunk=chunk, near=near, far=far,
                                                c2w=torch.as_tensor(pose[:3, :4], device=device), **render_kwargs)
    rgb = rgb.clamp(0, 1).cpu()
    psnr = float(utils.mse2psnr(utils.img2mse(rgb, torch.as_tensor(obs_img, dtype=torch.float32))))
    return {'gt': obs_img, 'pred': rgb, 'depth': disp, 'psnr': psnr, 'label': label}


def draw_pixels(sampler, rng, batch_size, device):
    """A pixel batch (x, y) [B, 2] of sampler, drawn on the host by the numpy generator rng
    (the protocol's seeded stream), on device (a copy of B x 2 integers, no synchronisation)."""
    return torch.as_tensor(sampler.sample(rng, batch_size), device=device)


def pose_optimizer(config, device):
    """(camera_transf on device, its Adam): the screw is drawn on the host (same start on any device)."""
    cam_transf = inerf_helpers.camera_transf(unit_axis=config.unit_axis).to(device)
    return cam_transf, torch.optim.Adam(cam_transf.parameters(), lr=config.lrate, betas=(0.9, 0.999))


def pose_step(cam_transf, optimizer, start, coords, target, hwf, render_kwargs, config, near, far, step):
    """One iNeRF step at pose exp(xi) @ start [4, 4]: render the pixels coords [B, 2], MSE against
    target [H, W, 3], Adam, lr decay.

    Returns (loss [], pose [4, 4] before the update), detached device tensors.
    """
    H, W, focal = hwf
    pose = cam_transf(start)
    rays_o, rays_d = render_helpers.get_rays_at(H, W, focal, pose, coords, config.pixel_center)
    rgb, _, _, _ = render_helpers.render(H, W, focal, chunk=config.chunk, rays=(rays_o, rays_d),
                                         near=near, far=far, **render_kwargs)
    loss = utils.img2mse(rgb, target[coords[:, 1], coords[:, 0]])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    new_lrate = config.lrate * config.lrate_decay_rate ** ((step + 1) / config.lrate_decay_steps)
    for group in optimizer.param_groups:
        group['lr'] = new_lrate
    return loss.detach(), pose.detach()


def estimate_pose(render_kwargs, obs_img, start_pose, hwf, config, rng, near, far, gt_pose=None,
                  sampler=None, frames=None):
    """Fits exp(xi) @ start_pose to the observed image [H, W, 3] float in [0, 1].

    Returns {'pose': [4, 4] numpy, 'losses': [n_steps], 'errors': {step: (rot_deg, trans, ortho)}}
    (errors only when gt_pose is given, at config.eval_steps). frames: a list that receives an
    overlay every config.overlay_every steps.
    """
    device = render_kwargs['network_fn'].pts_linears[0].weight.device
    if sampler is None:
        sampler = PixelSampler(config.sampling_strategy, render_helpers.to8b(obs_img),
                               config.kernel_size, config.dil_iter, config.detector)
    target = torch.as_tensor(obs_img, dtype=torch.float32, device=device)
    start = torch.as_tensor(start_pose, dtype=torch.float32, device=device)
    cam_transf, optimizer = pose_optimizer(config, device)
    eval_steps = set(config.eval_steps)
    losses, errors = [], {}

    def record(step, pose):
        """Errors and overlay of pose [4, 4] (a device tensor, copied to the host only when used)."""
        if gt_pose is not None and step in eval_steps:
            errors[step] = pose_errors(pose.detach().cpu().numpy(), gt_pose)
        if frames is not None and step % config.overlay_every == 0:
            frames.append(overlay(render_kwargs, pose.detach(), obs_img, hwf, config.chunk, near, far))

    for k in range(config.n_steps):
        coords = draw_pixels(sampler, rng, config.batch_size, device)
        loss, pose = pose_step(cam_transf, optimizer, start, coords, target, hwf, render_kwargs,
                               config, near, far, k)
        record(k, pose)
        losses.append(loss)
    with torch.no_grad():
        final = cam_transf(start)
    record(config.n_steps, final)
    losses = torch.stack(losses).tolist() if losses else []
    return {'pose': final.cpu().numpy(), 'losses': losses, 'errors': errors}


def load_observations(config):
    """(images, poses, hwf, i_test, near, far) of config's scene: the held-out views to pose."""
    images, poses, hwf, _, i_test, near, far = train_nerf.load_scene(config)
    return images, poses, hwf, i_test, near, far


def single_observation(config, obs_img_num):
    """(images, poses, hwf, views, near, far) of salykovaa's single estimate: Blender frame obs_img_num
    of obs_imgs/transforms.json (or of the test split with obs_from_test_split); LLFF image obs_img_num."""
    if config.dataset_type == 'blender' and not config.obs_from_test_split:
        obs_dir = config.obs_imgs_dir or os.path.join(config.data_dir, 'obs_imgs')
        if not os.path.isfile(os.path.join(obs_dir, 'transforms.json')):
            raise FileNotFoundError(
                f'{obs_dir}/transforms.json not found: salykovaa\'s single estimate reads its observed images '
                f'from obs_imgs/ (transforms.json and <file_path>.png, as its data/nerf_synthetic/<scene>/obs_imgs); '
                f'set Config.obs_imgs_dir, or Config.obs_from_test_split = True to pose test image {obs_img_num}')
        img, pose, hwf = utils.load_obs_img(obs_dir, obs_img_num, config.half_res, config.white_bkgd)
        return img[None], pose[None], hwf, [0], config.near, config.far
    images, poses, hwf, i_test, near, far = load_observations(config)
    candidates = list(i_test) if config.dataset_type == 'blender' else list(range(len(images)))
    if not 0 <= obs_img_num < len(candidates):
        where = 'the test split has' if config.dataset_type == 'blender' else 'the scene has'
        raise ValueError(f'--obs_img_num / Config.obs_img_num must be in [0, {len(candidates)}): '
                         f'{where} {len(candidates)} images')
    return images, poses, hwf, candidates[obs_img_num:obs_img_num + 1], near, far


def start_pose_for(gt_pose, config, rng):
    """The perturbed start pose [4, 4] float64 of one trial."""
    if config.perturbation == 'random_axis':
        return utils.random_perturbation(gt_pose.astype(np.float64), rng, config.max_rotation_deg,
                                         config.max_translation, config.perturbation_pivot)[0]
    if config.perturbation == 'euler':
        return utils.euler_perturbation(gt_pose.astype(np.float64), config.delta_phi, config.delta_theta,
                                        config.delta_psi, config.delta_t, config.dataset_type)
    raise ValueError(f"Config.perturbation must be 'random_axis' or 'euler', got {config.perturbation!r}")


def success_rates(trials, config, which='both'):
    """{step: share of trials under the thresholds}: which = 'rotation' or 'translation' (the paper
    reports each on its own) or 'both' (ours: rotation and translation under their thresholds)."""
    def ok(rotation, translation):
        rot_ok, trans_ok = rotation < config.rotation_threshold_deg, translation < config.translation_threshold
        return {'rotation': rot_ok, 'translation': trans_ok, 'both': rot_ok and trans_ok}[which]
    rates = {}
    for step in config.eval_steps:
        hits = [ok(*t['errors'][step][:2]) for t in trials]
        rates[step] = float(np.mean(hits)) if hits else float('nan')
    return rates


def protocol(config):
    """How run_protocol measures, for the results JSON: views, start poses, optimiser, metrics."""
    blender = config.dataset_type == 'blender'
    return {
        'dataset': config.dataset_type,
        'views': f'the first {config.n_test_images} test images' + (
            f' (every {config.testskip}th of transforms_test.json)' if blender else
            f' (every {config.llffhold}th image is held out)'),
        'resolution': ('400x400 (half_res)' if config.half_res else '800x800') if blender else f'images_{config.factor}',
        'background': 'white' if config.white_bkgd else 'none',
        'trials_per_view': config.n_trials,
        'perturbation': config.perturbation,
        'max_rotation_deg': config.max_rotation_deg,
        'max_translation': config.max_translation,
        'perturbation_pivot': config.perturbation_pivot,
        'batch_size': config.batch_size,
        'sampling_strategy': config.sampling_strategy,
        'n_steps': config.n_steps,
        'rotation_error': 'geodesic angle (degrees) to the nearest rotation of the estimate',
        'translation_error': 'Euclidean distance of the camera centres (scene units)',
        'rotation_threshold_deg': config.rotation_threshold_deg,
        'translation_threshold': config.translation_threshold,
        'success': 'rotation and translation shares reported separately (paper); success_rate: both (ours)',
    }


def run_trials(config, render_kwargs, images, poses, hwf, views, near, far, rng, frames_dir=None,
               sheet_writer=None):
    """Every (view, trial) of the protocol: a list of per-trial dicts (errors at eval_steps).
    sheet_writer (a common.sheets.SheetWriter) receives each trial's final render (final_view).

    Start poses and observation corruptions come from a generator seeded by config.seed alone, so
    every sampling strategy sees the same trials; rng draws the pixel batches.
    """
    trial_rng = np.random.default_rng(config.seed)
    trials = []
    total = len(views) * config.n_trials
    bar = tqdm.tqdm(total=total, desc=f'iNeRF {config.sampling_strategy}', unit='trial')
    for view in views:
        obs_img = utils.corrupt_observation(images[view], config, trial_rng)
        sampler = PixelSampler(config.sampling_strategy, render_helpers.to8b(obs_img),
                               config.kernel_size, config.dil_iter, config.detector)
        for trial in range(config.n_trials):
            start = start_pose_for(poses[view], config, trial_rng)
            frames = [] if (frames_dir and config.overlay and not trials) else None
            out = estimate_pose(render_kwargs, obs_img, start, hwf, config, rng, near, far,
                                gt_pose=poses[view].astype(np.float64), sampler=sampler, frames=frames)
            if frames:
                write_frames(frames, frames_dir, f'view{view:03d}_trial{trial}', config.video)
            if sheet_writer is not None:
                sheet_writer.add(**final_view(render_kwargs, out['pose'], obs_img, hwf, config.chunk, near, far,
                                              f'view {view} trial {trial}'))
            trials.append({'view': int(view), 'trial': trial,
                           'start_error': pose_errors(start, poses[view])[:2],
                           'errors': out['errors'], 'final_loss': out['losses'][-1]})
            bar.update(1)
            bar.set_postfix(rot=f"{out['errors'][config.n_steps][0]:.2f}",
                            trans=f"{out['errors'][config.n_steps][1]:.3f}")
    bar.close()
    return trials


def write_frames(frames, out_dir, name, video):
    """Overlays as PNGs (and an mp4 when video) in out_dir/name/."""
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        imageio.imwrite(os.path.join(folder, f'{i:04d}.png'), frame)
    if video:
        imageio.mimwrite(os.path.join(folder, 'video.mp4'), frames, fps=8)


def markdown_table(summary):
    """The success rates and median errors of a summary as a markdown table."""
    cfg = summary['config']
    lines = [f"# iNeRF on {cfg['model_name']} ({summary['n_trials']} trials, "
             f"{cfg['sampling_strategy']} sampling, batch {cfg['batch_size']})", '',
             f"| step | rot < {cfg['rotation_threshold_deg']} deg | trans < {cfg['translation_threshold']} | "
             f"both | median rot (deg) | median trans |",
             '|---|---|---|---|---|---|']
    for step, rate in summary['success_rate'].items():
        lines.append(f"| {step} | {100 * summary['rotation_success_rate'][step]:.1f}% | "
                     f"{100 * summary['translation_success_rate'][step]:.1f}% | {100 * rate:.1f}% | "
                     f"{summary['median_rotation_deg'][step]:.3f} | {summary['median_translation'][step]:.4f} |")
    return '\n'.join(lines) + '\n'


def summarize(trials, config):
    """The results JSON: config, per-trial errors, success rates and medians per eval step."""
    steps = list(config.eval_steps)
    return {
        'config': {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()},
        'protocol': protocol(config),
        'n_trials': len(trials),
        'rotation_success_rate': {str(s): r for s, r in success_rates(trials, config, 'rotation').items()},
        'translation_success_rate': {str(s): r for s, r in success_rates(trials, config, 'translation').items()},
        'success_rate': {str(s): r for s, r in success_rates(trials, config).items()},
        'median_rotation_deg': {str(s): float(np.median([t['errors'][s][0] for t in trials])) for s in steps},
        'median_translation': {str(s): float(np.median([t['errors'][s][1] for t in trials])) for s in steps},
        'trials': [dict(t, errors={str(s): {'rotation_deg': e[0], 'translation': e[1], 'orthonormality': e[2]}
                                   for s, e in t['errors'].items()}) for t in trials],
    }


def run_protocol(config, device='cpu'):
    """The paper's protocol on config's scene; writes results/inerf_<model_name>.{json,md} and the
    trials' contact sheets in results/inerf_<model_name>/sheets (and its TensorBoard events)."""
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    render_kwargs = nerf_helpers.load_nerf(config, device)
    images, poses, hwf, i_test, near, far = load_observations(config)
    views = i_test[:config.n_test_images]
    out_dir = os.path.join(config.output_dir, 'results')
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f'inerf_{config.model_name}')
    with Logger(stem) as log:
        sheet_writer = sheets.SheetWriter(stem, log)
        trials = run_trials(config, render_kwargs, images, poses, hwf, views, near, far, rng,
                            frames_dir=os.path.join(config.output_dir, config.model_name), sheet_writer=sheet_writer)
        sheet_writer.finish()
    summary = summarize(trials, config)
    with open(stem + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
    with open(stem + '.md', 'w') as f:
        f.write(markdown_table(summary))
    return summary


def self_supervision(config, device='cpu'):
    """LLFF self-supervision (paper V-D): NeRF on train_views only, iNeRF poses the other training
    images from perturbed starts, then NeRF on all of them with those poses; test PSNR of both.

    Writes results/inerf_selfsup_<model_name>.json.
    """
    rng = np.random.default_rng(config.seed)
    images, poses, hwf, i_train, i_test, near, far = train_nerf.load_scene(config)
    subset = list(config.train_views) or list(i_train[::2])
    others = [int(i) for i in i_train if i not in subset]
    base = dataclasses.replace(config, train_views=tuple(subset), model_name=f'{config.model_name}_subset')
    torch.manual_seed(config.seed)
    base_metrics = train_nerf.train(base, device=device)
    render_kwargs = nerf_helpers.load_nerf(base, device)
    estimated, errors = {}, []
    for view in tqdm.tqdm(others, desc='iNeRF poses'):
        start = start_pose_for(poses[view], config, rng)
        out = estimate_pose(render_kwargs, images[view], start, hwf, config, rng, near, far,
                            gt_pose=poses[view].astype(np.float64))
        estimated[view] = out['pose'].astype(np.float32)
        errors.append(out['errors'][config.n_steps][:2])
    full = dataclasses.replace(config, train_views=tuple(subset + others),
                               model_name=f'{config.model_name}_inerf_poses')
    torch.manual_seed(config.seed)
    full_metrics = train_nerf.train(full, pose_overrides=estimated, device=device)
    result = {'subset': [int(i) for i in subset], 'added': others,
              'pose_errors': [{'rotation_deg': r, 'translation': t} for r, t in errors],
              'test_psnr_subset': base_metrics['test_psnr'],
              'test_psnr_with_inerf_poses': full_metrics['test_psnr']}
    out_dir = os.path.join(config.output_dir, 'results')
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f'inerf_selfsup_{config.model_name}.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--gin_configs', action='append', default=[], help='gin config files')
    parser.add_argument('--gin_bindings', action='append', default=[], help='gin bindings')
    parser.add_argument('--obs_img_num', type=int, default=None,
                        help='pose only this test image once (salykovaa run.py), with overlays '
                             '(default: Config.obs_img_num; unset runs the protocol)')
    parser.add_argument('--self_supervision', action='store_true', help='the LLFF experiment')
    parser.add_argument('--device', default=None, help='cpu, cuda, ... (default: the best available)')
    args = parser.parse_args(argv)
    config = utils.parse_config(args.gin_configs, args.gin_bindings)
    device = (device_utils.resolve_device(args.device, setting='--device') if args.device
              else device_utils.pick_device())
    if args.self_supervision:
        print(json.dumps(self_supervision(config, device)))
        return
    obs_img_num = config.obs_img_num if args.obs_img_num is None else args.obs_img_num
    if obs_img_num is not None:
        config = dataclasses.replace(config, n_test_images=1, n_trials=1, overlay=True, seed=config.seed + obs_img_num)
        images, poses, hwf, views, near, far = single_observation(config, obs_img_num)
        rng = np.random.default_rng(config.seed)
        render_kwargs = nerf_helpers.load_nerf(config, device)
        trials = run_trials(config, render_kwargs, images, poses, hwf, views, near, far, rng,
                            frames_dir=os.path.join(config.output_dir, config.model_name))
        print(json.dumps(summarize(trials, config)['trials'][0]['errors']))
        return
    summary = run_protocol(config, device)
    print(markdown_table(summary))


if __name__ == '__main__':
    main()
