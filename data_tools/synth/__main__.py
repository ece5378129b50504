"""Command line: python -m data_tools.synth --scene object360 --out data/synthetic/object360."""

import argparse
import re
import sys
import time

from data_tools.synth.scenes import DEFAULTS, SCENES, build_scene
from data_tools.synth.writers import write_scene


def parse_resolution(text):
    """'WxH' -> (width, height)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 256x192, got {text!r}")
    return int(match[1]), int(match[2])


def main(argv=None):
    defaults = "; ".join(f"{k}: {w}x{h}, {n} views" for k, (w, h, n) in DEFAULTS.items())
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.synth", description=__doc__, epilog=f"defaults: {defaults}"
    )
    parser.add_argument("--scene", required=True, choices=SCENES)
    parser.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    parser.add_argument("--res", type=parse_resolution, help="WIDTHxHEIGHT at full resolution")
    parser.add_argument(
        "--views", type=int,
        help="number of views (object360: training views; val and test get views // 5 each, at least 1)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="texture seed (0 .. 2^32-1)")
    parser.add_argument("--overwrite", action="store_true", help="replace a scene already in --out")
    args = parser.parse_args(argv)
    width, height = args.res or (None, None)
    start = time.perf_counter()
    try:
        scene = build_scene(args.scene, args.seed, width, height, args.views)
        out = write_scene(scene, args.out, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"{scene.kind}: {len(scene.paths)} views at {scene.width}x{scene.height} written to {out} "
          f"in {time.perf_counter() - start:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
