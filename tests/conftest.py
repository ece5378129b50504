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


def kill_at_first_checkpoint(process, run_dir, timeout=120):
    """SIGKILLs the session of `process` as soon as run_dir holds a checkpoint_*.pt; -> the steps saved."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not list(run_dir.glob('checkpoint_*.pt')):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    return sorted(int(p.stem.split('_')[1]) for p in run_dir.glob('checkpoint_*.pt'))
