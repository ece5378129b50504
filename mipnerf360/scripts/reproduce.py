"""Reproduces mip-NeRF 360's main table: the 9 scenes of the mip-NeRF 360 dataset, PSNR / SSIM / LPIPS (VGG)
beside the published numbers (results/published/mipnerf360.json, from multinerf's generate_tables.ipynb).

    make reproduce-mipnerf360 [DATA_DIR=data/360_v2] [SCENES=garden,room] [DRY_RUN=1] [JOBS=k] [NPROC=n]
        [ARGS="--gin mipnerf360/configs/360.gin --bind 'Config.max_steps = 5000' --out results/x"]
    = python -m mipnerf360.scripts.reproduce --runs_dir RUNS/mipnerf360/reproduce [--data_dir D] ...

DATA_DIR holds the scene folders of the published 360_v2 release (bicycle, flowers, garden, stump, treehill,
room, counter, kitchen, bonsai), each with images/, images_2/, images_4/ and sparse/0/ (COLMAP). Every scene
is trained with 360.gin at the paper's factor: the outdoor scenes at 4 (360.gin's value, images_4), the indoor
ones (room, counter, kitchen, bonsai: the Makefile's INDOOR_360) at 2 (images_2). --bind adds gin bindings to
both commands of every scene, after the factor (so a --bind can override it for a test).

Each scene is its own run folder RUNS/mipnerf360/reproduce/<scene>: `python -m mipnerf360.train` (resumes from
the folder's newest checkpoint when rerun, bit-identically), then `python -m mipnerf360.eval` (every 8th image,
llffhold = 8); its test_preds/metrics_<max_steps>.json, with the protocol block, marks the scene finished
and is not redone. Results: results/mipnerf360.{md,json} (--out); `python -m mipnerf360.scripts.summarize
RUNS_DIR` rebuilds them from the run folders.
"""

import glob
import importlib
import json
import os
import sys

import gin

from data_tools import reproduce as tables
from data_tools.reproduce import Cell

NAME = 'mipnerf360'
TABLE = 'main'
DATASET = '360_v2'
DEFAULT_GIN = 'mipnerf360/configs/360.gin'
OUTDOOR = ['bicycle', 'flowers', 'garden', 'stump', 'treehill']
INDOOR = ['room', 'counter', 'kitchen', 'bonsai']  # the Makefile's INDOOR_360: trained and scored at factor 2
SCENES = OUTDOOR + INDOOR
METRICS = ['psnr', 'ssim', 'lpips_vgg']
LAYOUT = ('the published 360_v2 scene folder: images/ (the full-resolution photos), images_2/ and images_4/ '
          '(the same names downsampled 2x and 4x; images_8/ too in the release), sparse/0/{cameras,images,'
          'points3D}.bin (COLMAP); poses_bounds.npy optional. Download: '
          'http://storage.googleapis.com/gresearch/refraw360/360_v2.zip (+ 360_extra_scenes.zip for '
          'flowers and treehill), unzipped into DATA_DIR')
# Protocol fields of eval's metrics JSON that name this run's paths; they stay in the metrics file.
RUN_SPECIFIC = ('data_dir', 'checkpoint')


def parse_args(argv=None):
    parser = tables.make_parser(__doc__.split('\n\n')[0], os.path.join(tables.ROOT, 'data', DATASET),
                                          os.path.join(tables.ROOT, 'results', NAME))
    parser.add_argument('--table', default=TABLE, choices=[TABLE], help="the one table: the paper's main table")
    parser.add_argument('--dataset', default=DATASET, choices=[DATASET], help='the one dataset: 360_v2')
    parser.add_argument('--gin', default=DEFAULT_GIN, help='gin file of every scene (default: 360.gin)')
    args = parser.parse_args(argv)
    args.data_dir = os.path.abspath(args.data_dir)
    args.runs_dir = os.path.abspath(args.runs_dir)
    stem, ext = os.path.splitext(args.out)
    args.out = os.path.abspath(stem if ext in ('.md', '.json') else args.out)
    return args


def factor(scene):
    """The paper's downsampling factor of the scene: 2 indoors, 4 outdoors."""
    return 2 if scene in INDOOR else 4


def bindings(args, scene):
    """The gin bindings both commands of the scene take (after --gin)."""
    data_dir, run_dir = os.path.join(args.data_dir, scene), os.path.join(args.runs_dir, scene)
    return [f'Config.data_dir = {data_dir!r}', f'Config.checkpoint_dir = {run_dir!r}',
            f'Config.factor = {factor(scene)}', *args.bind]


def parse_config(gin_file, binds):
    """The Config of the gin file and bindings (gin's registry cleared before and after)."""
    from mipnerf360.internal import configs, models  # noqa: F401  (models: the Model/MLP configurables)
    gin.clear_config()
    try:
        configs.parse_gin([gin_file], binds)
        return configs.Config()
    finally:
        gin.clear_config()


def test_images(data_dir, config):
    """(test images, 'WxH' of the first) of the scene at the config's factor, or (0, None) when unreadable:
    every llffhold-th image of images_<factor>/ (images/ at factor 0 or 1) after an alphabetical sort."""
    folder = os.path.join(data_dir, 'images' + (f'_{config.factor}' if config.factor > 1 else ''))
    names = sorted(n for n in os.listdir(folder) if not n.startswith('.')) if os.path.isdir(folder) else []
    if not names:
        return 0, None
    try:
        from PIL import Image
        with Image.open(os.path.join(folder, names[0])) as image:
            width, height = image.size
    except OSError:
        return 0, None
    return len(range(0, len(names), max(config.llffhold, 1))), f'{width}x{height}'


def newest_metrics(run_dir):
    """run_dir/test_preds/metrics_<step>.json of the highest step, or None (demo_summary's rule)."""
    from mipnerf360.scripts import demo_summary
    return demo_summary.newest_metrics(run_dir)


def build_cells(args, with_commands=True):
    """One cell per selected scene. With commands: the metrics file is test_preds/metrics_<max_steps>.json of
    the run (eval scores the newest checkpoint, which training leaves at max_steps, or at early_exit_steps when
    set); without (the summariser):
    the newest metrics file of the run folder."""
    cells = []
    for scene in tables.selected(SCENES, args.scenes):
        data_dir, run_dir = os.path.join(args.data_dir, scene), os.path.join(args.runs_dir, scene)
        train = evaluate = None
        train_rays = eval_rays = 0.
        scene_factor = factor(scene)
        if with_commands:
            binds = bindings(args, scene)
            flags = [f'--gin_configs={args.gin}', *[f'--gin_bindings={b}' for b in binds]]
            train, evaluate = ['-m', 'mipnerf360.train', *flags], ['-m', 'mipnerf360.eval', *flags]
            config = parse_config(args.gin, binds)
            scene_factor = config.factor  # the paper's, unless a --bind overrides it
            last_step = config.max_steps if config.early_exit_steps is None else config.early_exit_steps  # train.py's
            metrics_file = os.path.join(run_dir, 'test_preds', f'metrics_{last_step}.json')
            # Rays of the whole run (torchrun processes split Config.batch_size), so the plan's hours are
            # those of one device; with NPROC devices per scene the wall time is about 1/NPROC of it.
            train_rays = float(last_step * config.batch_size)
            n_test, size = test_images(data_dir, config)
            if size:
                width, height = map(int, size.split('x'))
                eval_rays = float(n_test * width * height)
        else:
            metrics_file = newest_metrics(run_dir) or os.path.join(run_dir, 'test_preds', 'metrics_<step>.json')
        cells.append(Cell(key=scene, labels={'scene': scene, 'factor': scene_factor}, data_dir=data_dir,
                          run_dir=run_dir, train=train, eval=evaluate, metrics_file=metrics_file,
                          train_rays=train_rays, eval_rays=eval_rays))
    return cells


def missing_data(cells):
    """The missing parts of each selected scene folder (empty: all there): the folder itself, else its
    images/, images_<factor>/ and sparse/0/ (or transforms.json, multinerf's fallback)."""
    missing = []
    for cell in cells:
        scene_dir = cell.data_dir
        if not os.path.isdir(scene_dir):
            missing.append(scene_dir)
            continue
        need = ['images'] + ([f'images_{cell.labels["factor"]}'] if cell.labels['factor'] > 1 else [])
        missing += [os.path.join(scene_dir, n) + '/' for n in need if not os.path.isdir(os.path.join(scene_dir, n))]
        if not (os.path.isdir(os.path.join(scene_dir, 'sparse', '0'))
                or os.path.isfile(os.path.join(scene_dir, 'transforms.json'))):
            missing.append(os.path.join(scene_dir, 'sparse', '0') + '/')
    return missing


def read_metrics(cell):
    """({psnr, ssim, lpips_vgg}, the protocol block) of a finished scene: eval's `protocol` (less the run's
    paths) with the split, the test images' resolution and the metric variants spelled out."""
    with open(cell.metrics_file) as f:
        metrics = json.load(f)
    protocol = {k: v for k, v in metrics['protocol'].items() if k not in RUN_SPECIFIC}
    resolution = None
    preds = sorted(glob.glob(os.path.join(os.path.dirname(cell.metrics_file), 'color_[0-9][0-9][0-9].png')))
    if preds:  # eval's rendered test images: the resolution even without the data folder
        from PIL import Image
        with Image.open(preds[0]) as image:
            resolution = f'{image.size[0]}x{image.size[1]}'
    protocol.update(
        split=f'test: every {protocol.get("llffhold")}th image of images_{protocol.get("image_factor")}/ after an '
              'alphabetical sort (the rest train)',
        resolution=resolution, background=protocol.get('background') or 'none (opaque photos, no alpha)',
        psnr='mean over test images of the per-image PSNR, on the uint8-rounded render'
             if protocol.get('uint8_rounding') else 'mean over test images of the per-image PSNR',
        lpips_reported='lpips_vgg (the paper\'s; lpips_alex also in the metrics file)')
    return {m: metrics['mean'].get(m) for m in METRICS}, protocol


def reference():
    return tables.published(NAME)


def measure_rates(args, steps=2):
    """{'train_rays_per_s', 'render_rays_per_s'} measured here with bench/mipnerf360.py's functions at the
    cells' config (--gin + --bind): `steps` training steps after a warm-up on its random orbit rays (32 rays a
    step on the CPU, Config.batch_size on a GPU), and one render of 64 rays on the CPU (Config.render_chunk_size
    on a GPU). Small CPU batches make the CPU figure a rough (pessimistic) one."""
    import functools

    import torch

    if tables.ROOT not in sys.path:  # bench/ is a folder of the repository, not of the installed packages
        sys.path.insert(0, tables.ROOT)
    bench = importlib.import_module('bench.mipnerf360')
    from common import device as device_utils
    from mipnerf360.internal import models, train_utils, utils

    device = device_utils.pick_device()
    config = bench.load(args.gin, ['Config.factor = 4', *args.bind])
    cpu = device.type == 'cpu'
    batch = min(config.batch_size, 32) if cpu else config.batch_size
    render_rays = min(config.render_chunk_size, 64) if cpu else config.render_chunk_size
    config = bench.load(args.gin, ['Config.factor = 4', *args.bind, f'Config.batch_size = {batch}'])
    gin.clear_config()
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    generator = torch.Generator().manual_seed(0)
    _, state, render_eval_fn, train_step, _ = train_utils.setup_model(config, generator, device=device)
    rays = bench.random_rays(batch, generator, device)
    train_batch = utils.Batch(rays=rays, rgb=torch.rand(batch, 3, generator=generator).to(device))
    rng = torch.Generator(device=device).manual_seed(0)
    train_s = device_utils.timed(functools.partial(train_step, rng, state, train_batch, None, 0.5), steps, device)
    image = bench.random_rays(render_rays, generator, device).map(lambda x: x[None])
    render = functools.partial(models.render_image, functools.partial(render_eval_fn, 1.0), image, None, config,
                               verbose=False)
    render_s = device_utils.timed(render, 1, device)
    return {'train_rays_per_s': batch / train_s, 'render_rays_per_s': render_rays / render_s,
            'batch': batch, 'render_rays': render_rays}


def table_extra(args, reference_table, table_rows=None):
    """The table's own keys: config, overrides, factors, and the outdoor / indoor means beside the paper's."""
    extra = {'table': TABLE, 'dataset': DATASET, 'config_file': args.gin, 'config_overrides': list(args.bind),
             'factors': {'outdoor': 4, 'indoor': 2, 'indoor_scenes': INDOOR}}
    if table_rows is not None:
        groups = {}
        for group, scenes in (('outdoor', OUTDOOR), ('indoor', INDOOR)):
            done = [r for r in table_rows if r['key'] in scenes and r['status'] == 'done']
            ours = {m: (sum(r['ours'][m] for r in done) / len(done)
                        if done and all(r['ours'][m] is not None for r in done) else None) for m in METRICS}
            groups[group] = {'published': reference_table.get('group_means', {}).get(group), 'ours': ours,
                             'finished': f'{len(done)} of {len(scenes)}' if done else f'0 of {len(scenes)}'}
        extra['group_means'] = groups
    return extra


def write_table(args, cells):
    """results/<out>.{md,json}: data_tools.reproduce.summarize, plus the outdoor / indoor means."""
    ref = reference()
    table = tables.summarize(ref, cells, read_metrics, args.out, extra=table_extra(args, ref))
    table.update(table_extra(args, ref, table['rows']))
    with open(args.out + '.json', 'w') as f:
        json.dump(table, f, indent=1)
    fmt = lambda v: '-' if v is None else f'{v:.3f}'
    lines = ['', 'Means over the outdoor (factor 4) and indoor (factor 2) scenes (paper / ours, finished cells only):',
             '', '| group | ' + ' | '.join(METRICS) + ' | finished |', '|---|' + '---|' * (len(METRICS) + 1)]
    for group, means in table['group_means'].items():
        paper, ours = means['published'] or {}, means['ours']
        lines.append(f'| {group} | ' + ' | '.join(f'{fmt(paper.get(m))} / {fmt(ours[m])}' for m in METRICS)
                     + f' | {means["finished"]} |')
    lines += ['', f'Config: {args.gin}' + (' with ' + '; '.join(f'`{b}`' for b in args.bind) if args.bind else '')
              + '; the indoor scenes with `Config.factor = 2`.']
    with open(args.out + '.md', 'a') as f:
        f.write('\n'.join(lines) + '\n')
    with open(args.out + '.md') as f:
        print(f.read(), end='')
    print(f'wrote {args.out}.md and {args.out}.json')
    return table


def main(argv=None):
    args = parse_args(argv)
    try:
        cells = build_cells(args)
        missing = missing_data(cells)
        if missing:
            raise tables.missing_error(missing, f'in each scene folder of --data_dir / DATA_DIR {args.data_dir}: {LAYOUT}')
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    header = lambda rates: (
        f'plan of {tables.relative_to_root(args.out)} ({len(cells)} scenes, {args.gin}{" + --bind" if args.bind else ""}); '
        f'hours from rays/s measured here ({rates["batch"]} rays a training step, {rates["render_rays"]} rendered) '
        f'at the cells\' config, per device (with NPROC={args.nproc} a scene takes about 1/{args.nproc} of it):')
    return tables.reproduce(args, cells, lambda: measure_rates(args), header, lambda: write_table(args, cells))


if __name__ == '__main__':
    main()
