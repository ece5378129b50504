"""Rebuilds results/inerf_<table>.{md,json} from finished run folders (nothing is trained or evaluated).

    python -m inerf.scripts.summarize RUNS_DIR [--table pose|pixelnerf] [--out results/inerf_pose]
        [--scenes lego,chair] [--checkpoints_path checkpoints]

RUNS_DIR is the --runs_dir of `make reproduce-inerf` ($(RUNS_DIR)/inerf/reproduce): one folder per cell.
"""

import argparse

from data_tools import reproduce as tables
from inerf.scripts import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs_dir', help='the run folders of the table (reproduce --runs_dir)')
    parser.add_argument('--table', default='pose', choices=reproduce.TABLES)
    parser.add_argument('--out', default=None, help='results/inerf_<table> (.md and .json are written)')
    parser.add_argument('--scenes', default='', help='comma-separated subset (default: all)')
    parser.add_argument('--checkpoints_path', default='checkpoints', help='pixelnerf: named in the protocol')
    args = parser.parse_args(argv)
    argv_of = ['--runs_dir', args.runs_dir, '--table', args.table, '--scenes', args.scenes,
               '--checkpoints_path', args.checkpoints_path] + (['--out', args.out] if args.out else [])
    repro_args = reproduce.parse_args(argv_of)
    cells, _, reference, read_metrics, _ = reproduce.table(repro_args)
    return tables.write_summary(reference, cells, read_metrics, repro_args.out)


if __name__ == '__main__':
    main()
