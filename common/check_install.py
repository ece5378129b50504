"""Checks that every runtime dependency imports; names the missing ones (`python -m common.check_install`)."""

import importlib
import sys

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


def missing_dependencies(required=None):
    """Returns [(distribution, error message)] for each dependency that does not import."""
    missing = []
    for module, distribution in (required or REQUIRED).items():
        try:
            importlib.import_module(module)
        except Exception as error:  # an ImportError, or a broken build raising at import
            missing.append((distribution, f"{type(error).__name__}: {error}"))
    return missing


def main():
    missing = missing_dependencies()
    for distribution, error in missing:
        print(f"missing dependency: {distribution} ({error}); install it with "
              f"`.venv/bin/pip install {distribution}`", file=sys.stderr)
    if missing:
        sys.exit(1)
    print(f"all {len(REQUIRED)} runtime dependencies import")


if __name__ == "__main__":
    main()
