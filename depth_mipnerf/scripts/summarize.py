"""Rebuilds results/depth_mipnerf.{md,json} from finished run folders (nothing is trained or evaluated).

    python -m depth_mipnerf.scripts.summarize RUNS_DIR [--data_dir data/lego_depth] [--out results/depth_mipnerf]
        [--scenes ours,no_depth] [--rows ...] [--views 3 6 100] [--gin depth_mipnerf/configs/lego.gin] [--bind ...]

RUNS_DIR is the --runs_dir of `make reproduce-depth_mipnerf` ($(RUNS_DIR)/depth_mipnerf/reproduce): one folder
<row>_<views> per cell. Cells not finished (no eval/metrics.json) are listed without numbers. --data_dir gives
the test images' resolution for the protocol block; --gin and --bind are only recorded in the table.
"""

import argparse

from data_tools import reproduce as tables
from depth_mipnerf.scripts import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs_dir', help='the run folders of the table (reproduce --runs_dir)')
    parser.add_argument('--data_dir', default=None, help='the lego scene folder (default data/lego_depth)')
    parser.add_argument('--out', default=None, help='results/depth_mipnerf (.md and .json are written)')
    parser.add_argument('--scenes', default='', help='comma-separated rows (default: all)')
    parser.add_argument('--rows', nargs='+', default=list(reproduce.ROWS), choices=list(reproduce.ROWS))
    parser.add_argument('--views', type=int, nargs='+', default=list(reproduce.VIEWS))
    parser.add_argument('--gin', default=reproduce.DEFAULT_GIN)
    parser.add_argument('--bind', action='append', default=[])
    args = parser.parse_args(argv)
    argv_of = ['--runs_dir', args.runs_dir, '--scenes', args.scenes, '--gin', args.gin,
               '--rows', *args.rows, '--views', *map(str, args.views)]
    argv_of += [f'--bind={b}' for b in args.bind]
    argv_of += (['--out', args.out] if args.out else []) + (['--data_dir', args.data_dir] if args.data_dir else [])
    repro_args = reproduce.parse_args(argv_of)
    cells = reproduce.build_cells(repro_args, with_commands=False)
    return tables.write_summary(reproduce.reference(), cells, reproduce.read_metrics, repro_args.out,
                                extra=reproduce.table_extra(repro_args))


if __name__ == '__main__':
    main()
