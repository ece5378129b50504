"""`make reproduce-depth_mipnerf` end to end on the nerf_synthetic stand-in's lego (depth/<split>/*.npy, read by
depth_mipnerf) with a tiny model through ARGS: unknown rows and a missing scene folder refused before anything
runs, the dry-run plan, a killed run resuming from its checkpoint, the table (every row, finite numbers, the
protocol block), finished cells skipped, and the summariser rebuilding the same table."""

import functools
import json
import math
import pathlib
import subprocess
import sys

import pytest

from depth_mipnerf.scripts import reproduce
from tests.conftest import assert_plan, assert_rerun_skips_finished, kill_and_resume, make_reproduce

REPO = pathlib.Path(__file__).parents[2]
STEPS = 40
BINDS = [f'optimizer.max_steps = {STEPS}', 'Config.save_every = 10', 'Config.print_every = 10',
         'train.batch_size = 64', 'nerf.num_samples = 8', 'nerf.num_fine_samples = 8', 'nerf.mlp.net_depth = 2',
         'nerf.mlp.net_width = 16', 'nerf.mlp.net_width_condition = 8', 'nerf.mlp.prop_net_width = 8',
         'nerf.max_deg_point = 4', 'val.check_interval = 1000', 'optimizer.lr_delay_steps = 0']
PROTOCOL_KEYS = {'split', 'resolution', 'background', 'uint8_rounding', 'crop_borders', 'psnr', 'ssim',
                 'ssim_mipnerf', 'lpips', 'depth_error', 'n_test_images'}


def make(tmp, *variables, popen=False):
    return make_reproduce('depth_mipnerf', tmp, *variables, popen=popen)


def test_rows_selected_by_scenes_and_rows():
    args = reproduce.parse_args(['--runs_dir', 'r', '--scenes', 'ours,no_depth,urf', '--rows', 'ours', 'urf', 'l2'])
    assert reproduce.selected_rows(args) == ['urf', 'ours']
    assert [c.key for c in reproduce.build_cells(args, with_commands=False)] == [
        'urf/3', 'urf/6', 'urf/100', 'ours/3', 'ours/6', 'ours/100']
    with pytest.raises(ValueError, match="unknown \\['dsnerf'\\]"):
        reproduce.selected_rows(reproduce.parse_args(['--runs_dir', 'r', '--scenes', 'ours,dsnerf']))


def test_sparse_view_table_end_to_end(tmp_path):
    data = tmp_path / 'nerf_synthetic'
    subprocess.run([sys.executable, '-m', 'data_tools.standin', 'nerf_synthetic', '--out', str(data),
                    '--scenes', 'lego', '--res', '16x16', '--views', '8'], cwd=REPO, check=True, capture_output=True)
    runs = tmp_path / 'runs' / 'depth_mipnerf' / 'reproduce'
    out = tmp_path / 'results' / 'depth_mipnerf'
    args = ('ARGS=--views 3 --gin depth_mipnerf/configs/demo.gin --device cpu --out ' + str(out) + ' '
            + ' '.join(f'--bind "{b}"' for b in BINDS))
    selection = [f'DATA_DIR={data / "lego"}', 'SCENES=no_depth,ours', args]

    missing = make(tmp_path, f'DATA_DIR={data / "ship"}', 'SCENES=ours', args)
    assert missing.returncode != 0 and str(data / 'ship') in missing.stderr
    assert 'transforms_{train,val,test}.json' in missing.stderr and 'depth/<split>/<stem>.npy' in missing.stderr
    assert not runs.exists()

    assert_plan(make(tmp_path, *selection[:2], 'DRY_RUN=1', args), 'no_depth/3', 'ours/3', 'depth_mipnerf.train')
    assert not runs.exists()

    # killed after the first checkpoint of no_depth/3: the rerun resumes from the newest one
    kill_and_resume(functools.partial(make, tmp_path, *selection), runs / 'no_depth_3', 'no_depth/3', 'ours/3',
                    STEPS, 'eval')

    table = json.loads(out.with_suffix('.json').read_text())
    assert [r['key'] for r in table['rows']] == ['no_depth/3', 'ours/3'] and table['finished'] == '2 of 2'
    for row in table['rows']:
        assert all(math.isfinite(row['ours'][m]) for m in ('psnr', 'ssim', 'depth_abs_err')), row['ours']
        assert row['ours']['lpips_vgg'] is None or math.isfinite(row['ours']['lpips_vgg'])  # 16 px < AlexNet's 32
        assert PROTOCOL_KEYS <= set(row['protocol']), PROTOCOL_KEYS - set(row['protocol'])
        assert row['protocol']['resolution'] == '16x16' and row['protocol']['split'] == 'test'
        assert row['run']['hardware'] and row['run']['commit'] and row['run']['peak_host_memory_mib'] > 0
    assert [r['published']['psnr'] for r in table['rows']] == [17.73, 23.81] and "fork's README" in table['source']
    assert table['config_file'] == 'depth_mipnerf/configs/demo.gin' and table['config_overrides'] == BINDS
    md = out.with_suffix('.md').read_text()
    assert '| Ours w/o depth | 3 | 17.730 / ' in md and '| Ours | 3 | 23.810 / ' in md and '**mean**' in md
    assert 'Protocol:' in md and '"resolution": "16x16"' in md

    # finished cells are skipped: nothing trains or evaluates again
    assert_rerun_skips_finished(functools.partial(make, tmp_path, *selection), runs, 'depth_mipnerf.train')

    summary = subprocess.run([sys.executable, '-m', 'depth_mipnerf.scripts.summarize', str(runs), '--scenes',
                              'no_depth,ours', '--views', '3', '--data_dir', str(data / 'lego'),
                              '--out', str(tmp_path / 'summary')], cwd=REPO, capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr
    rebuilt = json.loads((tmp_path / 'summary.json').read_text())
    assert [(r['ours'], r['protocol']) for r in rebuilt['rows']] == [(r['ours'], r['protocol']) for r in table['rows']]
