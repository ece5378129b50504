"""Image folders: listing, validation (readable, one size) and area downsampling (`images_2/4/8`)."""

import os
import pathlib
import shutil

import cv2
import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(folder):
    """Sorted image paths in `folder`; a clear error when the folder is missing or holds none."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder of images at {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}; put the photos there, or make a "
            "synthetic scene with `python -m data_tools.synth --scene unbounded360 --out DIR`")
    return paths


def read_image(path):
    """Reads one image as uint8 [H, W, C]; names the file when it is unreadable or truncated."""
    try:
        image = iio.imread(path)
    except Exception as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    if image.ndim == 2:
        image = image[..., None]
    return image


def check_images(paths):
    """Reads every image and checks they share one size. Returns (height, width)."""
    sizes = {}
    for path in tqdm(paths, desc="checking images", leave=False):
        sizes.setdefault(read_image(path).shape[:2], []).append(path.name)
    if len(sizes) > 1:
        listing = "; ".join(f"{h}x{w}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                            for (h, w), names in sizes.items())
        raise ValueError(f"images have different sizes (HxW): {listing}")
    return next(iter(sizes))


def downsample(image, factor):
    """Area-averaged downsampling of [H, W, C] by an integer factor (H, W rounded down)."""
    h, w = image.shape[:2]
    resized = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return resized.reshape(h // factor, w // factor, image.shape[2])


def write_downsampled(paths, out_dir, factor):
    """Writes each image of `paths` downsampled by `factor` into out_dir (same names, PNG kept lossless)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(paths, desc=f"images_{factor}", leave=False):
        image = np.asarray(read_image(path))
        small = downsample(image, factor)
        iio.imwrite(out_dir / path.name, small if small.shape[2] > 1 else small[..., 0])


def replace_dir(tmp_dir, final_dir):
    """Moves a finished tmp_dir onto final_dir, removing what final_dir held only once all is written."""
    final_dir = pathlib.Path(final_dir)
    if final_dir.exists():
        old = final_dir.with_name(final_dir.name + ".old")
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp_dir, final_dir)

