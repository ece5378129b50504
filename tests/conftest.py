"""Shared pytest options and set-up for the whole suite."""

import pathlib

import pytest
import torch

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption(
        "--golden-dir",
        default=str(GOLDEN_DIR),
        help="folder of golden cases (one sub-folder per package, each with a manifest.json)",
    )


GIN_PACKAGES = ("mipnerf360", "mipnerf", "depth_mipnerf", "mine", "inerf")


def pytest_collection_modifyitems(config, items):
    """Refuses to run two paper packages' tests in one process (gin's registry is global)."""
    root = pathlib.Path(__file__).parent
    packages = set()
    for item in items:
        parts = pathlib.Path(item.fspath).relative_to(root).parts
        if len(parts) > 1 and parts[0] in GIN_PACKAGES:
            packages.add(parts[0])
    if len(packages) > 1:
        raise pytest.UsageError(
            f"tests of {sorted(packages)} in one process: their gin configurables share names "
            "(Config, MLP), so run one package per pytest process, as `make test` does")


@pytest.fixture
def low_precision_flags():
    """TF32 on and float32 matmul precision 'medium', as Config.use_tf32 sets them on a GPU
    (on a CPU they leave float32 matmuls as they are; the tests that use this run on CUDA too)."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    yield
    torch.backends.cuda.matmul.allow_tf32 = before[0]
    torch.set_float32_matmul_precision(before[1])


def pytest_configure(config):
    # One intra-op thread: the CI machine has two cores and tests run in a single process.
    torch.set_num_threads(1)


def folder_digest(path):
    """{relative path: sha256} of every file under `path` ({} if missing): equal before and after
    an input that must be refused without touching the disk."""
    import hashlib

    root = pathlib.Path(path)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_reproduce(package, tmp, *variables, popen=False):
    """`make reproduce-<package> RUNS_DIR=tmp/runs VARIABLES...` from the repository root, without a
    reinstall and with one intra-op thread (as every test). popen: a Popen in its own session (so the
    whole make tree can be killed) with stdout and stderr piped together; else the finished run."""
    import os
    import subprocess

    argv = ['make', '-s', '-o', '.venv/.installed', f'reproduce-{package}', f'RUNS_DIR={tmp / "runs"}', *variables]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    root = pathlib.Path(__file__).parents[1]
    if popen:
        return subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env=env)
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, env=env)


def kill_once(process, ready, timeout=120):
    """SIGKILLs `process` (its whole session when it leads one) as soon as ready() holds, as a crash
    mid-run would; -> its output. Fails, with that output, if it ends or times out first."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = [o.decode() if isinstance(o, bytes) else o for o in process.communicate() if o]
            raise AssertionError(f"not ready within {timeout} s; the run said:\n" + "\n".join(output)[-3000:])
        time.sleep(0.002)
    if os.getpgid(process.pid) == process.pid:  # started in a session of its own: kill what it started too
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGKILL)
    output = [o.decode() if isinstance(o, bytes) else o for o in process.communicate() if o]
    return "\n".join(output)


def kill_at_first_checkpoint(process, run_dir, timeout=120):
    """kill_once as soon as run_dir holds a checkpoint_*.pt; -> the steps saved."""
    kill_once(process, lambda: any(run_dir.glob('checkpoint_*.pt')), timeout)
    return sorted(int(p.stem.split('_')[1]) for p in run_dir.glob('checkpoint_*.pt'))


def assert_trees_identical(actual, expected, where=""):
    """Nested dicts / lists of tensors and numbers equal, tensors bit for bit and of one dtype."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_trees_identical(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_trees_identical(a, e, f"{where}/{i}")
    elif isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and actual.dtype == expected.dtype, where
        assert torch.equal(actual, expected), f"{where} differs"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_plan(dry, first, second, command):
    """A reproduce dry run printed the plan: cell `first` new with an estimate and `python -m command`,
    cell `second` new, and the total at the rays/s measured here."""
    import re

    assert dry.returncode == 0, dry.stderr
    assert re.search(rf'^{re.escape(first)}\s+new\s+~[\d.]+ h\s+python -m {re.escape(command)}', dry.stdout,
                     re.M), dry.stdout
    assert re.search(rf'^{re.escape(second)}\s+new', dry.stdout, re.M) and 'measured here' in dry.stdout
    assert re.search(r'^total ~[\d.]+ h at \d+ train / \d+ render rays/s', dry.stdout, re.M), dry.stdout


def kill_and_resume(run, run_dir, first, second, steps, outputs):
    """Starts a reproduce command (run(popen=True)), SIGKILLs it at the first checkpoint in run_dir (the
    run folder of cell `first`, before its `outputs` folder exists), then reruns it (run()): cell
    `first` resumes from its newest checkpoint, cell `second` starts new. Returns the finished rerun."""
    import re

    saved = kill_at_first_checkpoint(run(popen=True), run_dir)
    assert saved and saved[-1] < steps and not (run_dir / outputs).exists()
    resumed = run()
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f'== {first}: partial' in resumed.stdout and f'== {second}: new' in resumed.stdout
    starts = re.findall(r'resuming from (\S+) at step (\d+)', resumed.stdout)
    assert [int(step) for _, step in starts] == [saved[-1]] and run_dir.name in starts[0][0], resumed.stdout
    return resumed


def assert_rerun_skips_finished(run, runs, trainer):
    """Reruns a finished reproduce command (run()): no cell starts (`trainer` never runs) and no file
    under the run folders `runs` is written again."""
    before = {p: p.stat().st_mtime_ns for p in runs.rglob('*') if p.is_file()}
    again = run()
    assert again.returncode == 0 and '== ' not in again.stdout and trainer not in again.stderr, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in runs.rglob('*') if p.is_file()} == before
