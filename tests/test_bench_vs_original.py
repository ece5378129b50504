"""bench/vs_original.py's parsing, ratios, interleaving and tables, with fake "original" and "port" commands
(no original tree, no timing asserted)."""

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_original", os.path.join(ROOT, "bench", "vs_original.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_last_json_takes_the_last_object_line(vs):
    text = 'warning: {not json\n{"a": 1}\nsome log\n{"a": 2, "b": 3.5}\ntrailing\n'
    assert vs.last_json(text) == {"a": 2, "b": 3.5}
    with pytest.raises(ValueError):
        vs.last_json("no json here\n")


def test_the_original_gets_the_ports_gemm_fractions_in_proportion_to_its_rays_per_s(vs):
    original = {"train_rays_per_s": 100.0, "render_rays_per_s": 300.0}
    port = {"train_rays_per_s": 200.0, "render_rays_per_s": 200.0, "train_gemm_fraction": 0.9,
            "render_gemm_fraction": 0.6}
    carried = vs.with_gemm_fractions(original, port)
    assert carried["train_gemm_fraction"] == pytest.approx(0.45)
    assert carried["render_gemm_fraction"] == pytest.approx(0.9)
    assert "train_gemm_fraction" not in original
    # An original that measured its own fraction keeps it; a port without one adds nothing.
    assert vs.with_gemm_fractions({**original, "train_gemm_fraction": 0.5}, port)["train_gemm_fraction"] == 0.5
    assert vs.with_gemm_fractions(original, {"train_rays_per_s": 1.0}) == original


def test_ratio_is_the_speed_up_of_the_port(vs):
    rate = vs.Metric("r", "rays/s", True)
    seconds = vs.Metric("s", "s/step", False)
    assert vs.ratio(rate, {"r": 100.0}, {"r": 250.0}) == pytest.approx(2.5)
    assert vs.ratio(seconds, {"s": 3.0}, {"s": 1.5}) == pytest.approx(2.0)


def test_thread_env_pins_the_libraries(vs):
    env = vs.thread_env(1, jax=True)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert "true" in vs.thread_env(2, jax=True)["XLA_FLAGS"]
    assert "XLA_FLAGS" not in vs.thread_env(2, jax=False) or os.environ.get("XLA_FLAGS")
    assert vs.pinned(["python"], 2)[-1] == "python"
    if vs.pinned(["python"], 1)[0] == "taskset":
        assert vs.pinned(["python"], 1) == ["taskset", "-c", "0", "python"]
        assert vs.pinned(["python"], 1, "1") == ["taskset", "-c", "1", "python"]


def fake_package(vs, tmp_path):
    """An original printing rates 100 and a port printing 300 (JSON), through real subprocesses."""
    script = tmp_path / "fake.py"
    script.write_text("import json, os, sys\n"
                      "rate = float(sys.argv[1])\n"
                      "print('log line')\n"
                      "print(json.dumps({'train_rays_per_s': rate, 'render_rays_per_s': rate / 2,"
                      " 'threads': os.environ['OMP_NUM_THREADS']}))\n")
    return vs.Package(
        "fake/original", False, {"cfg": "a fake config"}, vs.RAYS_METRICS,
        original_cmd=lambda tree, config, quick: [str(script), "100"],
        port_cmd=lambda config, quick: [str(script), "300"],
        parse_original=vs.last_json, parse_port=vs.last_json)


def test_compare_interleaves_and_tabulates(vs, tmp_path):
    package = fake_package(vs, tmp_path)
    calls = []

    def runner(argv, threads, jax, parse, timeout, label, cpus=None):
        calls.append((label, threads))
        return vs.run_side(argv, threads, jax, parse, timeout, label, cpus)

    report = vs.compare(package, "fake", str(tmp_path), sys.executable, [1, 2], 2, "cfg", False, sys.executable,
                        60, runner=runner, log=lambda *_: None)
    # A B A B per thread count: original then port, every round.
    assert calls == [("original", 1), ("port", 1)] * 2 + [("original", 2), ("port", 2)] * 2
    assert len(report["rows"]) == 2 * 2 * 2
    assert all(row["ratio"] == pytest.approx(3.0) for row in report["rows"])
    assert [raw["original"]["threads"] for raw in report["raw"]] == ["1", "1", "2", "2"]
    table = vs.markdown(report)
    assert "| 2 | 2 | render rays/s | 50.00 | 150 | 3.00x |" in table
    assert report["machine"] and report["date"]
    assert len(report["medians"]) == 2 * 2 and all(m["ratio"] == pytest.approx(3.0) for m in report["medians"])
    assert "Median over the rounds: 1 thread train rays/s 3.00x" in table
    json.dumps(report)  # what --out writes


def test_a_missing_required_metric_is_an_error_and_the_gemm_shares_are_optional(vs, tmp_path):
    """The fake sides report rays/s but no GEMM-rate shares: those rows are left out (above); a side
    without a required metric stops the comparison instead of dropping the row."""
    package = fake_package(vs, tmp_path)
    required = vs.Package(package.original_name, False, package.configs,
                          lambda config: [vs.Metric("s_per_step", "s/step", False)], package.original_cmd,
                          package.port_cmd, package.parse_original, package.parse_port)
    with pytest.raises(KeyError, match="s_per_step"):
        vs.compare(required, "fake", str(tmp_path), sys.executable, [1], 1, "cfg", False, sys.executable, 60,
                   log=lambda *_: None)


def test_a_failing_side_names_its_command(vs, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match="(?s)original failed .exit 3.*boom"):
        vs.run_side([sys.executable, str(bad)], 1, False, vs.last_json, 60, "original")


def test_every_package_builds_its_commands(vs):
    for name, package in vs.PACKAGES.items():
        for config in package.configs:
            for quick in (False, True):
                original = package.original_cmd("/tree", config, quick)
                port = package.port_cmd(config, quick)
                assert os.path.isfile(original[0]) and os.path.isfile(port[0]), name
                assert os.path.dirname(original[0]).endswith("bench")
        metrics = vs.mine_metrics("paper") if name == "mine" else package.metrics(next(iter(package.configs)))
        assert metrics, name
