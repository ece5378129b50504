# Derived from vincentfung13/MINE (MIT licence, Copyright (c) 2021 Vincent Fung; see THIRD_PARTY_NOTICES.md).
"""Writes `images_<ratio>/` next to `images/` in every LLFF scene (what NeRFDataset reads for a ratio > 1).

    python -m mine.input_pipelines.llff.misc.resize_nerf_llff_images --dataset_path nerf_llff_data [--downsample_ratio 7.875]

Each image is resized with OpenCV's bilinear filter to round(H / ratio) x round(W / ratio); an existing
`images_<ratio>` folder is replaced.
"""

import argparse
import os
import shutil

import cv2


def resize_nerf_llff(dataset_path, downsample_ratio):
    """Resizes images/ of every scene folder under dataset_path into images_<downsample_ratio>/; returns the scenes."""
    if not os.path.isdir(dataset_path):
        raise FileNotFoundError(f"dataset path {dataset_path} does not exist")
    scenes = []
    for scene in sorted(os.listdir(dataset_path)):
        images_dir = os.path.join(dataset_path, scene, "images")
        if not os.path.isdir(images_dir):
            continue
        scenes.append(scene)
        out_dir = os.path.join(dataset_path, scene, "images_" + str(downsample_ratio))
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.makedirs(out_dir)
        for name in sorted(os.listdir(images_dir)):
            img = cv2.imread(os.path.join(images_dir, name), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{os.path.join(images_dir, name)} is not an image OpenCV can read")
            H, W = img.shape[:2]
            size = (int(round(W / downsample_ratio)), int(round(H / downsample_ratio)))
            cv2.imwrite(os.path.join(out_dir, name), cv2.resize(img, size))
    return scenes


def _ratio(text):
    """7.875 -> 7.875, 8 -> 8: the folder name must match str() of the yaml's data.img_pre_downsample_ratio."""
    return int(text) if text.isdigit() else float(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_path", required=True)
    parser.add_argument("--downsample_ratio", type=_ratio, default=7.875)
    args = parser.parse_args(argv)
    print(resize_nerf_llff(args.dataset_path, args.downsample_ratio))


if __name__ == "__main__":
    main()
