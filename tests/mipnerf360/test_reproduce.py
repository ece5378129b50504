"""`make reproduce-mipnerf360` end to end on the 360_v2 stand-in (garden outdoors at factor 4, room indoors at
factor 2) with a tiny model through ARGS: a missing scene folder refused before anything runs, the dry-run
plan, a killed run resuming from its checkpoint, the table (every row, finite numbers, the protocol block),
finished scenes skipped, and the summariser rebuilding the same table."""

import functools
import json
import math
import pathlib
import subprocess
import sys

import pytest

from mipnerf360.scripts import reproduce
from tests.conftest import assert_plan, assert_rerun_skips_finished, kill_and_resume, make_reproduce

REPO = pathlib.Path(__file__).parents[2]
STEPS, EVERY = 30, 10
BINDS = [f'Config.max_steps = {STEPS}', f'Config.checkpoint_every = {EVERY}', 'Config.batch_size = 64',
         'Config.print_every = 1000', 'Config.train_render_every = 0', 'Config.render_chunk_size = 2048',
         'Model.num_prop_samples = 8', 'Model.num_nerf_samples = 8', 'PropMLP.net_depth = 1', 'PropMLP.net_width = 16',
         'NerfMLP.net_depth = 2', 'NerfMLP.net_width = 16', 'NerfMLP.max_deg_point = 4']
PROTOCOL_KEYS = {'split', 'resolution', 'background', 'uint8_rounding', 'crop_borders', 'psnr', 'ssim', 'lpips',
                 'image_factor', 'llffhold', 'num_test_images', 'step', 'dataset_loader', 'color_correction'}


def make(tmp, *variables, popen=False):
    return make_reproduce('mipnerf360', tmp, *variables, popen=popen)


def test_cells_at_the_papers_factors():
    args = reproduce.parse_args(['--runs_dir', 'r', '--data_dir', 'd', '--scenes', 'room,garden'])
    cells = reproduce.build_cells(args)
    assert [(c.key, c.labels['factor']) for c in cells] == [('garden', 4), ('room', 2)]
    assert 'Config.factor = 2' in ' '.join(cells[1].eval) and 'Config.factor = 4' in ' '.join(cells[0].train)
    assert cells[0].train_rays == 250000 * 16384 and cells[0].metrics_file.endswith('test_preds/metrics_250000.json')
    with pytest.raises(ValueError, match="unknown \\['lego'\\]"):
        reproduce.build_cells(reproduce.parse_args(['--runs_dir', 'r', '--scenes', 'garden,lego']))


def test_main_table_end_to_end(tmp_path):
    data = tmp_path / '360_v2'
    # 192x128: the outdoor test images (images_4) are 48x32, the least LPIPS-AlexNet takes
    subprocess.run([sys.executable, '-m', 'data_tools.standin', '360_v2', '--out', str(data), '--scenes',
                    'garden,room', '--res', '192x128', '--views', '10'], cwd=REPO, check=True, capture_output=True)
    runs = tmp_path / 'runs' / 'mipnerf360' / 'reproduce'
    out = tmp_path / 'results' / 'mipnerf360'
    args = f'ARGS=--out {out} ' + ' '.join(f'--bind "{b}"' for b in BINDS)
    selection = [f'DATA_DIR={data}', 'SCENES=garden,room', args]

    missing = make(tmp_path, f'DATA_DIR={data}', 'SCENES=bicycle,garden', args)
    assert missing.returncode != 0 and str(data / 'bicycle') in missing.stderr, missing.stderr
    assert str(data / 'garden') not in missing.stderr and 'sparse/0/' in missing.stderr and 'images_4/' in missing.stderr
    assert not runs.exists()

    assert_plan(make(tmp_path, *selection[:2], 'DRY_RUN=1', args), 'garden', 'room', 'mipnerf360.train')
    assert not runs.exists()

    # killed after the first checkpoint of garden: the rerun resumes from the newest one
    kill_and_resume(functools.partial(make, tmp_path, *selection), runs / 'garden', 'garden', 'room', STEPS,
                    'test_preds')

    table = json.loads(out.with_suffix('.json').read_text())
    assert [(r['key'], r['factor']) for r in table['rows']] == [('garden', 4), ('room', 2)]
    assert table['finished'] == '2 of 2'
    for row in table['rows']:
        assert all(math.isfinite(row['ours'][m]) for m in ('psnr', 'ssim', 'lpips_vgg')), row['ours']
        assert PROTOCOL_KEYS <= set(row['protocol']), PROTOCOL_KEYS - set(row['protocol'])
        assert row['protocol']['step'] == STEPS and row['protocol']['lpips']['paper_table'] == 'vgg'
        assert row['run']['hardware'] and row['run']['commit'] and row['run']['peak_host_memory_mib'] > 0
    assert [r['protocol']['resolution'] for r in table['rows']] == ['48x32', '96x64']
    assert [r['protocol']['image_factor'] for r in table['rows']] == [4, 2]
    assert [r['published']['psnr'] for r in table['rows']] == [26.98, 31.63] and 'generate_tables' in table['source']
    assert table['published_mean'] == {'psnr': 27.69, 'ssim': 0.792, 'lpips_vgg': 0.237}
    assert table['group_means']['outdoor']['finished'] == '1 of 5'
    assert table['config_file'] == 'mipnerf360/configs/360.gin' and table['config_overrides'] == BINDS
    md = out.with_suffix('.md').read_text()
    assert '| garden | 4 | 26.980 / ' in md and '| room | 2 | 31.630 / ' in md and '**mean**' in md
    assert 'Protocol:' in md and '"resolution": "96x64"' in md and '| indoor | 31.720 / ' in md

    # finished scenes are skipped: nothing trains or evaluates again
    assert_rerun_skips_finished(functools.partial(make, tmp_path, *selection), runs, 'mipnerf360.train')

    summary = subprocess.run([sys.executable, '-m', 'mipnerf360.scripts.summarize', str(runs), '--scenes',
                              'garden,room', '--out', str(tmp_path / 'summary'), *[f'--bind={b}' for b in BINDS]],
                             cwd=REPO, capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr
    rebuilt = json.loads((tmp_path / 'summary.json').read_text())
    assert [(r['ours'], r['protocol']) for r in rebuilt['rows']] == [(r['ours'], r['protocol']) for r in table['rows']]
    assert rebuilt['group_means'] == table['group_means'] and rebuilt['config_overrides'] == BINDS
