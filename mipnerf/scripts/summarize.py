"""Rebuilds results/mipnerf_<table>.{md,json} from finished run folders (nothing is trained or evaluated).

    python -m mipnerf.scripts.summarize RUNS_DIR [--table multiscale|singlescale] [--data_dir D]
        [--out results/mipnerf_<table>] [--scenes lego,chair] [--gin F.gin] [--bind ...]

RUNS_DIR is the --runs_dir of `make reproduce-mipnerf` ($(RUNS_DIR)/mipnerf/reproduce): one folder
<table>/<scene> per scene. Scenes not finished (no eval/metrics.json) are listed without numbers. --data_dir
(default: the table's, data/nerf_synthetic_multiscale or data/nerf_synthetic) gives the test images'
resolution for the protocol block; --gin and --bind are only recorded in the table.
"""

import argparse

from mipnerf.scripts import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs_dir', help='the run folders of the tables (reproduce --runs_dir)')
    parser.add_argument('--table', default='multiscale', choices=list(reproduce.TABLES))
    parser.add_argument('--data_dir', default=None, help="the folder of the scene folders (default: the table's)")
    parser.add_argument('--out', default=None, help='results/mipnerf_<table> (.md and .json are written)')
    parser.add_argument('--scenes', default='', help='comma-separated scenes (default: all)')
    parser.add_argument('--gin', default=None)
    parser.add_argument('--bind', action='append', default=[])
    args = parser.parse_args(argv)
    argv_of = ['--runs_dir', args.runs_dir, '--table', args.table, '--scenes', args.scenes]
    argv_of += [f'--bind={b}' for b in args.bind] + (['--gin', args.gin] if args.gin else [])
    argv_of += (['--out', args.out] if args.out else []) + (['--data_dir', args.data_dir] if args.data_dir else [])
    repro_args = reproduce.parse_args(argv_of)
    return reproduce.write_table(repro_args, reproduce.train_cells(repro_args, with_commands=False))


if __name__ == '__main__':
    main()
