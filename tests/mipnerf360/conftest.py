"""Fixtures shared by the mipnerf360 tests."""

import subprocess
import sys

import gin
import pytest


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """A 12-view 32x24 synthetic unbounded360 scene (data_tools.synth), shared by the train tests."""
    out = tmp_path_factory.mktemp("m360_train") / "scene"
    subprocess.run([sys.executable, "-m", "data_tools.synth", "--scene", "unbounded360", "--res", "32x24",
                    "--views", "12", "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(autouse=True)
def clear_gin_after_each_test():
    """gin's bindings are global: a test's Config bindings must not reach the next test."""
    yield
    gin.clear_config()
