"""Command line: python -m data_tools.standin 360_v2 --out data/360_v2 --scenes garden,room."""

import argparse
import time

from data_tools.standin import LAYOUTS, layout
from data_tools.synth.__main__ import parse_resolution


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m data_tools.standin', description=__doc__)
    parser.add_argument('layout', choices=sorted(LAYOUTS))
    parser.add_argument('--out', required=True, help='the dataset folder (its scene folders are replaced)')
    parser.add_argument('--scenes', default='', help='comma-separated real scene names (default: all)')
    parser.add_argument('--res', type=parse_resolution, help='WIDTHxHEIGHT of the scenes')
    parser.add_argument('--views', type=int, help='views per scene')
    args = parser.parse_args(argv)
    module = layout(args.layout)
    scenes = [s for s in args.scenes.split(',') if s] or module.scenes(args.layout)
    start = time.perf_counter()
    written = module.write(args.layout, args.out, scenes, args.res, args.views)
    print(f'{args.layout} stand-in: {len(written)} scene(s) in {args.out} ({time.perf_counter() - start:.1f} s)')


if __name__ == '__main__':
    main()
