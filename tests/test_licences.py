"""Licence headers of the ported files, THIRD_PARTY_NOTICES.md and the root LICENSE agree."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("mipnerf360", "mipnerf", "depth_mipnerf", "mine", "inerf", "common")
# What a header says -> the licence name THIRD_PARTY_NOTICES.md must list for it.
LICENCES = {
    "Licensed under the Apache License, Version 2.0": "Apache License 2.0",
    "MIT licence": "MIT licence",
    "BSD-2-Clause licence": "BSD-2-Clause licence",
    "BSD-3-Clause licence": "BSD-3-Clause licence",
    "Monodepth2 licence": "Monodepth2 licence",
    "no licence file in that repository": "Licence: **none.**",
}
NIANTIC = [
    "# Copyright Niantic 2019. Patent Pending. All rights reserved.",
    "# This software is licensed under the terms of the Monodepth2 licence",
    "# which allows for non-commercial use only, the full terms of which are made",
]


def header(path):
    """The leading comment lines of a .py file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def py_files():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_some_files_have_headers():
    assert sum(bool(header(p)) for p in py_files()) >= 80


@pytest.mark.parametrize("path", [p for p in py_files() if header(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_header_names_a_listed_licence(path):
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    text = "\n".join(header(path))
    assert 2 <= len(header(path)) <= 4 or len(header(path)) == 1 and "Derived from" in text
    named = [listed for said, listed in LICENCES.items() if said in text]
    assert named, f"{path}: header names no known licence"
    for listed in named:
        assert listed in notices
    for repo in re.findall(r"[Dd]erived from ([\w.-]+/[\w.-]+)", text):
        assert repo in notices, f"{path}: {repo} missing from THIRD_PARTY_NOTICES.md"
    if "Apache" in text:
        assert re.match(r"# Copyright 20\d\d(, 20\d\d)? Google LLC$", header(path)[0])
        assert any(line.startswith("# Modified") for line in header(path))


def test_monodepth2_files_carry_the_niantic_notice():
    files = [p for p in (ROOT / "mine/network/monodepth2").glob("*.py") if p.name != "__init__.py"]
    assert {p.name for p in files} >= {"resnet_encoder.py", "depth_decoder.py", "layers.py"}
    for path in files:
        assert header(path)[:3] == NIANTIC, path
        assert "THIRD_PARTY_NOTICES.md" in header(path)[3]
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    assert "Monodepth v2 License" in notices and "non-commercial use only" in notices


def test_licence_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    for phrase in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                   "4. Redistribution.", "9. Accepting Warranty or Additional Liability.",
                   "END OF TERMS AND CONDITIONS", "Copyright 2026 The nerf-ports authors"):
        assert phrase in text
    assert len(text.split()) > 1500
