"""Checks the install (`python -m data_tools.check_install [LOCK]`): every runtime dependency imports and
every distribution pinned in requirements.lock is installed at the lock's version; names those that are not."""

import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

# import name -> distribution name on PyPI
REQUIRED = {
    "torch": "torch",
    "numpy": "numpy",
    "scipy": "scipy",
    "gin": "gin-config",
    "absl": "absl-py",
    "imageio": "imageio",
    "imageio_ffmpeg": "imageio-ffmpeg",
    "cv2": "opencv-python-headless",
    "pycolmap": "pycolmap",
    "tqdm": "tqdm",
    "tensorboard": "tensorboard",
    "yaml": "pyyaml",
    "pyhocon": "pyhocon",
    "msgpack": "msgpack",
}

# The lock `make lock` writes (pip-compile of pyproject.toml with its test extra).
LOCK_PATH = Path(__file__).resolve().parents[1] / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def missing_dependencies(required=None):
    """Returns [(distribution, error message)] for each dependency that does not import."""
    missing = []
    for module, distribution in (required or REQUIRED).items():
        try:
            importlib.import_module(module)
        except Exception as error:  # an ImportError, or a broken build raising at import
            missing.append((distribution, f"{type(error).__name__}: {error}"))
    return missing


def locked_versions(lock_text):
    """Returns {canonical distribution name: version} of the `name==version` pins of a lock's text."""
    return {canonicalize_name(m[1]): m[2] for m in map(_PIN.match, lock_text.splitlines()) if m}


def installed_version(distribution):
    """The installed version of `distribution`, or None where it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def lock_mismatches(lock_text):
    """Returns [(distribution, locked version, installed version or None)] for each pin of the lock's
    text that is not installed at its release. A local build label is not compared: torch's CPU build
    (`2.13.0+cpu`, the lock's) and its CUDA build (`2.13.0`) are the same release."""
    mismatches = []
    for distribution, locked in locked_versions(lock_text).items():
        installed = installed_version(distribution)
        if installed is None or Version(installed).public != Version(locked).public:
            mismatches.append((distribution, locked, installed))
    return mismatches


def main(lock_path=LOCK_PATH):
    """Prints each dependency that does not import or differs from the lock at `lock_path`; exits 1 if any."""
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        sys.exit(f"error: no lock file at {lock_path} (`make lock` writes it)")
    missing = missing_dependencies()
    for distribution, error in missing:
        print(f"missing dependency: {distribution} ({error}); install it with "
              f"`.venv/bin/pip install {distribution}`", file=sys.stderr)
    mismatches = lock_mismatches(lock_path.read_text())
    for distribution, locked, installed in mismatches:
        print(f"version mismatch: {distribution} {installed or 'is not installed'}, {lock_path} pins "
              f"{locked}; `make install` installs the lock", file=sys.stderr)
    if missing or mismatches:
        sys.exit(1)
    print(f"all {len(REQUIRED)} runtime dependencies import; the installed versions are {lock_path}'s")


if __name__ == "__main__":
    main(*sys.argv[1:])
