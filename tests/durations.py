"""The slowest tests of `make test`, over every group's junit XML: python tests/durations.py N FILE..."""

import sys
import xml.etree.ElementTree as ET


def slowest(paths, count):
    """[(seconds, test id)] of the `count` slowest test cases in the junit XML files `paths`."""
    cases = []
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            cases.append((float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}"))
    return sorted(cases, reverse=True)[:count]


if __name__ == "__main__":
    count, paths = int(sys.argv[1]), [p for p in sys.argv[2:] if not p.startswith(".pytest_cache/*")]
    print(f"== slowest {count} tests")
    for seconds, name in slowest(paths, count):
        print(f"{seconds:8.2f} s  {name}")
