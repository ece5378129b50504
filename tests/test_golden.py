"""Golden equivalence: every case produced by the ORIGINAL implementations must be matched by the port.

Cases live in `tests/golden/<package>/` (copied from ../shared/golden, see its README). `--golden-dir`
names another folder: either one package folder (it holds a `manifest.json`) or a folder of package
folders. Every array a case uses is read from that case's own file. A case that is not a plain call
goes through the adapter registered for its `function` in `tests/golden_adapters/<package>/`, never
through one chosen by file name, so new cases of a ported function run the same way. A package that
does not exist yet is skipped as "not ported yet"; once it exists every one of its cases runs.
"""

import importlib
import importlib.util
import json
import pathlib
import pkgutil

import numpy as np
import pytest
import torch

from tests.golden_adapters import call_args


def _manifests(golden_dir):
    """golden_dir/manifest.json when golden_dir is one package folder, else those of its sub-folders."""
    golden_dir = pathlib.Path(golden_dir)
    if (golden_dir / "manifest.json").is_file():
        return [golden_dir / "manifest.json"]
    return sorted(golden_dir.glob("*/manifest.json"))


def _load_manifests(golden_dir):
    """Yields (package folder, case dict) for every manifest entry under golden_dir."""
    for manifest in _manifests(golden_dir):
        for case in json.loads(manifest.read_text()):
            yield manifest.parent, case


def pytest_generate_tests(metafunc):
    if "golden_case" not in metafunc.fixturenames:
        return
    golden_dir = metafunc.config.getoption("--golden-dir")
    cases = list(_load_manifests(golden_dir))
    ids = [f"{folder.name}/{case['case']}" for folder, case in cases]
    metafunc.parametrize("golden_case", cases, ids=ids)


def _resolve(function):
    """Imports `package.module:attr.attr` and returns the named object."""
    module_name, _, qualname = function.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _to_torch(array):
    """numpy -> torch, keeping dtypes (int32 stays int32) and 0-d shapes."""
    return torch.from_numpy(np.array(array, order="C"))


def _inputs(case, arrays):
    """{name: tensor} of every in_<name> array of the case file: the call's arguments (in `args`
    order; one stored as in_<name>_0, in_<name>_1, ... becomes a tuple), then any other input the
    case stores for an adapter (weights, dataset attributes), keyed without the `in_` prefix."""
    inputs = {}
    for name in case["args"]:
        if f"in_{name}" in arrays:
            inputs[name] = _to_torch(arrays[f"in_{name}"])
        elif f"in_{name}_0" in arrays:
            parts, i = [], 0
            while f"in_{name}_{i}" in arrays:
                parts.append(_to_torch(arrays[f"in_{name}_{i}"]))
                i += 1
            inputs[name] = tuple(parts)
    for key in arrays.files:
        if key.startswith("in_") and key[3:] not in inputs:
            inputs[key[3:]] = _to_torch(arrays[key])
    return inputs


def _call_plainly(case, inputs, function):
    """Array args positionally in manifest order, static values by keyword."""
    return function(*call_args(case, inputs), **case["static"])


def adapters_of(package):
    """{function: adapter} merged from every tests/golden_adapters/<package>/*.py `ADAPTERS`."""
    adapters = {}
    try:
        folder = importlib.import_module(f"tests.golden_adapters.{package}")
    except ModuleNotFoundError:
        return adapters
    for info in pkgutil.iter_modules(getattr(folder, "__path__", [])):
        module = importlib.import_module(f"{folder.__name__}.{info.name}")
        for function, adapter in getattr(module, "ADAPTERS", {}).items():
            assert ":" in function, f"{module.__name__}: ADAPTERS key {function!r} is not a `function`"
            assert function not in adapters, f"two adapters for {function}"
            adapters[function] = adapter
    return adapters


def _as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _named_outputs(case, result):
    """Matches a port's return value to the case's output names."""
    names = case["outputs"]
    if isinstance(result, dict):
        return {name: result[name] for name in names}
    if len(names) == 1 and not isinstance(result, (tuple, list)):
        return {names[0]: result}
    if len(names) == 1 and isinstance(result, (tuple, list)) and len(result) != 1:
        return {names[0]: result}
    assert len(result) == len(names), f"port returned {len(result)} outputs, case expects {names}"
    return dict(zip(names, result))


def assert_matches(expected, actual, rtol, atol, name):
    """Integers and booleans compare exactly; floats with the case's tolerances."""
    actual = _as_numpy(actual)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    else:
        np.testing.assert_allclose(
            actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol, err_msg=name
        )


def test_golden(golden_case):
    folder, case = golden_case
    package = case["function"].split(":")[0].split(".")[0]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:  # absent, or only a folder of scripts (no __init__.py)
        pytest.skip("not ported yet")
    arrays = np.load(folder / case["case"], allow_pickle=False)
    function = _resolve(case["function"])
    inputs = _inputs(case, arrays)
    adapter = adapters_of(package).get(case["function"], _call_plainly)
    with torch.no_grad():
        result = adapter(case, inputs, function)
    for name, actual in _named_outputs(case, result).items():
        assert_matches(arrays[f"out_{name}"], actual, case["rtol"], case["atol"], name)
