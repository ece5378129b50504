"""The GPU acceptance run: every package's paper config on one GPU, fp32 / TF32 / bf16 (/ compiled).

    python bench/gpu_check.py [--packages mipnerf360,mipnerf,depth_mipnerf,mine,inerf] [--steps 20]
        [--compare_rays 1024] [--no_compile] [--multinerf TREE] [--out results/gpu_check.json]
    python bench/gpu_check.py --device cpu --demo --steps 2     # a dry run of the script on the CPU

For each package (its bench/<pkg>.py `gpu_check_case`, see bench/gpu_case.py) and precision:
  1. the first training step on the GPU from the same weights and batch as the same step in float32
     on the CPU, at --compare_rays rays with deterministic sampling: relative differences of the
     loss and the gradient norm, within a tolerance per precision;
  2. --steps training steps at the paper batch: rays/s, peak memory, MFU (FLOPs per ray from the
     layer sizes x rays/s over the card's peak for that precision);
  3. one render of the case's render rays (64k for the NeRF packages): rays/s.
With --multinerf TREE (google-research/multinerf, unpacked outside this repository) it also times
multinerf's own JAX train step at 360.gin on the same card (bench/multinerf_jax.py), so the speed-up
over the original is a ratio from one run. Everything goes to --out as JSON and is printed as a
table. Needs no network: gin-config and pyhocon, if the machine lacks them, are imported from the wheels
`make gpu-wheels` puts in .whl/ (carried with the tree; see README "Running on a GPU").
"""

import argparse
import datetime
import glob
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback

# This file lives in bench/, whose scripts share names with the packages: import from the root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or '.') != os.path.join(ROOT, 'bench')]
# Pure-Python wheels carried to a machine that lacks them (`make gpu-wheels`: gin-config, pyhocon)
# import straight from the .whl files, after whatever is installed; the child processes (one per
# package, and multinerf's JAX timing) get them through PYTHONPATH.
CARRIED_WHEELS = sorted(glob.glob(os.path.join(ROOT, '.whl', '*.whl')))
sys.path += CARRIED_WHEELS
os.environ['PYTHONPATH'] = os.pathsep.join(
    [p for p in [os.environ.get('PYTHONPATH', '')] if p] + CARRIED_WHEELS)

import torch  # noqa: E402

ROWS_MARK = 'gpu_check rows: '
PACKAGES = ('mipnerf360', 'mipnerf', 'depth_mipnerf', 'mine', 'inerf')
# Relative tolerance of the GPU's first-step loss and gradient norm against float32 on the CPU.
TOLERANCE = {'fp32': 1e-3, 'tf32': 2e-2, 'bf16': 6e-2}
# Dense peak FLOP/s by card and precision (datasheet figures; fp32 is without tensor cores).
PEAK_FLOPS = {
    'H200': {'fp32': 67e12, 'tf32': 495e12, 'bf16': 989e12},
    'H100': {'fp32': 67e12, 'tf32': 495e12, 'bf16': 989e12},
    'A100': {'fp32': 19.5e12, 'tf32': 156e12, 'bf16': 312e12},
    'L40S': {'fp32': 91.6e12, 'tf32': 183e12, 'bf16': 362e12},
    'RTX 4090': {'fp32': 82.6e12, 'tf32': 82.6e12, 'bf16': 165e12},
}


def peak_flops(device, precision):
    """The card's dense peak FLOP/s at precision, or None when the card is not in PEAK_FLOPS."""
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    return next((v[precision] for k, v in PEAK_FLOPS.items() if k in name), None)


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def to_floats(stats):
    """{name: float} of a step's 0-dim tensors (one host copy)."""
    names = sorted(stats)
    values = torch.stack([stats[k].detach().float().reshape(()) for k in names]).cpu().tolist()
    return dict(zip(names, values))


def first_step(bench, device, precision, compare_rays, demo):
    """The first training step's statistics at compare_rays rays (deterministic sampling)."""
    case = bench.gpu_check_case(device, precision, paper=not demo, batch_rays=compare_rays, seed=0)
    return to_floats(case.train_step())


def relative_differences(test, reference):
    """{name: |test - reference| / max(|reference|, 1e-12)} over the names both have."""
    return {k: abs(test[k] - reference[k]) / max(abs(reference[k]), 1e-12)
            for k in reference if k in test}


def timed_run(bench, device, precision, compiled, steps, demo):
    """rays/s of training and rendering, peak memory and MFU at the paper batch."""
    case = bench.gpu_check_case(device, precision, paper=not demo, compiled=compiled, seed=0)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):  # warm-up (and compilation)
        case.train_step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        stats = case.train_step()
    synchronize(device)
    train_s = (time.perf_counter() - start) / steps
    finite = all(v == v and abs(v) != float('inf') for v in to_floats(stats).values())
    case.render()
    synchronize(device)
    start = time.perf_counter()
    case.render()
    synchronize(device)
    render_s = time.perf_counter() - start
    train_rays_per_s = case.train_rays / train_s
    peak = peak_flops(device, precision)
    return {
        'config': case.name,
        'train_rays': case.train_rays,
        'train_rays_per_s': train_rays_per_s,
        'render_rays': case.render_rays,
        'render_rays_per_s': case.render_rays / render_s,
        'peak_memory_gib': (torch.cuda.max_memory_allocated(device) / 2**30
                            if device.type == 'cuda' else None),
        'flops_per_ray_train': case.flops_per_ray_train,
        'train_tflops': case.flops_per_ray_train * train_rays_per_s / 1e12,
        'mfu': None if peak is None else case.flops_per_ray_train * train_rays_per_s / peak,
        'losses_finite_after_steps': finite,
    }


def check_package(name, device, args):
    """Every precision (and compiled variant) of one package: a list of result rows."""
    bench = importlib.import_module(f'bench.{name}')
    torch.manual_seed(0)
    reference = first_step(bench, torch.device('cpu'), 'fp32', args.compare_rays, args.demo)
    rows = []
    variants = [(p, False) for p in ('fp32', 'tf32', 'bf16')]
    if not args.no_compile:
        variants += [('tf32', True), ('bf16', True)]
    for precision, compiled in variants:
        row = {'package': name, 'precision': precision, 'compiled': compiled}
        try:
            if not compiled:
                diffs = relative_differences(
                    first_step(bench, device, precision, args.compare_rays, args.demo), reference)
                row['first_step_rel_diff'] = diffs
                row['first_step_ok'] = all(v <= TOLERANCE[precision] for v in diffs.values())
            row.update(timed_run(bench, device, precision, compiled, args.steps, args.demo))
        except Exception as error:  # one failing variant must not hide the others' figures
            row['error'] = f'{type(error).__name__}: {error}'
            traceback.print_exc()
        print(format_row(row), flush=True)
        rows.append(row)
    return rows


def format_row(row):
    """One line of the printed table."""
    head = f"{row['package']:<14} {row['precision']:<5} {'compiled' if row['compiled'] else 'eager':<8}"
    if 'error' in row:
        return f'{head} ERROR {row["error"][:200]}'
    diffs = row.get('first_step_rel_diff')
    check = ('' if diffs is None else
             f" first step {'ok' if row['first_step_ok'] else 'MISMATCH'} "
             f"(max rel diff {max(diffs.values()):.1e})")
    mfu = '' if row['mfu'] is None else f", MFU {100 * row['mfu']:.1f}%"
    memory = '' if row['peak_memory_gib'] is None else f", peak {row['peak_memory_gib']:.1f} GiB"
    return (f"{head} train {row['train_rays_per_s']:>10,.0f} rays/s ({row['train_tflops']:.1f} TFLOP/s"
            f"{mfu}){memory}; render {row['render_rays_per_s']:>10,.0f} rays/s;{check}")


def multinerf_rows(tree, steps, device):
    """multinerf's own train step and render at 360.gin on this card (bench/multinerf_jax.py)."""
    script = os.path.join(ROOT, 'bench', 'multinerf_jax.py')
    result = subprocess.run([sys.executable, script, tree, '--steps', str(steps), '--json'],
                            capture_output=True, text=True)
    if result.returncode:
        return [{'package': 'multinerf (JAX)', 'error': result.stderr[-2000:]}]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row.update({'package': 'multinerf (JAX)', 'precision': 'jax default', 'compiled': True})
    peak = peak_flops(device, 'tf32')
    row['mfu'] = None if peak is None else row['train_tflops'] * 1e12 / peak
    return [row]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--packages', default=','.join(PACKAGES))
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--compare_rays', type=int, default=1024)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--demo', action='store_true', help='the demo configs instead of the paper ones')
    parser.add_argument('--no_compile', action='store_true')
    parser.add_argument('--multinerf', default=None, help='an unpacked google-research/multinerf')
    parser.add_argument('--out', default=os.path.join(ROOT, 'results', 'gpu_check.json'))
    parser.add_argument('--one', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from common import device as device_utils
    device = device_utils.resolve_device(args.device, '--device')
    from absl import flags
    flags.FLAGS(['gpu_check'])  # the gin packages' absl flags, parsed empty
    card = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    if not args.one:
        print(f'gpu_check on {card}, torch {torch.__version__}, {args.steps} steps, '
              f'{"demo" if args.demo else "paper"} configs', flush=True)
    if args.one:
        # A child process: one package (gin's registry is global and the packages share names).
        print(ROWS_MARK + json.dumps(check_package(args.one, device, args)), flush=True)
        return
    rows = []
    for name in args.packages.split(','):
        command = [sys.executable, os.path.abspath(__file__), '--one', name] + sys.argv[1:]
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        lines = [line for line in child.stdout.splitlines() if line.startswith(ROWS_MARK)]
        print('\n'.join(line for line in child.stdout.splitlines() if not line.startswith(ROWS_MARK)))
        if child.returncode or not lines:
            rows.append({'package': name, 'error': f'the check of {name} exited with {child.returncode}'})
            continue
        rows += json.loads(lines[-1][len(ROWS_MARK):])
    if args.multinerf:
        rows += multinerf_rows(args.multinerf, args.steps, device)
        print(json.dumps(rows[-1]), flush=True)
    report = {
        'date': datetime.date.today().isoformat(), 'device': card, 'torch': torch.__version__,
        'cuda': torch.version.cuda, 'steps': args.steps, 'compare_rays': args.compare_rays,
        'configs': 'demo' if args.demo else 'paper', 'tolerances': TOLERANCE, 'rows': rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {args.out}')
    failed = [r for r in rows if 'error' in r or r.get('first_step_ok') is False]
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
