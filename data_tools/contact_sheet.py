"""Contact sheet of a synthetic scene: a few views (top row) over their colourised depth (bottom row).

python -m data_tools.contact_sheet data/synthetic/unbounded360 --out docs/unbounded360.png
"""

import argparse
import json
import math
import pathlib

import imageio.v3 as iio
import numpy as np

from common import sheets

NO_DEPTH_COLOUR = (0.0, 0.0, 0.0)  # pixels whose ray hits nothing (depth inf)
MIN_TILE_WIDTH = 192  # small images are enlarged (nearest neighbour) to at least this width
GAP = 4  # pixels between tiles


def colourise_depths(depths):
    """Depth maps [V, H, W] as colours [V, H, W, 3] in [0, 1]: inverse depth on one shared scale
    through the turbo map (common.sheets.colorize), near = red."""
    finite = np.isfinite(depths)
    inverse = np.where(finite, 1.0 / np.where(finite, depths, 1.0), 0.0)
    low, high = inverse[finite].min(), inverse[finite].max()
    colours = np.stack([sheets.colorize(view, low, high) for view in inverse]) / 255.0
    return np.where(finite[..., None], colours, NO_DEPTH_COLOUR)


def load_rgb(path):
    """Image as [H, W, 3] floats in [0, 1], RGBA composited on white."""
    image = iio.imread(path).astype(np.float64) / 255.0
    if image.shape[-1] == 4:
        image = image[..., :3] * image[..., 3:] + (1.0 - image[..., 3:])
    return image


def tile_grid(rows):
    """Rows of equally sized [H, W, 3] tiles joined with white gaps: -> [H', W', 3]."""
    height, width = rows[0][0].shape[:2]
    sheet = np.ones((len(rows) * (height + GAP) + GAP, len(rows[0]) * (width + GAP) + GAP, 3))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            top, left = GAP + r * (height + GAP), GAP + c * (width + GAP)
            sheet[top : top + height, left : left + width] = tile
    return sheet


def contact_sheet(scene_dir, num_views=4):
    """Sheet of num_views evenly spaced views of a scene folder: [H', W', 3] uint8."""
    scene_dir = pathlib.Path(scene_dir)
    scene_json = scene_dir / "scene.json"
    if not scene_json.is_file():
        raise FileNotFoundError(f"no scene.json in {scene_dir}; make one with python -m data_tools.synth")
    with open(scene_json, encoding="utf-8") as f:
        views = json.load(f)["views"]
    chosen = [views[i] for i in np.linspace(0, len(views) - 1, min(num_views, len(views))).round().astype(int)]
    images = [load_rgb(scene_dir / v["path"]) for v in chosen]
    depths = colourise_depths(np.stack([np.load(scene_dir / "depth" / f"{v['stem']}.npy") for v in chosen]))
    zoom = math.ceil(MIN_TILE_WIDTH / images[0].shape[1])
    enlarge = lambda tile: tile.repeat(zoom, axis=0).repeat(zoom, axis=1)
    sheet = tile_grid([[enlarge(t) for t in images], [enlarge(t) for t in depths]])
    return np.round(sheet * 255).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m data_tools.contact_sheet", description=__doc__)
    parser.add_argument("scene_dir", help="folder written by python -m data_tools.synth")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--views", type=int, default=4, help="number of views shown")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(out, contact_sheet(args.scene_dir, args.views))
    print(f"contact sheet of {args.scene_dir} written to {out}")


if __name__ == "__main__":
    main()
