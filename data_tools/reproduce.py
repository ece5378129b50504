"""Reproducing a paper's table: one run folder per cell, resumable, written beside the published numbers.

A paper's `scripts/reproduce.py` lists its cells (scene, and scale or view count): the commands that
train and evaluate one, where its metrics JSON lands, and the rays it costs. `reproduce` then
- refuses before running anything when a scene folder is missing, naming each and the layout expected;
- with dry_run, prints the plan with a time estimate per cell from rays/s measured on this machine;
- trains (the trainers resume from their last checkpoint, so a killed reproduction continues) and
  evaluates every cell whose metrics file is not there yet, `jobs` cells side by side (one device
  each, CUDA_VISIBLE_DEVICES) and each over `nproc` processes (torchrun);
- records per cell the command lines, hours, peak host memory, hardware and commit (reproduce.json);
- writes results/<paper>.md and .json from the finished run folders (`summarize` alone rebuilds them).
The published numbers live in results/published/<paper>.json with their source.
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import threading
import time

import torch

RECORD = 'reproduce.json'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Cell:
    """One cell of a table: a run folder trained and evaluated by two commands."""
    key: str  # unique name, e.g. 'garden' or 'lego/scale_1'
    labels: dict  # the row's columns, e.g. {'scene': 'garden'} or {'scene': 'lego', 'views': 3}
    data_dir: str  # the scene folder the commands read
    run_dir: str  # the run folder (checkpoints, metrics, reproduce.json)
    train: list  # argv after `python` of the training command (None: nothing to train)
    eval: list  # argv after `python` of the evaluation command
    metrics_file: str  # the JSON the evaluation writes; its presence marks the cell done
    train_rays: float = 0.  # rays the training run traces (steps x batch)
    eval_rays: float = 0.  # rays the evaluation renders


def published(name):
    """results/published/<name>.json: {'paper', 'source', 'metrics': [...], 'rows': {key: {metric: value}},
    'mean': {metric: value}} (rows or mean may be empty where the paper gives none)."""
    with open(os.path.join(ROOT, 'results', 'published', f'{name}.json')) as f:
        return json.load(f)


def missing_error(missing, expected, what='scene data'):
    """The FileNotFoundError of missing `what`: each missing path, then `expected` (what goes where)."""
    return FileNotFoundError(f'missing {what} (nothing was run):\n' + '\n'.join(f'  {m}' for m in missing)
                             + f'\nexpected {expected}')


def missing_scenes(cells, layout):
    """Raises FileNotFoundError naming every missing scene folder and the layout expected there."""
    missing = sorted({c.data_dir for c in cells if not os.path.isdir(c.data_dir)})
    if missing:
        raise missing_error(missing, f'in each: {layout}', 'scene folders')


def status(cell):
    """'done' (metrics written), 'partial' (run folder exists) or 'new'."""
    if os.path.isfile(cell.metrics_file):
        return 'done'
    return 'partial' if os.path.isdir(cell.run_dir) else 'new'


def plan(cells, rates):
    """Lines of the dry-run plan: each cell's status and estimated hours at rates
    {'train_rays_per_s', 'render_rays_per_s'} measured here."""
    lines, total = [], 0.
    for cell in cells:
        hours = 0. if status(cell) == 'done' else (
            cell.train_rays / rates['train_rays_per_s'] + cell.eval_rays / rates['render_rays_per_s']) / 3600
        total += hours
        lines.append(f'{cell.key:28s} {status(cell):8s} ~{hours:.2f} h  python {" ".join(cell.train or cell.eval)}')
    lines.append(f'total ~{total:.2f} h at {rates["train_rays_per_s"]:.0f} train / '
                 f'{rates["render_rays_per_s"]:.0f} render rays/s ({hardware()})')
    return lines


def hardware():
    """This machine's accelerator, or its CPU."""
    if torch.cuda.is_available():
        return f'{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}'
    return f'CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)'


def commit():
    """The repository's HEAD commit (with '+dirty' when files differ), or None outside git."""
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head.stdout.strip() + ('+dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


def run_command(argv, device_index=None, nproc=1):
    """Runs `python argv` (torchrun over nproc processes when nproc > 1); -> (seconds, peak host RSS in MiB)."""
    prefix = [sys.executable] if nproc <= 1 else [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                                                  f'--nproc_per_node={nproc}']
    env = dict(os.environ)
    if device_index is not None:
        env['CUDA_VISIBLE_DEVICES'] = str(device_index)
    start = time.monotonic()
    process = subprocess.Popen(prefix + list(argv), cwd=ROOT, env=env)
    _, code, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(code)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, prefix + list(argv))
    return time.monotonic() - start, usage.ru_maxrss / 1024.


def run_cell(cell, device_index=None, nproc=1):
    """Trains (resuming) and evaluates one cell; adds its hours and peak memory to reproduce.json."""
    os.makedirs(cell.run_dir, exist_ok=True)
    record_path = os.path.join(cell.run_dir, RECORD)
    record = {'train_seconds': 0., 'eval_seconds': 0., 'peak_host_memory_mib': 0.}
    if os.path.isfile(record_path):
        with open(record_path) as f:
            record.update(json.load(f))
    for phase, argv in (('train', cell.train), ('eval', cell.eval)):
        if argv is None:
            continue
        seconds, peak = run_command(argv, device_index, nproc if phase == 'train' else 1)
        record[f'{phase}_seconds'] += seconds
        record['peak_host_memory_mib'] = max(record['peak_host_memory_mib'], peak)
        record.update({f'{phase}_command': ' '.join(['python'] + list(argv)), 'hardware': hardware(),
                       'commit': commit(), 'nproc': nproc})
        with open(record_path + '.tmp', 'w') as f:
            json.dump(record, f, indent=1)
        os.replace(record_path + '.tmp', record_path)


def run_cells(cells, jobs=1, nproc=1):
    """Runs every unfinished cell, `jobs` at a time (job i on device i); the first failure is raised."""
    pending = [c for c in cells if status(c) != 'done']
    errors, lock = [], threading.Lock()

    def worker(index):
        while True:
            with lock:
                if not pending or errors:
                    return
                cell = pending.pop(0)
            print(f'== {cell.key}: {status(cell)}', flush=True)
            try:
                run_cell(cell, index if jobs > 1 else None, nproc)
            except Exception as e:  # reported after the other jobs stop
                with lock:
                    errors.append((cell.key, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        key, error = errors[0]
        raise RuntimeError(f'cell {key} failed: {error} (rerun the same command to resume)') from error


def summarize(reference, cells, read_metrics, out_stem, extra=None):
    """Writes out_stem.md and .json from the finished cells: each beside its published numbers,
    the means, and each cell's protocol, config, commit, hardware, hours and peak memory.

    read_metrics(cell) -> ({metric: value}, protocol dict) of a finished cell.
    """
    names = reference['metrics']
    rows = []
    for cell in cells:
        row = {'key': cell.key, **cell.labels, 'published': reference['rows'].get(cell.key), 'status': status(cell)}
        if row['status'] == 'done':
            ours, protocol = read_metrics(cell)
            row.update(ours={m: ours.get(m) for m in names}, protocol=protocol)
            record = os.path.join(cell.run_dir, RECORD)
            if os.path.isfile(record):
                with open(record) as f:
                    row['run'] = json.load(f)
        rows.append(row)
    done = [r for r in rows if r['status'] == 'done']
    mean = {m: _mean([r['ours'][m] for r in done]) for m in names}
    table = {'paper': reference['paper'], 'source': reference['source'], 'metrics': names, 'rows': rows,
             'mean': mean, 'published_mean': reference.get('mean'), 'finished': f'{len(done)} of {len(rows)}',
             **(extra or {})}
    os.makedirs(os.path.dirname(os.path.abspath(out_stem)), exist_ok=True)
    with open(out_stem + '.json', 'w') as f:
        json.dump(table, f, indent=1)
    with open(out_stem + '.md', 'w') as f:
        f.write(markdown(table))
    return table


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _cell(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'


def markdown(table):
    """The table as markdown: one line per cell, `published / ours` per metric, then the mean."""
    names, labels = table['metrics'], [k for k in table['rows'][0] if k not in
                                       ('key', 'published', 'status', 'ours', 'protocol', 'run')]
    lines = [f"# {table['paper']}: reproduced beside the published numbers", '',
             f"Published: {table['source']}. Finished cells: {table['finished']}.", '',
             '| ' + ' | '.join(labels + [f'{m} (paper / ours)' for m in names] + ['train h', 'peak host MiB']) + ' |',
             '|' + '---|' * (len(labels) + len(names) + 2)]
    for row in table['rows']:
        paper, ours, run = row['published'] or {}, row.get('ours') or {}, row.get('run') or {}
        lines.append('| ' + ' | '.join([str(row[k]) for k in labels]
                                       + [f'{_cell(paper.get(m))} / {_cell(ours.get(m))}' for m in names]
                                       + [_cell(run.get('train_seconds', 0) / 3600 if run else None, 2),
                                          _cell(run.get('peak_host_memory_mib'), 0)]) + ' |')
    published_mean = table.get('published_mean') or {}
    lines.append('| ' + ' | '.join(['**mean**'] + [''] * (len(labels) - 1)
                                   + [f'{_cell(published_mean.get(m))} / {_cell(table["mean"][m])}' for m in names]
                                   + ['', '']) + ' |')
    protocols = {json.dumps(r['protocol'], sort_keys=True) for r in table['rows'] if r.get('protocol')}
    for protocol in sorted(protocols):
        lines += ['', 'Protocol:', '', '```json', json.dumps(json.loads(protocol), indent=1), '```']
    runs = [r['run'] for r in table['rows'] if r.get('run')]
    if runs:
        lines += ['', f"Hardware: {runs[0].get('hardware')}; commit {runs[0].get('commit')}; "
                      f"train command of the first cell: `{runs[0].get('train_command')}`"]
    return '\n'.join(lines) + '\n'


def make_parser(description, data_dir, out):
    """The flags every paper's reproduce command takes (the Makefile passes DATA_DIR, RUNS_DIR,
    SCENES, DRY_RUN, JOBS, NPROC and ARGS through them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--data_dir', default=data_dir, help='the folder holding the scene folders')
    parser.add_argument('--runs_dir', required=True, help='one run folder per cell goes here')
    parser.add_argument('--out', default=out, help='results/<name> (.md and .json are written)')
    parser.add_argument('--scenes', default='', help='comma-separated subset of the scenes (default: all)')
    parser.add_argument('--dry_run', action='store_true', help='print the plan and time estimates; run nothing')
    parser.add_argument('--jobs', type=int, default=1, help='cells run side by side, one device each')
    parser.add_argument('--nproc', type=int, default=1, help='processes (devices) per cell (torchrun)')
    parser.add_argument('--bind', action='append', default=[], help="extra setting for every cell's commands")
    return parser


def selected(scenes, subset):
    """The scenes named in the comma-separated subset (all when empty); an unknown name is an error."""
    wanted = [s for s in subset.split(',') if s]
    unknown = sorted(set(wanted) - set(scenes))
    if unknown:
        raise ValueError(f'--scenes / SCENES: unknown {unknown}; the table has {list(scenes)}')
    return [s for s in scenes if not wanted or s in wanted]


def relative_to_root(path):
    """path relative to the repository when inside it (for messages)."""
    return os.path.relpath(path, ROOT) if os.path.abspath(path).startswith(ROOT + os.sep) else path


def write_summary(reference, cells, read_metrics, out, extra=None):
    """summarize, then prints the markdown table and where it went. Returns the table."""
    table = summarize(reference, cells, read_metrics, out, extra)
    print(markdown(table), end='')
    print(f'wrote {out}.md and {out}.json')
    return table


def reproduce(args, cells, measure_rates, plan_header, write_table):
    """The tail of every reproduce command, its data checked: the plan or the runs, then the table.

    Dry run (args.dry_run): prints plan_header(rates) and the plan from rates = measure_rates(), and
    returns None. Otherwise runs the cells (args.jobs, args.nproc); a failed cell exits naming it (its
    own output above says why; the same command resumes), else returns write_table().
    """
    if args.dry_run:
        rates = measure_rates()
        print(plan_header(rates))
        print('\n'.join(plan(cells, rates)))
        return None
    try:
        run_cells(cells, args.jobs, args.nproc)
    except RuntimeError as error:
        sys.exit(f'error: {error}')
    return write_table()
