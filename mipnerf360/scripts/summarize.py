"""Rebuilds results/mipnerf360.{md,json} from finished run folders (nothing is trained or evaluated).

    python -m mipnerf360.scripts.summarize RUNS_DIR [--data_dir data/360_v2] [--out results/mipnerf360]
        [--scenes garden,room] [--gin mipnerf360/configs/360.gin] [--bind ...]

RUNS_DIR is the --runs_dir of `make reproduce-mipnerf360` ($(RUNS_DIR)/mipnerf360/reproduce): one folder per
scene. A scene's numbers are those of the newest test_preds/metrics_<step>.json in its folder; scenes without
one are listed without numbers. --gin and --bind are only recorded in the table (say what the runs were
trained with); --data_dir only names the scene folders.
"""

import argparse

from mipnerf360.scripts import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs_dir', help='the run folders of the table (reproduce --runs_dir)')
    parser.add_argument('--data_dir', default=None, help='the 360_v2 folder (default data/360_v2)')
    parser.add_argument('--out', default=None, help='results/mipnerf360 (.md and .json are written)')
    parser.add_argument('--scenes', default='', help='comma-separated scenes (default: all 9)')
    parser.add_argument('--gin', default=reproduce.DEFAULT_GIN)
    parser.add_argument('--bind', action='append', default=[])
    args = parser.parse_args(argv)
    argv_of = ['--runs_dir', args.runs_dir, '--scenes', args.scenes, '--gin', args.gin]
    argv_of += [f'--bind={b}' for b in args.bind]
    argv_of += (['--out', args.out] if args.out else []) + (['--data_dir', args.data_dir] if args.data_dir else [])
    repro_args = reproduce.parse_args(argv_of)
    cells = reproduce.build_cells(repro_args, with_commands=False)
    return reproduce.write_table(repro_args, cells)


if __name__ == '__main__':
    main()
