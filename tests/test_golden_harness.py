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
