"""Rebuilds results/mine_<dataset>.{md,json} from finished run folders (no training, no evaluation).

    python -m mine.scripts.summarize RUNS_DIR [--dataset realestate10k|kitti_raw|flowers|llff] [--out results/x]
        [--scenes a,b] [--data_dir D]

RUNS_DIR is the folder `make reproduce-mine` was given as --runs_dir (RUNS/mine/reproduce): its
<dataset>/<run>/eval/metrics.json and reproduce.json give each row; unfinished rows stay empty.
"""

import argparse
import os

from data_tools import reproduce as tables
from mine.scripts import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs_dir')
    parser.add_argument('--dataset', default='realestate10k', choices=sorted(reproduce.DATASETS))
    parser.add_argument('--out', default=None, help='default results/mine_<dataset>')
    parser.add_argument('--scenes', default='', help='comma-separated rows (default: all)')
    parser.add_argument('--data_dir', default=None, help='only labels the rows (default: the published layout)')
    args = parser.parse_args(argv)
    args.out = args.out or os.path.join(tables.ROOT, 'results', f'mine_{args.dataset}')
    args.data_dir = os.path.abspath(args.data_dir or os.path.join(tables.ROOT,
                                                                  reproduce.DATASETS[args.dataset]['data_dir']))
    cells = reproduce.build_cells(args, with_commands=False)
    extra = {'dataset': args.dataset, 'config_file': f'mine/configs/{reproduce.DATASETS[args.dataset]["yaml"]}'}
    return tables.write_summary(reproduce.reference(args.dataset), cells, reproduce.read_metrics, args.out,
                                extra=extra)


if __name__ == '__main__':
    main()
