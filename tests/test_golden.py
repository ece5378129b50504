"""Golden equivalence: every case produced by the ORIGINAL implementations must be matched by the port.

Cases live in `tests/golden/<package>/` (copied from ../shared/golden, see its README) or any folder
given with `--golden-dir`. A package that does not exist yet is skipped as "not ported yet"; once it
exists every one of its cases runs.
"""

import importlib
import importlib.util
import json
import pathlib
import pkgutil

import numpy as np
import pytest
import torch


def _load_manifests(golden_dir):
    """Yields (package folder, case dict) for every manifest entry under golden_dir."""
    for manifest in sorted(pathlib.Path(golden_dir).glob("*/manifest.json")):
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
    """{argname: tensor}; an argument stored as in_<name>_0, in_<name>_1, ... becomes a tuple."""
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
    return inputs


def _call_plainly(case, inputs, function):
    """Array args positionally in manifest order, static values by keyword."""
    args = [inputs[name] for name in case["args"] if name in inputs]
    return function(*args, **case["static"])


def _adapter_for(package, case):
    """The adapter registered for this case in tests/golden_adapters/<package>/*.py, if any."""
    adapters = {}
    try:
        folder = importlib.import_module(f"tests.golden_adapters.{package}")
    except ModuleNotFoundError:
        return None
    for info in pkgutil.iter_modules(getattr(folder, "__path__", [])):
        module = importlib.import_module(f"{folder.__name__}.{info.name}")
        adapters.update(getattr(module, "ADAPTERS", {}))
    return adapters.get(case["case"]) or adapters.get(case["function"])


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
    adapter = _adapter_for(package, case) or _call_plainly
    with torch.no_grad():
        result = adapter(case, inputs, function)
    for name, actual in _named_outputs(case, result).items():
        assert_matches(arrays[f"out_{name}"], actual, case["rtol"], case["atol"], name)
