"""EXR depth/normal passes through the OpenEXR library (the fork reads them with pyexr, a wrapper of
the same C library): every compression OpenEXR writes, scanline or tiled, HALF/FLOAT/UINT channels."""

import os

import numpy as np
import OpenEXR


def read_exr(path):
    """{channel name: float32 [H, W]} of the first part of an EXR file; OpenEXR's error when it cannot."""
    with OpenEXR.File(os.fspath(path), separate_channels=True) as exr:
        return {name: np.asarray(channel.pixels, np.float32) for name, channel in exr.channels().items()}
