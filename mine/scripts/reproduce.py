"""MINE's tables, reproduced beside the published numbers: one command per dataset.

    make reproduce-mine DATASET=realestate10k|kitti_raw|flowers|llff [DATA_DIR=] [SCENES=] [DRY_RUN=1]
        [JOBS=k] [NPROC=n] [ARGS="--extra_config JSON --bind key=value --out results/x"]
    = python -m mine.scripts.reproduce --runs_dir RUNS/mine/reproduce --dataset D ...

Each run is MINE's own trainer (`python -m mine.train --config_path mine/configs/params_<dataset>.yaml
--workspace RUNS/mine/reproduce/<dataset> --version <run> --extra_config JSON`, the command
start_training.sh launches; torchrun over NPROC processes), which resumes from the run folder's
checkpoint_latest.pth, then `python -m mine.eval` (its <run>/eval/metrics.json marks the run finished).
Rows ("scenes", selected with SCENES=):
- realestate10k: 5_frames, 10_frames, random: the three target protocols of one run (Tucker & Snavely's);
  the pairs file is <data>/test/test_pairs.json (the release's, or made here by make_test_pairs --seed 0);
- kitti_raw: tulsiani_test: the 4 test drives of Tulsiani et al.'s split, left -> right;
- flowers: test: the test.list light fields, centre view -> the 4 corner views;
- llff: one run per scene (fern, ..., trex), validated on its own views as the original (no published numbers).
--extra_config (JSON) and --bind key=value (YAML value) override params_default.yaml / the dataset yaml
keys for every run (e.g. tiny test runs). Results: results/mine_<dataset>.{md,json} (--out).
"""

import copy
import glob
import importlib
import json
import os
import sys

import torch
import yaml

from data_tools import reproduce as tables
from data_tools.reproduce import Cell

CONFIGS = os.path.join(tables.ROOT, 'mine', 'configs')
METRICS = ['psnr', 'ssim', 'lpips']
LLFF_SCENES = ['fern', 'flower', 'fortress', 'horns', 'leaves', 'orchids', 'room', 'trex']
RE10K_ROWS = {'5_frames': '5', '10_frames': '10', 'random': 'random'}  # row -> mine.eval protocol
PAIRS_FILE = 'test_pairs.json'

DATASETS = {
    'realestate10k': {
        'yaml': 'params_realestate.yaml', 'data_dir': 'data/realestate10k',
        'layout': ('train/ and test/, each with cameras/<sequence_id>.txt (the release\'s camera files), '
                   'frames/<sequence_id>/<timestamp>.png and points/<sequence_id>/<timestamp>.npy '
                   '(or sparse/<sequence_id>/); test/test_pairs.json is made when missing'),
    },
    'kitti_raw': {
        'yaml': 'params_kitti_raw.yaml', 'data_dir': 'data/kitti_raw',
        'layout': ('<date>/calib_cam_to_cam.txt and <date>/<date>_drive_<n>_sync/image_0{2,3}/data/*.png '
                   '(KITTI raw, synced+rectified) for the drives of mine/input_pipelines/kitti_raw/splits/'
                   '{train,test}.txt'),
    },
    'flowers': {
        'yaml': 'params_flowers.yaml', 'data_dir': 'data/flowers',
        'layout': 'imgs/IMG_<id>_eslf.png (14x14 Lytro sub-aperture views) and optional dataset_list/{train,test}.list',
    },
    'llff': {
        'yaml': 'params_llff.yaml', 'data_dir': 'data/nerf_llff_data',
        'layout': ('<scene>/sparse/0/{cameras,images,points3D}.bin and <scene>/images_<data.img_pre_downsample_'
                   'ratio>/ (python -m mine.input_pipelines.llff.misc.resize_nerf_llff_images --dataset_path DIR)'),
    },
}


class MineCell(Cell):
    """A Cell that also names the mine.eval protocol its row reads from the shared metrics.json."""

    def __init__(self, protocol, **fields):
        super().__init__(**fields)
        self.protocol = protocol


def parse_args(argv=None):
    parser = tables.make_parser(__doc__.split('\n\n')[0], None, None)
    parser.add_argument('--dataset', default=None, choices=sorted(DATASETS), help='the table (default realestate10k)')
    parser.add_argument('--table', default=None, choices=sorted(DATASETS), help='same as --dataset')
    parser.add_argument('--extra_config', default='{}', help='JSON of config keys for every run (as EXTRA_CONFIG)')
    args = parser.parse_args(argv)
    args.dataset = args.dataset or args.table or 'realestate10k'
    args.data_dir = os.path.abspath(args.data_dir or os.path.join(tables.ROOT, DATASETS[args.dataset]['data_dir']))
    args.out = args.out or os.path.join(tables.ROOT, 'results', f'mine_{args.dataset}')
    return args


def overrides(args):
    """--extra_config then each --bind key=value (a YAML value) as one dict."""
    values = json.loads(args.extra_config)
    if not isinstance(values, dict):
        raise ValueError(f'--extra_config must be a JSON object, got {args.extra_config!r}')
    for bind in args.bind:
        key, sep, value = bind.partition('=')
        if not sep:
            raise ValueError(f'--bind {bind!r}: expected key=value')
        values[key.strip()] = yaml.safe_load(value)
    return values


def data_paths(dataset, data_dir, run_name):
    """The run's data.training_set_path and data.val_set_path."""
    if dataset == 'realestate10k':
        return {'data.training_set_path': os.path.join(data_dir, 'train'),
                'data.val_set_path': os.path.join(data_dir, 'test', PAIRS_FILE)}
    if dataset == 'llff':  # a root holding only this scene (the loader reads every folder under its root)
        return {'data.training_set_path': llff_root(data_dir, run_name)}
    return {'data.training_set_path': data_dir, 'data.val_set_path': data_dir}


def llff_root(runs_dataset_dir, scene):
    return os.path.join(runs_dataset_dir, '_data', scene)


def load_config(dataset, extra):
    """The merged params (params_default.yaml <- dataset yaml <- extra), keys and types checked."""
    from mine import train
    return train.load_config(os.path.join(CONFIGS, DATASETS[dataset]['yaml']), json.dumps(extra))


def rows(dataset):
    """The table's row names."""
    return {'realestate10k': list(RE10K_ROWS), 'kitti_raw': ['tulsiani_test'], 'flowers': ['test'],
            'llff': list(LLFF_SCENES)}[dataset]


def llff_image_folder(config):
    ratio = config['data.img_pre_downsample_ratio']
    return 'images' if ratio is None or ratio <= 1 else f'images_{ratio}'


def missing_data(dataset, data_dir, names, config):
    """Every missing folder of the published layout the selected rows need (empty: all there)."""
    if dataset == 'realestate10k':
        needed = [os.path.join(data_dir, split, sub) for split in ('train', 'test') for sub in ('cameras', 'frames')]
    elif dataset == 'kitti_raw':
        if config.get('data.kitti_split', 'tulsiani') == 'all':
            needed = [data_dir]
        else:
            drives = kitti_drives('train.txt') + kitti_drives('test.txt')
            needed = [os.path.join(data_dir, d[:10], d, f'image_0{c}', 'data') for d in drives for c in (2, 3)]
    elif dataset == 'flowers':
        needed = [os.path.join(data_dir, 'imgs')]
    else:
        needed = [os.path.join(data_dir, s, sub) for s in names for sub in ('sparse/0', llff_image_folder(config))]
    return [path for path in needed if not os.path.isdir(path)]


def kitti_drives(split):
    """The drive folder names of mine/input_pipelines/kitti_raw/splits/<split> (Tulsiani et al.'s split)."""
    from mine.input_pipelines.kitti_raw.kitti_raw_dataset import SPLITS_DIR
    with open(os.path.join(SPLITS_DIR, split)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def count_items(dataset, data_dir, name, config):
    """(training items per epoch, evaluated images) of a run, counted from the data (0 where absent)."""
    def count(pattern):
        return len(glob.glob(os.path.join(data_dir, pattern)))

    if dataset == 'realestate10k':
        pairs = os.path.join(data_dir, 'test', PAIRS_FILE)
        n_pairs = sum(1 for _ in open(pairs)) if os.path.isfile(pairs) else count('test/cameras/*.txt') * 5
        return count('train/frames/*/*.*'), n_pairs * len(RE10K_ROWS)
    if dataset == 'kitti_raw':
        if config.get('data.kitti_split', 'tulsiani') == 'all':
            return count('*/*_sync/image_02/data/*.png'), count('*/*_sync/image_02/data/*.png')
        frames = [count(os.path.join(d[:10], d, 'image_02', 'data', '*.png')) for d in kitti_drives('test.txt')]
        return sum(count(os.path.join(d[:10], d, 'image_02', 'data', '*.png')) for d in kitti_drives('train.txt')), sum(frames)
    if dataset == 'flowers':
        def listed(split):
            path = os.path.join(data_dir, 'dataset_list', f'{split}.list')
            return sum(1 for line in open(path) if line.strip()) if os.path.isfile(path) else 0
        return listed('train') or count('imgs/*_eslf.png'), 4 * (listed('test') or count('imgs/*_eslf.png'))
    n = count(os.path.join(name, llff_image_folder(config), '*'))
    return n, n


def build_cells(args, extra=None, with_commands=True):
    """The selected rows' cells. Rows of one run (realestate10k's protocols) share its folder and metrics
    file; the first selected one carries the commands and the rays."""
    dataset, names = args.dataset, tables.selected(rows(args.dataset), args.scenes)
    workspace = os.path.join(os.path.abspath(args.runs_dir), dataset)
    config = load_config(dataset, extra or {}) if with_commands else None
    cells, runs_with_commands = [], set()
    for name in names:
        run_name = {'realestate10k': 're10k', 'kitti_raw': 'kitti', 'flowers': 'flowers'}.get(dataset, name)
        run_dir = os.path.join(workspace, run_name)
        protocol = {'realestate10k': RE10K_ROWS.get(name), 'kitti_raw': 'stereo',
                    'flowers': 'centre_to_corners'}.get(dataset, 'next_view')
        labels = {'realestate10k': {'target': name.replace('_', ' ')}, 'kitti_raw': {'split': 'Tulsiani test drives'},
                  'flowers': {'split': 'test.list'}}.get(dataset, {'scene': name})
        data_dir = os.path.join(args.data_dir, name) if dataset == 'llff' else args.data_dir
        train = evaluate = None
        train_rays = eval_rays = 0.
        if with_commands and run_name not in runs_with_commands:
            runs_with_commands.add(run_name)
            run_extra = {**data_paths(dataset, workspace if dataset == 'llff' else args.data_dir, run_name),
                         **(extra or {})}
            train = ['-m', 'mine.train', '--config_path', os.path.join(CONFIGS, DATASETS[dataset]['yaml']),
                     '--workspace', workspace, '--version', run_name, '--extra_config', json.dumps(run_extra)]
            evaluate = ['-m', 'mine.eval', '--checkpoint_path', os.path.join(run_dir, 'checkpoint_latest.pth'),
                        '--seed', '0'] + (['--gpus', '0'] if torch.cuda.is_available() else [])
            items, evaluated = count_items(dataset, args.data_dir, name, config)
            batch = config['data.per_gpu_batch_size'] * max(1, args.nproc)
            pixels = config['data.img_h'] * config['data.img_w']
            train_rays = float(config['training.epochs'] * (items // batch) * batch * pixels)
            eval_rays = float(evaluated * pixels)
        cells.append(MineCell(protocol, key=f'{dataset}/{name}', labels=labels, data_dir=data_dir, run_dir=run_dir,
                              train=train, eval=evaluate,
                              metrics_file=os.path.join(run_dir, 'eval', 'metrics.json'),
                              train_rays=train_rays, eval_rays=eval_rays))
    return cells


def read_metrics(cell):
    """({psnr, ssim, lpips} of the cell's protocol, the protocol block) from the run's metrics.json."""
    with open(cell.metrics_file) as f:
        metrics = json.load(f)
    means = metrics['protocols'][cell.protocol]
    return ({m: means.get(m) for m in METRICS},
            dict(metrics['protocol'], eval_seed=0, lpips_original_range_also_in='metrics.json'))


def reference(dataset):
    """results/published/mine.json narrowed to one dataset's rows (keys '<dataset>/<row>')."""
    published = tables.published('mine')
    return dict(published, rows={k: v for k, v in published['rows'].items() if k.startswith(dataset + '/')},
                mean=(published.get('means') or {}).get(dataset) or {},
                source=(published.get('sources') or {}).get(dataset, published['source']))


def measure_rates(dataset, extra, steps=2):
    """{'train_rays_per_s', 'render_rays_per_s'} of SynthesisTask at the run's config on this machine:
    `steps` train_steps on bench/mine.py's toy batch (after one warm-up) and one-image MPI prediction + warp."""
    import time

    bench = importlib.import_module('bench.mine')
    from mine import train
    from mine.synthesis_task import SynthesisTask

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    config = train.preprocess_config({**load_config(dataset, extra), 'model.imagenet_pretrained': False,
                                      'global_rank': 0, 'device': str(device), 'mpi.fix_disparity': True,
                                      'training.pretrained_checkpoint_path': None})
    H, W, B = config['data.img_h'], config['data.img_w'], config['data.per_gpu_batch_size']
    torch.manual_seed(0)
    task = SynthesisTask(config, None, device=device)
    batch = bench.toy_batch(B, H, W, config['data.visible_point_count'], 0)
    batch = tuple({k: v.to(device) for k, v in items.items()} for items in batch)
    src, tgt = batch

    def render():
        with torch.no_grad():
            rgb, sigma, disparity = task.predict_src_mpi(src['img'][:1], src['K_inv'][:1])
            task.render_novel_view(rgb, sigma, disparity, torch.linalg.inv(tgt['G_src_tgt'][:1, 0]),
                                   src['K_inv'][:1], tgt['K'][:1, 0], scale_factor=torch.ones(1, device=device))

    def timed(fn):
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    train_s = timed(lambda: task.train_step(batch))
    task.backbone.eval()
    task.decoder.eval()
    render_s = timed(render)
    return {'train_rays_per_s': B * H * W / train_s, 'render_rays_per_s': H * W / render_s}


def prepare(args, cells):
    """What a run needs beyond the published layout: the realestate10k pairs file, the llff scene roots."""
    if args.dataset == 'realestate10k':
        pairs = os.path.join(args.data_dir, 'test', PAIRS_FILE)
        if not os.path.isfile(pairs):
            from mine.input_pipelines.realestate10k import make_test_pairs
            make_test_pairs.main([os.path.join(args.data_dir, 'test'), pairs, '--seed', '0'])
            print(f'made {pairs} (make_test_pairs --seed 0: the release\'s test_pairs.json was not there)')
    if args.dataset == 'llff':
        config = load_config('llff', overrides(args))
        folder = llff_image_folder(config)
        workspace = os.path.join(os.path.abspath(args.runs_dir), 'llff')
        for cell in cells:
            scene = os.path.basename(cell.data_dir)
            root = os.path.join(llff_root(workspace, scene), scene)
            os.makedirs(root, exist_ok=True)
            # The original validates on the scene's own views (images_<ratio>_val): the same folder.
            for link, target in (('sparse', 'sparse'), (folder, folder), (folder + '_val', folder)):
                path = os.path.join(root, link)
                if not os.path.lexists(path):
                    os.symlink(os.path.abspath(os.path.join(cell.data_dir, target)), path)


def runs(cells):
    """One cell per run folder (the one carrying the commands), keyed by all the rows it fills."""
    out = []
    for cell in cells:
        if cell.train is not None:
            out.append(copy.copy(cell))
        else:
            out[-1].key += '+' + cell.key.split('/')[-1]
    return out


def main(argv=None):
    args = parse_args(argv)
    try:
        extra = overrides(args)
        cells = build_cells(args, extra)
        missing = missing_data(args.dataset, args.data_dir, [os.path.basename(c.data_dir) for c in cells],
                               load_config(args.dataset, extra))
        if missing:
            raise tables.missing_error(missing, f'under {args.data_dir}: {DATASETS[args.dataset]["layout"]}',
                                       'scene folders')
        tables.missing_scenes(cells, DATASETS[args.dataset]['layout'])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    if not args.dry_run:
        prepare(args, cells)
    header = lambda rates: (f'plan of results/mine_{args.dataset} (estimates from rays/s measured here, {args.nproc} '
                            'process(es) per cell; realestate10k rows share one run):')
    write = lambda: tables.write_summary(reference(args.dataset), cells, read_metrics, args.out,
                                         extra=table_extra(args.dataset, extra))
    return tables.reproduce(args, runs(cells), lambda: measure_rates(args.dataset, extra), header, write)


def table_extra(dataset, extra):
    return {'dataset': dataset, 'config_file': f'mine/configs/{DATASETS[dataset]["yaml"]}', 'config_overrides': extra}


if __name__ == '__main__':
    main()
