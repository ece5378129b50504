"""requirements.lock pins every dependency of pyproject.toml, and check_install names a version that differs."""

import importlib.metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from data_tools import check_install


def _pyproject_dependencies():
    """The canonical names of pyproject.toml's runtime dependencies and its test extra, as the
    project's installed metadata lists them (`make test` reinstalls when pyproject.toml changes)."""
    requirements = map(Requirement, importlib.metadata.requires("nerf-ports"))
    return {canonicalize_name(r.name) for r in requirements
            if r.marker is None or r.marker.evaluate({"extra": "test"})}


def test_lock_pins_every_runtime_and_test_dependency_with_hashes():
    lock_text = check_install.LOCK_PATH.read_text()
    pins = check_install.locked_versions(lock_text)
    assert _pyproject_dependencies() - set(pins) == set()
    entries = [e for e in lock_text.split("\n") if e and not e[0].isspace() and not e.startswith("#")]
    assert len(entries) == len(pins) and all("==" in e and e.endswith("\\") for e in entries)
    assert lock_text.count("--hash=sha256:") >= len(pins)


def test_lock_has_the_cpu_torch_and_no_cuda_wheels():
    pins = check_install.locked_versions(check_install.LOCK_PATH.read_text())
    assert pins["torch"].endswith("+cpu")
    assert [name for name in pins if name.startswith(("nvidia-", "triton"))] == []


def test_installed_versions_are_the_locks():
    assert check_install.lock_mismatches(check_install.LOCK_PATH.read_text()) == []


def test_a_wrong_or_missing_version_is_named():
    numpy = check_install.installed_version("numpy")
    torch = check_install.installed_version("torch").split("+")[0]
    lock_text = (f"numpy==0.0.1 \\\n    --hash=sha256:00\nNo_Such.Dist==1.0\n"
                 f"torch=={torch}+cu126\nscipy=={check_install.installed_version('scipy')}\n")
    assert check_install.lock_mismatches(lock_text) == [
        ("numpy", "0.0.1", numpy), ("no-such-dist", "1.0", None)]


def test_command_names_the_mismatch_and_the_lock(tmp_path, capsys):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==0.0.1\n")
    with pytest.raises(SystemExit) as exit_info:
        check_install.main(lock)
    assert exit_info.value.code == 1
    assert f"version mismatch: numpy {check_install.installed_version('numpy')}, {lock} pins 0.0.1" in (
        capsys.readouterr().err)


def test_command_names_a_missing_lock_file(tmp_path):
    with pytest.raises(SystemExit, match=f"no lock file at {tmp_path / 'absent.lock'}"):
        check_install.main(tmp_path / "absent.lock")
