"""The golden harness itself: it passes a correct port, fails a wrong one, skips an unported package."""

import json
import pathlib
import subprocess
import sys

import numpy as np

HARNESS = pathlib.Path(__file__).parent / "test_golden.py"


def _write_case(folder, case, **arrays):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / case["case"], **arrays)
    manifest = folder / "manifest.json"
    cases = json.loads(manifest.read_text()) if manifest.exists() else []
    manifest.write_text(json.dumps(cases + [case]))


def _case(name, function, outputs=("y",), static=None):
    return {"case": name, "function": function, "reference": "test", "args": ["x"],
            "static": static or {}, "outputs": list(outputs), "rtol": 1e-6, "atol": 1e-6, "notes": ""}


def _run(golden_dir):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HARNESS),
         f"--golden-dir={golden_dir}", "-rs"],
        capture_output=True, text=True, cwd=HARNESS.parent.parent)
    return result.returncode, result.stdout


def test_correct_port_passes_and_wrong_one_fails(tmp_path):
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    _write_case(tmp_path / "torch", _case("relu.npz", "torch.nn.functional:relu"),
                in_x=x, out_y=np.maximum(x, 0))
    _write_case(tmp_path / "torch", _case("softmax.npz", "torch:softmax", static={"dim": 0}),
                in_x=x, out_y=np.exp(x) / np.exp(x).sum())
    code, out = _run(tmp_path)
    assert code == 0 and "2 passed" in out, out

    _write_case(tmp_path / "torch", _case("wrong.npz", "torch.nn.functional:relu"),
                in_x=x, out_y=np.maximum(x, 0) + 1e-3)
    code, out = _run(tmp_path)
    assert code == 1 and "1 failed, 2 passed" in out, out


def test_unported_package_is_skipped_with_reason(tmp_path):
    _write_case(tmp_path / "nopkg", _case("a.npz", "no_such_package_xyz.internal.mod:fn"),
                in_x=np.zeros(3, np.float32), out_y=np.zeros(3, np.float32))
    code, out = _run(tmp_path)
    assert code == 0 and "1 skipped" in out and "not ported yet" in out, out


def test_integer_outputs_compare_exactly(tmp_path):
    x = np.array([3, 1, 2], dtype=np.int32)
    _write_case(tmp_path / "torch", _case("argsort.npz", "torch:argsort"),
                in_x=x, out_y=np.array([1, 2, 0]))
    code, out = _run(tmp_path)
    assert code == 0, out


GOLDEN = HARNESS.parent / "golden"
# Real cases of the originals whose every row is independent of the others (deterministic rendering
# of rays, pointwise warps, a ResnetFC that combines no views), so the first rows of their inputs and
# outputs are themselves a case of another size.
ROW_SLICEABLE = {
    "mipnerf/models_mipnerf_forward_small.npz": 3,
    "mipnerf360/coord_track_linearize_contract.npz": 5,
    "inerf/resnetfc_1.npz": 6,
}


def _copy_case(source, folder, name, rows=None, static=None, shift_input=None):
    """Writes the real case `source` (package/file under tests/golden) into folder as `name`: its
    row-wise arrays cut to `rows`, `static` values replaced, or one input shifted by 0.1."""
    package, file_name = source.split("/")
    entry = next(c for c in json.loads((GOLDEN / package / "manifest.json").read_text())
                 if c["case"] == file_name)
    arrays = dict(np.load(GOLDEN / source))
    for key, value in arrays.items():
        is_rowwise = key.startswith("out_") or not key.startswith("in_params") and "." not in key
        if rows is not None and is_rowwise and value.ndim > 0:
            arrays[key] = value[:rows]
    if shift_input is not None:
        arrays[shift_input] = arrays[shift_input] + np.float32(0.1)
    _write_case(folder, dict(entry, case=name, static=dict(entry["static"], **(static or {}))), **arrays)


def test_cases_run_from_a_package_folder_under_any_name_and_size(tmp_path):
    """A folder holding the manifest itself; adapter-routed cases renamed, with other row counts."""
    folder = tmp_path / "unseen_cases"
    for source, rows in ROW_SLICEABLE.items():
        _copy_case(source, folder, f"renamed_{rows}_rows_of_{source.replace('/', '_')}", rows=rows)
    code, out = _run(folder)
    assert code == 0 and f"{len(ROW_SLICEABLE)} passed" in out, out


def test_arrays_and_static_values_come_from_the_case_itself(tmp_path):
    """Shifted inputs in the case file, or a wider MLP in its static values, must fail: an adapter
    that read the copied cases' arrays or sizes instead would pass them."""
    folder = tmp_path / "mipnerf"
    source = "mipnerf/models_mipnerf_forward_small.npz"
    _copy_case(source, folder, "as_is.npz")
    _copy_case(source, folder, "shifted_origins.npz", shift_input="in_origins")
    _copy_case(source, folder, "wider_mlp.npz", static={"MLP.net_width": 48})
    code, out = _run(tmp_path)
    assert code == 1 and "2 failed, 1 passed" in out, out
    assert "shifted_origins.npz" in out and "wider_mlp.npz" in out
