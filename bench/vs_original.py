"""Times an original release and this port side by side, interleaved, and prints port/original ratios.

    python bench/vs_original.py PACKAGE --original TREE --python INTERPRETER [--threads 1 2] [--rounds 2]
        [--config NAME] [--quick] [--port_arg=--flag ...] [--out results.json] [--markdown table.md]

PACKAGE is mipnerf360 (multinerf), mipnerf (google/mipnerf), mine (vincentfung13/MINE) or inerf
(yenchenlin/iNeRF-public, pixelNeRF pose estimation). TREE is a checkout of the original and
INTERPRETER a Python that can run it (JAX for the first two, torch for the others); the original is
imported from TREE by a timing shim in bench/ (multinerf_jax.py, mipnerf_jax.py, mine_original.py,
inerf_original.py) and never copied here. The port is timed by its own bench/<package>.py with this
Python at the same config.

For each thread count and round, the original runs first and then the port (A B A B ...), so that drift
of a shared machine hits both; each is a fresh process pinned with `taskset -c 0` (1 thread) or
`taskset -c 0,1` (2), with OMP_NUM_THREADS and MKL_NUM_THREADS set and, for JAX, XLA_FLAGS
(--xla_cpu_multi_thread_eigen=false at 1 thread). Every metric is printed for both sides with the
ratio as a speed-up of the port: port/original for rates, original/port for times (> 1: the port is
faster). --quick shrinks the config (few steps, few rays) to check the plumbing end to end.
--out writes the rows as JSON, --markdown the table with the date, machine and thread counts.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from typing import Callable, Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


@dataclasses.dataclass
class Metric:
    key: str  # key in both sides' parsed results
    label: str
    higher_is_better: bool  # rays/s: True; seconds: False
    optional: bool = False  # rows only where both sides report it (the GEMM-rate shares)


@dataclasses.dataclass
class Package:
    original_name: str
    jax: bool  # the original runs under JAX (XLA_FLAGS pin its threads)
    configs: Dict[str, str]  # name -> description
    metrics: Callable[[str], List[Metric]]
    original_cmd: Callable[[str, str, bool], List[str]]  # (tree, config, quick) -> argv after the interpreter
    port_cmd: Callable[[str, bool], List[str]]  # (config, quick) -> argv after the project's Python
    parse_original: Callable[[str], dict]
    parse_port: Callable[[str], dict]


def last_json(text):
    """The last line of text that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError('no JSON line in the output:\n' + text[-2000:])


RAYS_METRICS = lambda config: [
    Metric('train_rays_per_s', 'train rays/s', True), Metric('render_rays_per_s', 'render rays/s', True),
    Metric('train_gemm_fraction', 'train step, fraction of the fp32 GEMM rate', True, optional=True),
    Metric('render_gemm_fraction', 'render, fraction of the fp32 GEMM rate', True, optional=True)]


def with_gemm_fractions(original, port):
    """original with the port's GEMM-rate fractions carried over in proportion to rays/s: both sides
    run the same layers per ray, and the port's process measured the GEMM rate in the same round."""
    original = dict(original)
    for kind in ('train', 'render'):
        key = f'{kind}_gemm_fraction'
        if key in port and key not in original:
            original[key] = port[key] * original[f'{kind}_rays_per_s'] / port[f'{kind}_rays_per_s']
    return original

# ----------------------------------------------------------------------------------------- mipnerf360
M360_SMALL = ('PropMLP.net_depth=2', 'PropMLP.net_width=64', 'NerfMLP.net_depth=4', 'NerfMLP.net_width=128')


def m360_sizes(quick):
    """(train rays, render rays, steps)."""
    return (256, 1024, 1) if quick else (1024, 4096, 2)


def m360_original(tree, config, quick):
    batch, render, steps = m360_sizes(quick)
    binds = [a for b in (M360_SMALL if config == 'small' else ()) for a in ('--bind', b.replace('=', ' = '))]
    return [os.path.join(BENCH, 'multinerf_jax.py'), tree, '--gin', 'configs/360.gin', '--batch', str(batch),
            '--render_rays', str(render), '--steps', str(steps), '--json', *binds]


def m360_port(config, quick):
    batch, render, steps = m360_sizes(quick)
    binds = [a for b in (M360_SMALL if config == 'small' else ()) for a in ('--bind', b)]
    # bench/mipnerf360.py times the render over max(1, steps // 2) calls after a warm-up.
    return [os.path.join(BENCH, 'mipnerf360.py'), '--gin', 'mipnerf360/configs/360.gin', '--batch', str(batch),
            '--render_rays', str(render), '--steps', str(steps), '--json', *binds]


# -------------------------------------------------------------------------------------------- mipnerf
def mipnerf_sizes(quick):
    return (128, 256, 1) if quick else (1024, 2048, 1)


def mipnerf_original(tree, config, quick):
    batch, render, steps = mipnerf_sizes(quick)
    binds = [a for b in MIPNERF_BINDS[config] for a in ('--bind', b)]
    return [os.path.join(BENCH, 'mipnerf_jax.py'), tree, '--gin', 'configs/blender.gin', '--batch', str(batch),
            '--render_rays', str(render), '--steps', str(steps), '--json', *binds]


def mipnerf_port(config, quick):
    batch, render, steps = mipnerf_sizes(quick)
    binds = [a for b in MIPNERF_BINDS[config] for a in ('--bind', b)]
    return [os.path.join(BENCH, 'mipnerf.py'), '--gin', 'configs/blender.gin', '--batch', str(batch),
            '--render_rays', str(render), '--steps', str(steps), '--render_steps', str(steps), '--json', *binds]


MIPNERF_BINDS = {'paper': (), 'small': ('MLP.net_depth=4', 'MLP.net_width=128')}


# ----------------------------------------------------------------------------------------------- mine
def mine_planes(config):
    return {'paper': '32,64', 'n32': '32', 'n64': '64'}[config]


def mine_metrics(config, quick=False):
    planes = '8' if quick else mine_planes(config)
    return [m for n in planes.split(',') for m in (
        Metric(f'predict_s_N{n}', f'MPI prediction s/image, N={n}', False),
        Metric(f'render_s_N{n}', f'novel view s/image, N={n}', False))]


def mine_args(config, quick):
    if quick:  # ResNet-18 at 256x128 keeps the check short
        return ['--size', '256x128', '--planes', '8', '--steps', '1', '--num_layers', '18']
    return ['--size', '384x256', '--planes', mine_planes(config), '--steps', '2', '--num_layers', '50']


def mine_original(tree, config, quick):
    return [os.path.join(BENCH, 'mine_original.py'), tree, *mine_args(config, quick), '--json']


def mine_port(config, quick):
    return [os.path.join(BENCH, 'mine.py'), '--device', 'cpu', *mine_args(config, quick), '--json']


# ---------------------------------------------------------------------------------------------- inerf
def inerf_args(config, quick):
    # One step of 1024 rays takes about a minute on a 2-core CPU: one timed step (after a warm-up one).
    rays = '64' if quick else {'paper': '1024', 'rays256': '256'}[config]
    return ['--steps', '1', '--n_steps', '300', '--rays', rays]


def inerf_original(tree, config, quick):
    return [os.path.join(BENCH, 'inerf_original.py'), tree, *inerf_args(config, quick), '--json']


def inerf_port(config, quick):
    return [os.path.join(BENCH, 'inerf.py'), '--pixelnerf', *inerf_args(config, quick), '--json']


INERF_METRICS = lambda config: [Metric('s_per_step', 's/step', False),
                                Metric('s_per_estimate', 's per pose estimate (300 steps)', False)]

PACKAGES = {
    'mipnerf360': Package(
        'google-research/multinerf', True,
        {'small': '360.gin with NerfMLP 4x128 and PropMLP 2x64; 1024-ray train step, 4096-ray render',
         'full': '360.gin; 1024-ray train step, 4096-ray render'},
        RAYS_METRICS, m360_original, m360_port, last_json, last_json),
    'mipnerf': Package(
        'google/mipnerf', True,
        {'paper': 'blender.gin (MLP 8x256, 128 + 128 samples); 1024-ray train step, 2048-ray render',
         'small': 'blender.gin with MLP 4x128; 1024-ray train step, 2048-ray render'},
        RAYS_METRICS, mipnerf_original, mipnerf_port, last_json, last_json),
    'mine': Package(
        'vincentfung13/MINE', False,
        {'paper': 'params_realestate.yaml model (ResNet-50), 384x256, N=32 and N=64, eval mode, one image',
         'n32': 'as paper, N=32 only', 'n64': 'as paper, N=64 only'},
        mine_metrics, mine_original, mine_port, last_json, last_json),
    'inerf': Package(
        'yenchenlin/iNeRF-public', False,
        {'paper': 'pixelNeRF srn.conf (ResNet-34 encoder, random weights), 128x128 source and target, '
                  '1024 random rays per step, Adam on the raw pose (eval/pose_estimation.py)',
         'rays256': 'as paper with 256 rays per step (a shorter check)'},
        INERF_METRICS, inerf_original, inerf_port, last_json, last_json),
}


# --------------------------------------------------------------------------------------------- running
def thread_env(threads, jax):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    if jax:
        eigen = 'false' if threads == 1 else 'true'
        env['XLA_FLAGS'] = f'--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}'
    return env


def pinned(argv, threads, cpus=None):
    """argv under taskset on `cpus` (default: the first `threads` CPUs; unchanged where taskset is missing)."""
    cpus = cpus or ','.join(str(i) for i in range(threads))
    if subprocess.run(['which', 'taskset'], capture_output=True).returncode != 0:
        return argv
    return ['taskset', '-c', cpus, *argv]


def run_side(argv, threads, jax, parse, timeout, label, cpus=None):
    """Runs argv pinned; returns (parsed result, wall seconds) or raises with the output's tail."""
    import time
    start = time.perf_counter()
    proc = subprocess.run(pinned(argv, threads, cpus), env=thread_env(threads, jax), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f'{label} failed (exit {proc.returncode}): {" ".join(argv)}\n'
                           f'{(proc.stdout + proc.stderr)[-3000:]}')
    return parse(proc.stdout), wall


def ratio(metric, original, port):
    """Speed-up of the port: > 1 when the port is faster."""
    o, p = original[metric.key], port[metric.key]
    return p / o if metric.higher_is_better else o / p


def machine():
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        model = re.search(r'^Model name:\s*(.+)$', out, re.M)
        cpus = re.search(r'^CPU\(s\):\s*(\d+)$', out, re.M)
        return f'{model.group(1).strip() if model else platform.processor()}, {cpus.group(1) if cpus else "?"} CPUs'
    except OSError:
        return platform.processor() or platform.machine()


def fmt(value):
    if value >= 100:
        return f'{value:,.0f}'
    if value >= 1:
        return f'{value:.2f}'
    return f'{value:.3g}'


def shown(command, report):
    """A command of the report as the tables print it: the trees and interpreters of this machine as
    placeholders, the project's files relative to its root."""
    port_python = report.get('port_python') or report['port_cmd'].split(' ')[0]
    return (command.replace(report['python'], "<original's python>").replace(port_python, 'python')
            .replace(report['tree'], '<original tree>').replace(ROOT + os.sep, ''))


def markdown(report):
    """The rows as a Markdown table with the header lines (date, machine, package, config)."""
    description = 'shrunk sizes, a plumbing check only' if report['config'].endswith('(quick)') else \
        report['config_description']
    lines = [f'{report["package"]} vs {report["original"]}, config `{report["config"]}` ({description}); '
             f'{report["date"]}, {report["machine"]}; threads {", ".join(map(str, report["threads"]))} '
             f'(taskset -c {" / ".join(str(c) for c in report.get("cpus", {}).values())}), {report["rounds"]} rounds, original then port in each. '
             f'Ratio = speed-up of the port (> 1: port faster).', '',
             f'original: `{shown(report["original_cmd"], report)}`', '',
             f'port: `{shown(report["port_cmd"], report)}`', '',
             '| threads | round | metric | original | port | port / original |', '|---|---|---|---|---|---|']
    for row in report['rows']:
        lines.append(f'| {row["threads"]} | {row["round"]} | {row["metric"]} | {fmt(row["original"])} | '
                     f'{fmt(row["port"])} | {row["ratio"]:.2f}x |')
    if report.get('medians'):
        lines += ['', 'Median over the rounds: ' + '; '.join(
            f'{m["threads"]} thread{"s" if m["threads"] > 1 else ""} {m["metric"]} {m["ratio"]:.2f}x'
            for m in report['medians']) + '.']
    return '\n'.join(lines)


def compare(package, name, tree, python, threads_list, rounds, config, quick, port_python, timeout,
            runner=run_side, log=print, port_args=(), cpus=None):
    """Runs the interleaved rounds; returns the report dict (rows of threads, round, metric, values, ratio)."""
    metrics = mine_metrics(config, quick) if name == 'mine' else package.metrics(config)
    report = {'package': name, 'original': package.original_name, 'config': config + (' (quick)' if quick else ''),
              'config_description': package.configs[config], 'tree': tree, 'python': python,
              'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
              'machine': machine(), 'threads': threads_list, 'rounds': rounds, 'rows': [], 'raw': [],
              'port_python': port_python,
              'original_cmd': ' '.join([python, *package.original_cmd(tree, config, quick)]),
              'port_cmd': ' '.join([port_python, *package.port_cmd(config, quick), *port_args])}
    cpus = dict(zip(threads_list, cpus or ()))
    report['cpus'] = {t: cpus.get(t) or ','.join(map(str, range(t))) for t in threads_list}
    for threads in threads_list:
        pin = {'cpus': cpus[threads]} if threads in cpus else {}
        for r in range(1, rounds + 1):
            load_before = os.getloadavg()[0]
            original, o_wall = runner([python, *package.original_cmd(tree, config, quick)], threads, package.jax,
                                      package.parse_original, timeout, 'original', **pin)
            port, p_wall = runner([port_python, *package.port_cmd(config, quick), *port_args], threads, False,
                                  package.parse_port, timeout, 'port', **pin)
            original = with_gemm_fractions(original, port)
            report['raw'].append({'threads': threads, 'round': r, 'original': original, 'port': port,
                                  'original_wall_s': o_wall, 'port_wall_s': p_wall,
                                  'loadavg_1min_before': load_before})
            for m in (m for m in metrics if not m.optional or (m.key in original and m.key in port)):
                row = {'threads': threads, 'round': r, 'metric': m.label, 'key': m.key,
                       'original': original[m.key], 'port': port[m.key], 'ratio': ratio(m, original, port)}
                report['rows'].append(row)
                log(f'threads {threads} round {r}: {m.label}: original {fmt(row["original"])}, '
                    f'port {fmt(row["port"])}, port/original {row["ratio"]:.2f}x')
    report['medians'] = medians(report['rows'])
    return report


def medians(rows):
    """[{threads, metric, ratio}]: the median port/original ratio over the rounds of each thread count and metric."""
    groups = {}
    for row in rows:
        groups.setdefault((row['threads'], row['metric']), []).append(row['ratio'])
    return [{'threads': t, 'metric': m, 'ratio': statistics.median(v), 'rounds': len(v)}
            for (t, m), v in groups.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('package', choices=sorted(PACKAGES))
    parser.add_argument('--original', required=True, help="checkout of the original's tree")
    parser.add_argument('--python', required=True, help='interpreter that runs the original')
    parser.add_argument('--port_python', default=sys.executable, help='interpreter of the port (default: this one)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--config', default=None, help='named config (default: the first of the package)')
    parser.add_argument('--quick', action='store_true', help='few steps and rays: checks the plumbing only')
    parser.add_argument('--cpus', nargs='+', default=None,
                        help='taskset CPU list per thread count (default 0 and 0,1; e.g. --cpus 1 0,1 keeps the '
                             '1-thread runs off CPU 0 where another job is pinned)')
    parser.add_argument('--port_arg', action='append', default=[],
                        help="extra argument of the port's bench script (repeatable; e.g. --port_arg=--compile)")
    parser.add_argument('--timeout', type=float, default=1800, help='seconds per side per round')
    parser.add_argument('--out', help='write the report as JSON here')
    parser.add_argument('--markdown', help='write the Markdown table here')
    args = parser.parse_args(argv)
    package = PACKAGES[args.package]
    config = args.config or next(iter(package.configs))
    if config not in package.configs:
        parser.error(f'--config for {args.package}: one of {", ".join(package.configs)}')
    if not os.path.isdir(args.original):
        parser.error(f'--original {args.original}: not a directory')
    report = compare(package, args.package, os.path.abspath(args.original), args.python, args.threads,
                     args.rounds, config, args.quick, args.port_python, args.timeout, port_args=args.port_arg,
                     cpus=args.cpus)
    table = markdown(report)
    print()
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')
    return report


if __name__ == '__main__':
    main()
