"""tests/durations.py: the slowest test cases over several junit XML files."""

import importlib.util
import pathlib

spec = importlib.util.spec_from_file_location("durations", pathlib.Path(__file__).with_name("durations.py"))
durations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(durations)


def test_slowest_across_files(tmp_path):
    for name, times in (("a", (0.5, 3.0)), ("b", (2.0, 0.1))):
        cases = "".join(f'<testcase classname="tests.{name}" name="t{i}" time="{t}"/>' for i, t in enumerate(times))
        (tmp_path / f"{name}.xml").write_text(f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')
    top = durations.slowest([tmp_path / "a.xml", tmp_path / "b.xml"], 2)
    assert top == [(3.0, "tests.a::t1"), (2.0, "tests.b::t0")]
