"""Reproduces a table of the iNeRF paper (or of pixelNeRF, whose release iNeRF-public is):

    make reproduce-inerf [TABLE=pose|pixelnerf] [DATA_DIR=...] [SCENES=lego,chair] [DRY_RUN=1] [JOBS=k] [ARGS=...]
    python -m inerf.scripts.reproduce --runs_dir runs/inerf/reproduce [--table pose|pixelnerf] ...

pose (default): per Blender scene, train the NeRF (`inerf.train_nerf`, configs/nerf_blender.gin, resumes
from its last checkpoint) and run the paper's protocol on it (`inerf.run`, configs/blender.gin: 5 test
images x 5 perturbed starts); the row is the share of rotation errors < 5 degrees and of translation
errors < 5 cm at the last step, both at once, and the median errors. --bind 'Config.x = y' goes to both
commands (gin bindings). Data: data/nerf_synthetic/<scene>/transforms_{train,val,test}.json + images.
NPROC must be 1 (the trainer is single-device); JOBS=k runs k scenes side by side, one device each.

pixelnerf: pixelNeRF's SRN evaluation of the released checkpoints (no training): `inerf.eval.eval` then
`inerf.eval.calc_metrics` per category (cars, chairs) and source views (1: view 64; 2: views 64 and 104).
--checkpoints_path holds <name>/pixel_nerf_latest (srn_car, srn_chair); a missing one is named and
nothing runs. --bind '<flags>' adds eval.py flags, --metrics_bind '<flags>' calc_metrics flags.
Data: data/srn/<category>_test/<object>/{rgb, pose, intrinsics.txt}.
"""

import json
import os
import shlex
import sys

from data_tools import reproduce

TABLES = ('pose', 'pixelnerf')
BLENDER_SCENES = ['chair', 'drums', 'ficus', 'hotdog', 'lego', 'materials', 'mic', 'ship']
BLENDER_LAYOUT = ('transforms_train.json, transforms_val.json, transforms_test.json and their images '
                  '(NeRF\'s nerf_synthetic.zip: data/nerf_synthetic/<scene>/)')
SRN = {'cars': 'srn_car', 'chairs': 'srn_chair'}  # category -> pixelNeRF expname (checkpoints/<expname>/)
SRN_LAYOUT = ('<object>/{rgb/*.png, pose/*.txt, intrinsics.txt} (pixelNeRF\'s srn_cars.zip / srn_chairs.zip '
              'extracted: data/srn/<category>_test/)')
POSE_METRICS = ['rotation_success', 'translation_success', 'success', 'median_rotation_deg', 'median_translation']
PIXELNERF_METRICS = ['psnr', 'ssim', 'lpips']
TRAIN_GIN = 'inerf/configs/nerf_blender.gin'
EVAL_GIN = 'inerf/configs/blender.gin'
EVAL_CHAIN = ('import sys; from inerf.scripts.reproduce import evaluate_pixelnerf; '
              'evaluate_pixelnerf(sys.argv[1:])')


def parser():
    p = reproduce.make_parser(__doc__.split('\n\n')[0], None, None)
    p.add_argument('--table', default='pose', choices=TABLES, help='pose (the paper) or pixelnerf (the release)')
    p.add_argument('--dataset', default='', help='nerf_synthetic (pose) or srn (pixelnerf): the table\'s only one')
    p.add_argument('--checkpoints_path', default='checkpoints',
                   help='pixelnerf: the folder of the released checkpoints (<expname>/pixel_nerf_latest)')
    p.add_argument('--source_views', default='64,104', help='pixelnerf: SRN view ids of the 2-view source '
                   '(the 1-view cells use the first)')
    p.add_argument('--metrics_bind', action='append', default=[], help='pixelnerf: extra calc_metrics flags')
    return p


def parse_args(argv=None):
    args = parser().parse_args(argv)
    wanted = {'pose': 'nerf_synthetic', 'pixelnerf': 'srn'}[args.table]
    if args.dataset and args.dataset != wanted:
        raise SystemExit(f'--dataset / DATASET: the {args.table} table has only {wanted!r}, got {args.dataset!r}')
    if args.nproc != 1:
        raise SystemExit(f'--nproc / NPROC={args.nproc}: inerf.train_nerf and the evaluations run on one device '
                         '(no torchrun); use JOBS=k to run k cells side by side on k devices')
    args.data_dir = args.data_dir or {'pose': 'data/nerf_synthetic', 'pixelnerf': 'data/srn'}[args.table]
    args.out = args.out or f'results/inerf_{args.table}'
    return args


# ---------------------------------------------------------------- pose: the paper on NeRF

def gin_config(args, gin_file, scene_dir=None):
    """utils.Config of gin_file with the --bind settings (and the scene's data_dir)."""
    import gin

    from inerf import utils
    gin.clear_config()
    try:
        bindings = ([f"Config.data_dir = '{scene_dir}'"] if scene_dir else []) + list(args.bind)
        return utils.parse_config([gin_file], bindings)
    finally:
        gin.clear_config()


def pose_cells(args):
    scenes = reproduce.selected(BLENDER_SCENES, args.scenes)
    train_cfg, eval_cfg = gin_config(args, TRAIN_GIN), gin_config(args, EVAL_GIN)
    cells = []
    for scene in scenes:
        data_dir = os.path.abspath(os.path.join(args.data_dir, scene))
        run_dir = os.path.abspath(os.path.join(args.runs_dir, scene))
        bindings = [f"--gin_bindings=Config.data_dir = '{data_dir}'", f"--gin_bindings=Config.model_name = '{scene}'",
                    f"--gin_bindings=Config.ckpt_dir = '{os.path.join(run_dir, 'ckpts')}'",
                    f"--gin_bindings=Config.output_dir = '{run_dir}'"] + [f'--gin_bindings={b}' for b in args.bind]
        n_test = _test_views(data_dir, eval_cfg.testskip)
        cells.append(reproduce.Cell(
            key=scene, labels={'scene': scene}, data_dir=data_dir, run_dir=run_dir,
            train=['-m', 'inerf.train_nerf', f'--gin_configs={TRAIN_GIN}'] + bindings,
            eval=['-m', 'inerf.run', f'--gin_configs={EVAL_GIN}'] + bindings,
            metrics_file=os.path.join(run_dir, 'results', f'inerf_{scene}.json'),
            train_rays=float(train_cfg.N_iters) * train_cfg.N_rand,
            # the pose loop (forward and backward through the frozen NeRF), plus train_nerf's test-PSNR renders
            eval_rays=float(eval_cfg.n_test_images) * eval_cfg.n_trials * eval_cfg.n_steps * eval_cfg.batch_size
            + n_test * _pixels(data_dir, train_cfg.half_res)))
    return cells


def _test_views(data_dir, testskip):
    """Test images train_nerf renders for its held-out PSNR (every testskip-th of transforms_test.json)."""
    try:
        with open(os.path.join(data_dir, 'transforms_test.json')) as f:
            n = len(json.load(f)['frames'])
    except (OSError, ValueError, KeyError):
        n = 200  # the Blender scenes' test split
    return len(range(0, n, max(1, testskip)))


def _pixels(data_dir, half_res):
    """Pixels of one image of the scene (800x800 Blender images when it cannot be read)."""
    try:
        import imageio.v2 as imageio
        with open(os.path.join(data_dir, 'transforms_test.json')) as f:
            frame = json.load(f)['frames'][0]['file_path']
        h, w = imageio.imread(os.path.join(data_dir, frame + '.png')).shape[:2]
    except (OSError, ValueError, KeyError, IndexError):
        h = w = 800
    return h * w // (4 if half_res else 1)


def pose_metrics(cell):
    with open(cell.metrics_file) as f:
        result = json.load(f)
    last = str(max(int(s) for s in result['success_rate']))
    metrics = {'rotation_success': result['rotation_success_rate'][last],
               'translation_success': result['translation_success_rate'][last],
               'success': result['success_rate'][last],
               'median_rotation_deg': result['median_rotation_deg'][last],
               'median_translation': result['median_translation'][last]}
    return metrics, dict(result['protocol'], final_step=int(last), n_trials=result['n_trials'])


def pose_rates(args, cells, probe_rays=None, steps=2):
    """Train and pose-loop rays/s of the cells' configs, measured here: a few steps of train_nerf's step and
    of inerf.run's estimate_pose on random rays / a random image (random weights), after a warm-up step.
    On the CPU the batches shrink to 128 rays (rays/s barely depends on the batch there)."""
    import dataclasses

    import numpy as np
    import torch

    from common import device as device_utils
    from inerf import nerf_helpers, run, train_nerf

    device = device_utils.pick_device()
    probe_rays = probe_rays or (None if device.type == 'cuda' else 128)
    cfg = gin_config(args, TRAIN_GIN)
    n = min(cfg.N_rand, probe_rays or cfg.N_rand)
    cfg = dataclasses.replace(cfg, N_rand=n, grad_accum_steps=1)
    torch.manual_seed(0)
    render_kwargs, models = nerf_helpers.create_nerf(cfg, device)
    params = [p for m in models.values() if m is not None for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lrate_train)
    origins = torch.tensor([0., 0., 4.]).expand(n, 3)
    batch = (origins.to(device), (torch.rand(n, 3) * 2 - 1 - origins).to(device), torch.rand(n, 3).to(device))
    kwargs = train_nerf.train_kwargs_of(render_kwargs, cfg, cfg.near, cfg.far)
    hwf = (64, 64, 80.)
    train_s = device_utils.timed(lambda: [train_nerf.train_step(optimizer, batch, hwf, kwargs, cfg, k + 1)
                                          for k in range(steps)], 1, device) / steps

    ecfg = gin_config(args, EVAL_GIN)
    b = min(ecfg.batch_size, probe_rays or ecfg.batch_size)
    ecfg = dataclasses.replace(ecfg, batch_size=b, sampling_strategy='random', n_steps=steps, eval_steps=())
    render_kwargs, models = nerf_helpers.create_nerf(ecfg, device)
    for m in models.values():
        if m is not None:
            m.requires_grad_(False)
    size = 64
    rng = np.random.default_rng(0)
    obs = rng.random((size, size, 3)).astype(np.float32)
    pose = np.eye(4)
    pose[:3, 3] = [0., 0., 4.]
    pose_s = device_utils.timed(lambda: run.estimate_pose(render_kwargs, obs, pose, [size, size, 0.9 * size],
                                                          ecfg, rng, ecfg.near, ecfg.far), 1, device) / steps
    return {'train_rays_per_s': n / train_s, 'render_rays_per_s': b / pose_s}


# ---------------------------------------------------------------- pixelnerf: the release's evaluation

def pixelnerf_cells(args):
    categories = reproduce.selected(list(SRN), args.scenes)
    views = [v for v in args.source_views.split(',') if v]
    if len(views) < 2:
        raise SystemExit(f'--source_views needs two SRN view ids (1-view: the first), got {args.source_views!r}')
    extra = [a for b in args.bind for a in shlex.split(b)]
    extra_metrics = [a for b in args.metrics_bind for a in shlex.split(b)]
    cells = []
    for category in categories:
        name = SRN[category]
        data_dir = os.path.abspath(os.path.join(args.data_dir, f'{category}_test'))
        prefix = os.path.abspath(os.path.join(args.data_dir, category))
        for n_views in (1, 2):
            run_dir = os.path.abspath(os.path.join(args.runs_dir, f'{category}_{n_views}v'))
            out = os.path.join(run_dir, 'eval')
            primary = ' '.join(views[:n_views])
            evaluate = ['-m', 'inerf.eval.eval', '-n', name, '-D', prefix, '-F', 'srn', '-P', primary, '-O', out,
                        '--checkpoints_path', os.path.abspath(args.checkpoints_path)] + extra
            metrics = ['-m', 'inerf.eval.calc_metrics', '-D', data_dir, '-O', out, '-F', 'srn', '-P', primary,
                       '--fix_reduce_accumulation'] + extra_metrics
            n_objects, n_all_views, pixels = _srn_size(data_dir)
            cells.append(reproduce.Cell(
                key=f'{category}/{n_views}v', labels={'category': category, 'views': n_views},
                data_dir=data_dir, run_dir=run_dir, train=None,
                eval=['-c', EVAL_CHAIN] + evaluate[2:] + ['--then'] + metrics[2:],
                metrics_file=os.path.join(out, 'all_metrics.json'),
                eval_rays=float(n_objects) * (n_all_views - n_views) * pixels))
    return cells


def _srn_size(data_dir):
    """(objects, views of the first object, pixels of a 128x128 render): the real test sets have
    704 cars / 1317 chairs with 251 views when the folder cannot be read."""
    try:
        objects = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
        views = len(os.listdir(os.path.join(data_dir, objects[0], 'rgb')))
    except (OSError, IndexError):
        objects, views = [None] * (1317 if 'chair' in data_dir else 704), 251
    return len(objects), views, 128 * 128


def evaluate_pixelnerf(argv):
    """eval.py's argv, '--then', calc_metrics' argv: both in this process (the cell's evaluation command)."""
    from inerf.eval import calc_metrics
    from inerf.eval import eval as pn_eval
    split = argv.index('--then')
    pn_eval.main(argv[:split])
    calc_metrics.main(argv[split + 1:])


def checkpoint_of(args, cell):
    name = cell.eval[cell.eval.index('-n') + 1]
    return os.path.join(os.path.abspath(args.checkpoints_path), name, 'pixel_nerf_latest')


def missing_checkpoints(args, cells):
    """Raises FileNotFoundError naming every missing released checkpoint of an unfinished cell."""
    missing = sorted({checkpoint_of(args, c) for c in cells if reproduce.status(c) != 'done'
                      and not os.path.isfile(checkpoint_of(args, c))})
    if missing:
        raise FileNotFoundError('missing pixelNeRF checkpoints (nothing was run):\n' + '\n'.join(
            f'  {m}' for m in missing) + '\nget pixelNeRF\'s released weights (pixel_nerf_weights.zip, see its '
            'README) and extract them so that <checkpoints_path>/srn_car/pixel_nerf_latest exists, or pass '
            '--checkpoints_path (ARGS="--checkpoints_path DIR")')


def pixelnerf_metrics(args):
    def read(cell):
        with open(cell.metrics_file) as f:
            result = json.load(f)
        ours = {m: result['metrics'].get(m) for m in PIXELNERF_METRICS}
        # the command that ran (reproduce.json), else the one this invocation would run
        eval_argv = cell.eval[2:cell.eval.index('--then')]
        record = os.path.join(cell.run_dir, reproduce.RECORD)
        if os.path.isfile(record):
            with open(record) as f:
                command = json.load(f).get('eval_command', '')
            if ' --then ' in command:
                eval_argv = shlex.split(command.split(' --then ')[0].split(' evaluate_pixelnerf(sys.argv[1:]) ')[-1])
        checkpoint = os.path.join(eval_argv[eval_argv.index('--checkpoints_path') + 1], eval_argv[
            eval_argv.index('-n') + 1], 'pixel_nerf_latest')
        protocol = dict(result['protocol'], objects=result['objects'], source_views=cell.labels['views'],
                        resolution='128x128 (SRNDataset resizes every image to 128x128; --scale in eval_flags)',
                        background='white', checkpoint=checkpoint, eval_flags=' '.join(eval_argv))
        return ours, protocol
    return read


def pixelnerf_rates(args, cells, steps=2):
    """Render rays/s of the category's model (srn.conf, or -c of --bind), measured here on random inputs;
    there is no training."""
    import torch
    from pyhocon import ConfigFactory

    from common import device as device_utils
    from inerf.src.model import make_model
    from inerf.src.render import NeRFRenderer

    extra = [a for b in args.bind for a in shlex.split(b)]
    conf_path = extra[extra.index('-c') + 1] if '-c' in extra else os.path.join(reproduce.ROOT, 'inerf', 'conf',
                                                                                 'exp', 'srn.conf')
    conf = ConfigFactory.parse_file(conf_path)
    conf.put('model.encoder.pretrained', False)
    device = device_utils.pick_device()
    net = make_model(conf['model']).to(device).eval()
    renderer = NeRFRenderer.from_conf(conf['renderer']).to(device).eval()
    render_par = renderer.bind_parallel(net, [0] if device.type == 'cuda' else None, simple_output=True).eval()
    n = 4096 if device.type == 'cuda' else 512
    images = torch.rand(1, 3, 128, 128, device=device) * 2 - 1
    poses = torch.eye(4, device=device)[None]
    poses[:, 2, 3] = 1.3
    rays = torch.cat([torch.tensor([0., 0., 1.3]).expand(n, 3), torch.nn.functional.normalize(
        torch.randn(n, 3), dim=-1), torch.full((n, 1), 0.8), torch.full((n, 1), 1.8)], -1).to(device)[None]

    def render():
        with torch.no_grad():
            for _ in range(steps):
                net.encode(images, poses, torch.tensor([131.25], device=device))
                render_par(rays, want_weights=True)
    seconds = device_utils.timed(render, 1, device) / steps
    return {'train_rays_per_s': float('inf'), 'render_rays_per_s': n / seconds}


# ---------------------------------------------------------------- both

def table(args):
    """(cells, layout, reference, read_metrics, measure_rates) of the table args.table."""
    if args.table == 'pose':
        return (pose_cells(args), BLENDER_LAYOUT, reproduce.published('inerf_pose'), pose_metrics,
                lambda cells: pose_rates(args, cells))
    cells = pixelnerf_cells(args)
    return (cells, SRN_LAYOUT, reproduce.published('inerf_pixelnerf'), pixelnerf_metrics(args),
            lambda cells: pixelnerf_rates(args, cells))


def main(argv=None):
    args = parse_args(argv)
    cells, layout, reference, read_metrics, measure = table(args)
    reproduce.missing_scenes(cells, layout)
    if args.table == 'pixelnerf':
        try:
            missing_checkpoints(args, cells)
        except FileNotFoundError as e:
            if not args.dry_run:
                raise
            print(f'note: {e}')
    header = lambda rates: 'rays/s measured here (random weights, the cells\' configs):'
    write = lambda: reproduce.write_summary(reference, cells, read_metrics, args.out)
    return reproduce.reproduce(args, cells, lambda: measure(cells), header, write)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
