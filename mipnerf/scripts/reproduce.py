"""Reproduces mip-NeRF's Blender tables beside the published numbers: Table 1 (multiscale, the 8 scenes
at 4 resolutions) or Table 2 (single-scale, the 8 scenes).

    make reproduce-mipnerf [TABLE=multiscale|singlescale] [DATA_DIR=...] [SCENES=lego,chair] [DRY_RUN=1]
        [JOBS=k] [NPROC=n] [ARGS="--gin mipnerf/configs/... --bind 'Config.max_steps = 5000' --out results/x"]
    = python -m mipnerf.scripts.reproduce --runs_dir RUNS/mipnerf/reproduce --table T ...

multiscale (the default): multiblender.gin on DATA_DIR/<scene> (default data/nerf_synthetic_multiscale), the
multi-scale layout that `python -m mipnerf.scripts.convert_blender_data --blender_dir data/nerf_synthetic
--out_dir data/nerf_synthetic_multiscale` writes; each scene is trained once and evaluated at the 4 scales
(`mipnerf.eval --scale 4`); rows per scene and scale (Full, 1/2, 1/4, 1/8), next to Table 1's means per scale.
singlescale: blender.gin on DATA_DIR/<scene> (default data/nerf_synthetic, the published Blender layout),
`mipnerf.eval --scale 1`; rows per scene next to Table 2.

Each scene is its own run folder RUNS/mipnerf/reproduce/<table>/<scene>: `python -m mipnerf.train` (resumes
from the folder's newest checkpoint when rerun; --bind adds --gin_param bindings), then `python -m
mipnerf.eval` into <run>/eval (its metrics.json, with the protocol block, marks the scene finished and is not
redone). Results: results/mipnerf_<table>.{md,json} (--out); `python -m mipnerf.scripts.summarize` rebuilds
them from the run folders.
"""

import json
import os
import sys

import gin

from data_tools import reproduce as tables
from data_tools.reproduce import Cell

NAME = 'mipnerf'
SCENES = ['chair', 'drums', 'ficus', 'hotdog', 'lego', 'materials', 'mic', 'ship']
SCALES = ['Full', '1/2', '1/4', '1/8']  # eval.SCALE_NAMES; a row key uses the factor: <scene>/<1|2|4|8>
METRICS = ['psnr', 'ssim', 'lpips_vgg', 'avg_error']
CONVERT = ('python -m mipnerf.scripts.convert_blender_data --blender_dir data/nerf_synthetic '
           '--out_dir data/nerf_synthetic_multiscale')
# table: (default data folder, gin file, eval --scale, layout of each scene folder)
TABLES = {
    'multiscale': ('data/nerf_synthetic_multiscale', 'mipnerf/configs/multiblender.gin', 4,
                   'the multi-scale Blender layout: metadata.json and images_{train,val,test}/<i>_d<0..3>.png '
                   f'(made from the Blender scenes by `{CONVERT}`)'),
    'singlescale': ('data/nerf_synthetic', 'mipnerf/configs/blender.gin', 1,
                    "the Blender layout (nerf_synthetic): transforms_{train,val,test}.json and the RGBA PNGs "
                    'they name (train/, val/, test/)'),
}
DATASET = 'nerf_synthetic'


def parse_args(argv=None):
    parser = tables.make_parser(__doc__.split('\n\n')[0], None, None)
    parser.add_argument('--table', default='multiscale', choices=list(TABLES),
                        help='multiscale (Table 1, default) or singlescale (Table 2)')
    parser.add_argument('--dataset', default=DATASET, choices=[DATASET], help='the one dataset: Blender')
    parser.add_argument('--gin', default=None, help="gin file of every scene (default: the table's, "
                        'multiblender.gin or blender.gin)')
    args = parser.parse_args(argv)
    default_data, default_gin, _, _ = TABLES[args.table]
    args.data_dir = os.path.abspath(args.data_dir or os.path.join(tables.ROOT, default_data))
    args.runs_dir = os.path.abspath(args.runs_dir)
    args.gin = args.gin or default_gin
    out = args.out or os.path.join(tables.ROOT, 'results', f'{NAME}_{args.table}')
    stem, ext = os.path.splitext(out)
    args.out = os.path.abspath(stem if ext in ('.md', '.json') else out)
    return args


def scale_factor(scale):
    return 2 ** SCALES.index(scale)


def run_dir(args, scene):
    return os.path.join(args.runs_dir, args.table, scene)


def parse_config(args):
    """The Config of the gin file and --bind (gin's registry cleared before and after)."""
    from mipnerf import train
    gin.clear_config()
    try:
        return train.parse_config([args.gin], list(args.bind))
    finally:
        gin.clear_config()


def test_images(args, data_dir):
    """[(label, width, height)] of the scene's test split, or [] when it cannot be read."""
    try:
        if args.table == 'multiscale':
            with open(os.path.join(data_dir, 'metadata.json')) as f:
                meta = json.load(f)['test']
            return list(zip(meta['label'], meta['width'], meta['height']))
        with open(os.path.join(data_dir, 'transforms_test.json')) as f:
            frames = json.load(f)['frames']
        from PIL import Image
        with Image.open(os.path.join(data_dir, frames[0]['file_path'] + '.png')) as image:
            width, height = image.size
        return [(0, width, height)] * len(frames)
    except (OSError, ValueError, KeyError, IndexError):
        return []


def resolution(args, data_dir, scale='Full'):
    """'WxH' of the test images at that scale (after Config.factor for single-scale), or None."""
    sizes = {(w, h) for label, w, h in test_images(args, data_dir) if label == SCALES.index(scale)}
    if len(sizes) != 1:
        return None
    (width, height), = sizes
    return f'{width}x{height}'


def train_cells(args, with_commands=True):
    """One cell per selected scene: its run folder, training and evaluation commands and rays."""
    config = parse_config(args) if with_commands else None
    cells = []
    for scene in tables.selected(SCENES, args.scenes):
        data_dir, folder = os.path.join(args.data_dir, scene), run_dir(args, scene)
        train = evaluate = None
        train_rays = eval_rays = 0.
        if with_commands:
            train = ['-m', 'mipnerf.train', f'--gin_file={args.gin}', f'--data_dir={data_dir}',
                     f'--train_dir={folder}', '--render_every=0', *[f'--gin_param={b}' for b in args.bind]]
            evaluate = ['-m', 'mipnerf.eval', f'--ckpt={folder}', f'--data_path={data_dir}',
                        f'--out_dir={os.path.join(folder, "eval")}', f'--scale={TABLES[args.table][2]}']
            # Rays one device traces: each torchrun process draws batch_size / nproc rays a step, so
            # the plan's hours are those of one device (the wall time when NPROC devices share a scene
            # is lower).
            train_rays = float(config.max_steps * config.batch_size)
            shrink = max(config.factor, 1) ** 2 if args.table == 'singlescale' else 1
            eval_rays = float(sum(w * h for _, w, h in test_images(args, data_dir)) / shrink)
        cells.append(Cell(key=scene, labels={'scene': scene}, data_dir=data_dir, run_dir=folder, train=train,
                          eval=evaluate, metrics_file=os.path.join(folder, 'eval', 'metrics.json'),
                          train_rays=train_rays, eval_rays=eval_rays))
    return cells


def row_cells(args, cells):
    """The table's rows: per scene (singlescale), or per scene and scale (multiscale, keys <scene>/<factor>),
    each reading its scene's metrics.json."""
    if args.table == 'singlescale':
        return cells
    return [Cell(key=f'{c.key}/{scale_factor(s)}', labels={'scene': c.key, 'scale': s}, data_dir=c.data_dir,
                 run_dir=c.run_dir, train=None, eval=None, metrics_file=c.metrics_file) for c in cells for s in SCALES]


def missing_data(args, cells):
    """Each missing scene folder or layout file (empty: all there)."""
    missing = []
    for cell in cells:
        if not os.path.isdir(cell.data_dir):
            missing.append(cell.data_dir)
            continue
        needed = ['metadata.json'] if args.table == 'multiscale' else [
            f'transforms_{s}.json' for s in ('train', 'test')]
        missing += [os.path.join(cell.data_dir, n) for n in needed if not os.path.isfile(os.path.join(cell.data_dir, n))]
    return missing


def missing_error(args, missing):
    """The FileNotFoundError of missing scene data, naming the converter where a scene is single-scale."""
    expected = (f'in --data_dir / DATA_DIR {args.data_dir}: one folder per scene (<scene> of {", ".join(SCENES)}) '
                f'in {TABLES[args.table][3]}')
    if args.table == 'multiscale' and any(os.path.isfile(os.path.join(m, 'transforms_train.json'))
                                          for m in [os.path.dirname(p) for p in missing]):
        expected += f'\n(these hold the single-scale Blender layout: convert them first with `{CONVERT}`)'
    return tables.missing_error(missing, expected)


def read_metrics(args):
    """read_metrics(cell) of data_tools.reproduce: ({psnr, ssim, lpips_vgg, avg_error} of the cell's scale,
    the protocol block of eval's metrics.json plus the row's resolution, test images and checkpoint step)."""
    def read(cell):
        with open(cell.metrics_file) as f:
            metrics = json.load(f)
        scale = cell.labels.get('scale', 'Full')
        values = metrics['per_scale'][scale]
        protocol = dict(metrics['protocol'], scale=scale, resolution=resolution(args, cell.data_dir, scale),
                        n_test_images=values.get('num_images'), step=metrics.get('step'),
                        lpips_reported='lpips_vgg (the paper\'s VGG; lpips_alex also in metrics.json)',
                        ssim_reported='ssim = google/mipnerf\'s compute_ssim (valid filtering)')
        return {m: values.get(m) for m in METRICS}, protocol
    return read


def measure_rates(args, steps=2):
    """{'train_rays_per_s', 'render_rays_per_s'} measured here: `steps` train.train_step calls (after a
    warm-up) at the table's config with --bind, on bench/mipnerf.py's random orbit rays (at most 128 rays
    a step on the CPU, the config's batch on a GPU), and one render of 512 (CPU) or 8192 rays."""
    import functools
    import importlib

    import torch

    from common import device as device_utils
    from mipnerf import train
    from mipnerf.internal import models

    bench = importlib.import_module('bench.mipnerf')
    gin.clear_config()
    config = train.parse_config([args.gin], list(args.bind))  # gin keeps the model's bindings till the end
    device = device_utils.pick_device()
    if device.type == 'cuda':
        device_utils.setup_tf32(config.use_tf32)
    cpu = device.type == 'cpu'
    batch_rays = min(config.batch_size, 128) if cpu else config.batch_size
    render_rays = 512 if cpu else 8192
    generator = torch.Generator().manual_seed(0)
    rays = bench.random_rays(batch_rays, generator, device)
    state = train.create_train_state(config, {'rays': rays}, device)
    batch = {'rays': rays, 'pixels': torch.rand(batch_rays, 3, generator=generator).to(device)}
    rng = torch.Generator(device=device).manual_seed(0)
    step = functools.partial(train.train_step, state.model, config, rng, state.optimizer, batch, 1e-4)
    train_s = device_utils.timed(step, steps, device)
    image = bench.random_rays(render_rays, generator, device).map(lambda x: x[None])
    render = functools.partial(models.render_image, train.render_eval_fn(state.model, config), image, None, 8192)
    render_s = device_utils.timed(render, 1, device)
    gin.clear_config()
    return {'train_rays_per_s': batch_rays / train_s, 'render_rays_per_s': render_rays / render_s}


def reference(args):
    return tables.published(f'{NAME}_{args.table}')


def table_extra(args, rows, ref):
    """The table's own fields: its name, config, and (multiscale) the means per scale beside Table 1's."""
    extra = {'table': args.table, 'dataset': DATASET, 'config_file': args.gin, 'config_overrides': list(args.bind),
             'eval_scale': TABLES[args.table][2], 'published_notes': ref.get('notes', [])}
    if args.table == 'multiscale':
        read = read_metrics(args)
        per_scale = {}
        for scale in SCALES:
            done = [read(c)[0] for c in rows if c.labels['scale'] == scale and tables.status(c) == 'done']
            ours = {m: tables._mean([d[m] for d in done]) for m in METRICS}
            per_scale[scale] = {'published': ref['scale_means'][scale], 'ours': ours, 'scenes': len(done)}
        extra['scale_means'] = per_scale
    return extra


def scale_means_markdown(table):
    """Lines of the per-scale means (Table 1's layout) for the .md."""
    lines = ['', "Means over the finished scenes per scale (Table 1's columns; paper / ours):", '',
             '| scale | scenes | ' + ' | '.join(f'{m} (paper / ours)' for m in METRICS[:3]) + ' |',
             '|' + '---|' * 5]
    fmt = tables._cell
    for scale, means in table['scale_means'].items():
        lines.append(f'| {scale} | {means["scenes"]} | ' + ' | '.join(
            f'{fmt(means["published"].get(m))} / {fmt(means["ours"].get(m))}' for m in METRICS[:3]) + ' |')
    return '\n'.join(lines) + '\n'


def write_table(args, cells):
    """Writes args.out.{md,json} from the finished run folders; returns the table."""
    ref = reference(args)
    rows = row_cells(args, cells)
    table = tables.summarize(ref, rows, read_metrics(args), args.out, extra=table_extra(args, rows, ref))
    text = tables.markdown(table)
    if args.table == 'multiscale':
        text += scale_means_markdown(table)
    notes = ref.get('notes', [])
    if notes:
        text += '\nAbout the published numbers:\n\n' + '\n'.join(f'- {n}' for n in notes) + '\n'
    with open(args.out + '.md', 'w') as f:
        f.write(text)
    print(text, end='')
    print(f'wrote {args.out}.md and {args.out}.json')
    return table


def main(argv=None):
    args = parse_args(argv)
    try:
        cells = train_cells(args)
        missing = missing_data(args, cells)
        if missing:
            raise missing_error(args, missing)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    header = lambda rates: (
        f'plan of {tables.relative_to_root(args.out)} ({args.table}: {len(cells)} scenes, {args.gin}; hours from rays/s '
        f'measured here at this config; the hours of one device: NPROC={args.nproc} device(s) share each scene):')
    return tables.reproduce(args, cells, lambda: measure_rates(args), header, lambda: write_table(args, cells))


if __name__ == '__main__':
    main()
