"""The layering of the repository (README, Development): `common` imports no other package of ours,
`data_tools` imports `common` only, and a paper package imports `common` and itself, its `scripts/`
also `data_tools`."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPERS = ("mipnerf360", "mipnerf", "depth_mipnerf", "mine", "inerf")
OURS = ("common", "data_tools") + PAPERS


def imported_packages(path):
    """The top-level packages of ours that the module at `path` imports (relative imports: its own)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


def allowed(path):
    """The packages of ours a module of the repository may import."""
    package, *rest = path.relative_to(ROOT).parts
    if package == "common":
        return {"common"}
    if package == "data_tools":
        return {"common", "data_tools"}
    return {"common", package} | ({"data_tools"} if rest[0] == "scripts" else set())


MODULES = sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


def test_every_package_has_modules():
    assert {p.relative_to(ROOT).parts[0] for p in MODULES} == set(OURS)


@pytest.mark.parametrize("package", OURS)
def test_imports_follow_the_layering(package):
    breaches = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - allowed(path))
        for path in MODULES
        if path.relative_to(ROOT).parts[0] == package
    }
    assert {path: extra for path, extra in breaches.items() if extra} == {}
