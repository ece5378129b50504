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


def pytest_configure(config):
    # One intra-op thread: the CI machine has two cores and tests run in a single process.
    torch.set_num_threads(1)
