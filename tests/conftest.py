"""Shared pytest options and set-up for the whole suite."""

import pathlib

import torch

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption(
        "--golden-dir",
        default=str(GOLDEN_DIR),
        help="folder of golden cases (one sub-folder per package, each with a manifest.json)",
    )


def pytest_configure(config):
    # One intra-op thread: the CI machine has two cores and tests run in a single process.
    torch.set_num_threads(1)
