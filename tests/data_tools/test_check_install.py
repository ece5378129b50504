"""The install check names a dependency that does not import."""

import subprocess
import sys

from data_tools import check_install


def test_all_required_dependencies_import():
    assert check_install.missing_dependencies() == []


def test_missing_dependency_is_named():
    missing = check_install.missing_dependencies({"json": "json", "no_such_module_xyz": "no-such-dist"})
    assert [name for name, _ in missing] == ["no-such-dist"]


def test_command_exits_nonzero_naming_the_package(monkeypatch):
    code = (
        "import sys; from data_tools import check_install as c;"
        "c.REQUIRED['no_such_module_xyz'] = 'no-such-dist'; c.main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "missing dependency: no-such-dist" in result.stderr
