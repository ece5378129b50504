"""Reproduces the fork's sparse-view table: lego PSNR at 3 / 6 / 100 training views for each row,
beside the published numbers (results/published/depth_mipnerf.json, from the fork's README).

    make reproduce-depth_mipnerf DATA_DIR=data/lego_depth [SCENES=ours,no_depth] [DRY_RUN=1] [JOBS=k] [NPROC=n]
        [ARGS="--views 3 6 --rows ... --gin depth_mipnerf/configs/lego.gin --bind 'optimizer.max_steps = 5000'
               --device cuda --out results/depth_mipnerf"]
    = python -m depth_mipnerf.scripts.reproduce --runs_dir RUNS/depth_mipnerf/reproduce --data_dir D ...

DATA_DIR is the lego scene folder itself (Blender layout with a depth map per image; default
data/lego_depth; the fork used a re-rendered half-resolution lego with depth EXRs). Rows: no_depth,
l2, urf, ours, ds_nerf (our re-implementation; no published row); columns: --views (default 3 6 100).
SCENES (--scenes) selects cells by row name, as --rows does; --views selects the view counts.

Each cell <row>/<views> is its own run folder RUNS/depth_mipnerf/reproduce/<row>_<views>: `python -m
depth_mipnerf.train` with the gin file (lego.gin) + the row's bindings + train.num_images = views (100:
all) + --bind (resumes from the folder's newest checkpoint when rerun), then `python -m
depth_mipnerf.eval` (the test split; its eval/metrics.json, with the protocol block, marks the cell
finished and is not redone). Results: results/depth_mipnerf.{md,json} (--out).
"""

import importlib
import json
import os
import sys

import gin

from data_tools import reproduce as tables
from data_tools.reproduce import Cell

NAME = 'depth_mipnerf'
TABLE = 'sparse_views'
DATASET = 'lego'
DEFAULT_GIN = 'depth_mipnerf/configs/lego.gin'
NO_DEPTH_TERMS = ["loss.depth_loss = 'none'", 'loss.lambda_near_loss = 0.', 'loss.lambda_empty_loss = 0.']
# name: (row label, bindings on top of lego.gin).
ROWS = {
    'no_depth': ('Ours w/o depth', NO_DEPTH_TERMS),
    'l2': ('Rendered L2 depth', NO_DEPTH_TERMS + ['loss.lambda_depth = 0.02']),
    'urf': ('URF', ["loss.depth_loss = 'urf'"]),
    'ours': ('Ours', []),
    'ds_nerf': ('DS-NeRF (our re-implementation)', ["loss.depth_loss = 'ds_nerf'", 'loss.lambda_empty_loss = 0.']),
}
VIEWS = (3, 6, 100)  # the table's columns; 100 = every training view (train.num_images = None)
METRICS = ['psnr', 'ssim', 'lpips_vgg', 'depth_abs_err']
LAYOUT = ('the lego scene folder (Blender layout): transforms_{train,val,test}.json, RGBA PNGs of their '
          'frames, and per image a depth map: <img>_depth_0001.exr (the fork\'s re-rendered lego), '
          '<img>_depth.npy, <img>_depth.png (16-bit mm) or depth/<split>/<stem>.npy')


def parse_args(argv=None):
    parser = tables.make_parser(__doc__.split('\n\n')[0], os.path.join(tables.ROOT, 'data', 'lego_depth'),
                                          os.path.join(tables.ROOT, 'results', NAME))
    parser.add_argument('--table', default=TABLE, choices=[TABLE], help='the one table: the sparse-view lego table')
    parser.add_argument('--dataset', default=DATASET, choices=[DATASET], help='the one dataset: lego with depth')
    parser.add_argument('--gin', default=DEFAULT_GIN, help='gin file of every cell (default: lego.gin)')
    parser.add_argument('--views', type=int, nargs='+', default=list(VIEWS), help='view counts (columns)')
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS), help='rows (as SCENES)')
    parser.add_argument('--device', default='cuda', help='cuda (falls back to the CPU), cuda:1, cpu, mps')
    args = parser.parse_args(argv)
    if any(v < 1 for v in args.views):
        parser.error(f'--views: positive view counts, got {args.views}')
    args.data_dir = os.path.abspath(args.data_dir)
    args.runs_dir = os.path.abspath(args.runs_dir)
    stem, ext = os.path.splitext(args.out)
    args.out = os.path.abspath(stem if ext in ('.md', '.json') else args.out)  # the old --out results/x.md
    return args


def selected_rows(args):
    """The rows of --rows that SCENES (--scenes) names too, in the table's order."""
    named = tables.selected(list(ROWS), args.scenes)
    return [r for r in ROWS if r in named and r in args.rows]


def bindings(args, row, views, run_dir):
    """The training command's gin bindings of one cell."""
    return [f'Config.data_dir = {args.data_dir!r}', f'Config.checkpoint_dir = {run_dir!r}',
            f'train.num_images = {None if views >= 100 else views}', *ROWS[row][1], *args.bind]


def parse_config(args, binds):
    gin.clear_config()
    from depth_mipnerf.configs import config as config_lib
    try:
        return config_lib.parse([args.gin], binds)
    finally:
        gin.clear_config()


def test_pixels(data_dir):
    """(test images, pixels per image, 'WxH') of the scene, or (0, 0, None) when it cannot be read."""
    try:
        with open(os.path.join(data_dir, 'transforms_test.json')) as f:
            frames = json.load(f)['frames']
        import imageio.v3 as iio
        height, width = iio.improps(os.path.join(data_dir, frames[0]['file_path'] + '.png')).shape[:2]
    except (OSError, ValueError, KeyError, IndexError):
        return 0, 0, None
    return len(frames), height * width, f'{width}x{height}'


def build_cells(args, with_commands=True):
    """The selected cells <row>/<views>, row-major."""
    cells = []
    n_test, pixels, _ = test_pixels(args.data_dir)
    for row in selected_rows(args):
        for views in args.views:
            run_dir = os.path.join(args.runs_dir, f'{row}_{views}')
            train = evaluate = None
            train_rays = eval_rays = 0.
            if with_commands:
                binds = bindings(args, row, views, run_dir)
                train = ['-m', 'depth_mipnerf.train', f'--gin_configs={args.gin}',
                         *[f'--gin_bindings={b}' for b in binds], '--device', args.device]
                evaluate = ['-m', 'depth_mipnerf.eval', f'--gin_bindings=Config.data_dir = {args.data_dir!r}',
                            f'--gin_bindings=Config.checkpoint_dir = {run_dir!r}', '--device', args.device]
                config, sections = parse_config(args, binds)
                # Rays one device traces (each torchrun process draws train.batch_size per step), so the
                # plan's hours are the wall time with NPROC devices.
                train_rays = float(sections['optimizer'].max_steps * sections['train'].batch_size)
                eval_rays = float(n_test * pixels / (4 if config.factor == 2 else 1))
            cells.append(Cell(key=f'{row}/{views}', labels={'row': ROWS[row][0], 'views': views},
                              data_dir=args.data_dir, run_dir=run_dir, train=train, eval=evaluate,
                              metrics_file=os.path.join(run_dir, 'eval', 'metrics.json'),
                              train_rays=train_rays, eval_rays=eval_rays))
    return cells


def missing_data(data_dir):
    """The missing parts of the scene folder's layout (empty: all there): the folder, its transforms
    files, the first training image's depth map."""
    if not os.path.isdir(data_dir):
        return [data_dir]
    missing = [os.path.join(data_dir, f'transforms_{s}.json') for s in ('train', 'test')
               if not os.path.isfile(os.path.join(data_dir, f'transforms_{s}.json'))]
    if missing:
        return missing
    try:
        with open(os.path.join(data_dir, 'transforms_train.json')) as f:
            first = json.load(f)['frames'][0]['file_path']
    except (OSError, ValueError, KeyError, IndexError) as error:
        return [f'{os.path.join(data_dir, "transforms_train.json")} (unreadable: {error})']
    stem = os.path.normpath(os.path.join(data_dir, first))
    rel = os.path.relpath(stem, os.path.join(data_dir, 'train'))
    candidates = [stem + '_depth_0001.exr', stem + '_depth.npy', stem + '_depth.png',
                  os.path.join(data_dir, 'depth', 'train', rel + '.npy')]
    if not os.path.isfile(stem + '.png'):
        return [stem + '.png']
    if not any(os.path.isfile(c) for c in candidates):
        return [f'a depth map of {stem}.png: one of ' + ', '.join(candidates)]
    return []


def read_metrics(cell):
    """({psnr, ssim, lpips_vgg, depth_abs_err}, the protocol block) of a finished cell: eval's
    metrics.json `protocol` plus the resolution, config file and bindings the cells share."""
    with open(cell.metrics_file) as f:
        metrics = json.load(f)
    _, _, resolution = test_pixels(cell.data_dir)
    protocol = dict(metrics['protocol'], resolution=resolution, n_test_images=metrics.get('n_images'),
                    lpips_reported='lpips_vgg (VGG16; lpips_alex also in metrics.json)',
                    ssim_reported="ssim = the fork's; ssim_mipnerf also in metrics.json")
    return {m: metrics.get(m) for m in METRICS}, protocol


def reference():
    return tables.published(NAME)


def measure_rates(args, steps=2):
    """{'train_rays_per_s', 'render_rays_per_s'} here: `steps` train.train_step calls (after a warm-up)
    at the `ours` cell's config on bench/depth_mipnerf.py's random orbit rays (at most 256 rays a step
    on the CPU, the config's batch on a GPU), and one render of val.chunk_size rays (1024 on the CPU)."""
    import torch

    bench = importlib.import_module('bench.depth_mipnerf')
    from common import device as device_utils
    from depth_mipnerf import train
    from depth_mipnerf.configs import config as config_lib
    from depth_mipnerf.datasets.datasets import Rays
    from depth_mipnerf.models import nerf_system
    from depth_mipnerf.utils.lr_schedule import MipLRDecay

    device = train.select_device(args.device)
    gin.clear_config()
    config, sections = config_lib.parse([args.gin], [*ROWS['ours'][1], *args.bind])
    gin.clear_config()
    cpu = device.type == 'cpu'
    batch = min(sections['train'].batch_size, 256) if cpu else sections['train'].batch_size
    render_rays = min(sections['val'].chunk_size, 1024) if cpu else sections['val'].chunk_size
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = nerf_system.build_model(sections).to(device)
    nerf_system.use_mlp_autocast(model, config, device)
    loss_fn = nerf_system.build_loss(config, sections)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scheduler = MipLRDecay(optimizer, 1e-4, 1e-5, 10**6, 0, 1.)
    batches = bench.FixedBatches(bench.random_rays(batch, generator, device),
                                 torch.rand(batch, 3, generator=generator).to(device))
    train_s = device_utils.timed(
        lambda: train.train_step(model, loss_fn, optimizer, scheduler, batches, 1, config, sections), steps, device)
    model.eval()
    image = Rays(*[x[None] for x in bench.random_rays(render_rays, generator, device)])
    render_s = device_utils.timed(lambda: nerf_system.render_image(model, image, sections['val'].chunk_size),
                                  1, device)
    return {'train_rays_per_s': batch / train_s, 'render_rays_per_s': render_rays / render_s}


def table_extra(args):
    return {'table': TABLE, 'dataset': DATASET, 'config_file': args.gin, 'config_overrides': list(args.bind),
            'row_bindings': {r: ROWS[r][1] for r in selected_rows(args)},
            'views': 'train.num_images = the first <views> training frames (100: all of them)'}


def main(argv=None):
    args = parse_args(argv)
    try:
        cells = build_cells(args)
        missing = missing_data(args.data_dir)
        if missing:
            raise tables.missing_error(missing, f'in --data_dir / DATA_DIR {args.data_dir}: {LAYOUT}')
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    header = lambda rates: (
        f'plan of {tables.relative_to_root(args.out)} ({len(cells)} cells; hours from rays/s measured here at the ours '
        f'cell\'s config, per device: the wall time with {args.nproc} process(es) per cell):')
    write = lambda: tables.write_summary(reference(), cells, read_metrics, args.out, extra=table_extra(args))
    return tables.reproduce(args, cells, lambda: measure_rates(args), header, write)


if __name__ == '__main__':
    main()
