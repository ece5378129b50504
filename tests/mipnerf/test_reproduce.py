"""`make reproduce-mipnerf` end to end on the nerf_synthetic stand-in (lego and chair, converted to the
multi-scale layout with mipnerf.scripts.convert_blender_data) with a tiny model through ARGS: missing and
unconverted scene folders refused before anything runs, the dry-run plan, a killed run resuming from its
checkpoint, the multiscale table (every scene x scale row, finite numbers, the protocol block, Table 1's
per-scale means), finished scenes skipped, the summariser rebuilding the same table; and the single-scale
table beside Table 2's per-scene numbers."""

import functools
import json
import math
import pathlib
import subprocess
import sys

import pytest

from mipnerf.scripts import reproduce
from tests.conftest import assert_plan, assert_rerun_skips_finished, kill_and_resume, make_reproduce

REPO = pathlib.Path(__file__).parents[2]
STEPS = 40
BINDS = [f'Config.max_steps = {STEPS}', 'Config.save_every = 10', 'Config.print_every = 10',
         'Config.batch_size = 64', 'Config.lr_delay_steps = 0', 'MipNerfModel.num_samples = 4',
         'MipNerfModel.max_deg_point = 4', 'MLP.net_depth = 2', 'MLP.net_width = 16', 'MLP.net_width_condition = 8']
PROTOCOL_KEYS = {'split', 'scale', 'scales', 'resolution', 'background', 'uint8_rounding', 'crop_borders', 'psnr',
                 'ssim', 'lpips', 'lpips_backbones', 'avg_error', 'n_test_images', 'step'}
SCALES = ['Full', '1/2', '1/4', '1/8']


def make(tmp, *variables, popen=False):
    return make_reproduce('mipnerf', tmp, *variables, popen=popen)


def args_variable(out, *extra):
    return 'ARGS=' + ' '.join([*extra, '--out', str(out), *[f'--bind "{b}"' for b in BINDS]])


def standin(tmp, scenes='lego,chair'):
    """The Blender stand-in (32x32, so SSIM's window fits the 1/2 scale) and its multi-scale conversion."""
    blender, multiscale = tmp / 'nerf_synthetic', tmp / 'nerf_synthetic_multiscale'
    for argv in (['-m', 'data_tools.standin', 'nerf_synthetic', '--out', str(blender), '--scenes', scenes,
                  '--res', '32x32', '--views', '4'],
                 ['-m', 'mipnerf.scripts.convert_blender_data', '--blender_dir', str(blender),
                  '--out_dir', str(multiscale)]):
        subprocess.run([sys.executable, *argv], cwd=REPO, check=True, capture_output=True)
    return blender, multiscale


def test_cells_rows_and_tables():
    args = reproduce.parse_args(['--runs_dir', 'r', '--scenes', 'ship,lego'])
    assert args.table == 'multiscale' and args.gin == 'mipnerf/configs/multiblender.gin'
    assert args.data_dir == str(REPO / 'data' / 'nerf_synthetic_multiscale')
    assert args.out == str(REPO / 'results' / 'mipnerf_multiscale')
    cells = reproduce.train_cells(args, with_commands=False)
    assert [c.key for c in cells] == ['lego', 'ship']
    assert [c.key for c in reproduce.row_cells(args, cells)] == [f'{s}/{f}' for s in ('lego', 'ship') for f in (1, 2, 4, 8)]
    single = reproduce.parse_args(['--runs_dir', 'r', '--table', 'singlescale'])
    assert single.gin == 'mipnerf/configs/blender.gin' and single.data_dir == str(REPO / 'data' / 'nerf_synthetic')
    assert [c.key for c in reproduce.row_cells(single, reproduce.train_cells(single, False))] == reproduce.SCENES
    with pytest.raises(ValueError, match="unknown \\['legos'\\]"):
        reproduce.train_cells(reproduce.parse_args(['--runs_dir', 'r', '--scenes', 'lego,legos']), False)
    # the published data files: Table 2 per scene, Table 1 means per scale only
    assert reproduce.reference(single)['rows']['lego'] == {'psnr': 35.70, 'ssim': 0.978, 'lpips_vgg': 0.021}
    multi = reproduce.reference(args)
    assert multi['rows'] == {} and list(multi['scale_means']) == SCALES and 'Table 1' in multi['source']


def test_multiscale_table_end_to_end(tmp_path):
    blender, data = standin(tmp_path)
    runs = tmp_path / 'runs' / 'mipnerf' / 'reproduce' / 'multiscale'
    out = tmp_path / 'results' / 'mipnerf_multiscale'
    selection = [f'DATA_DIR={data}', 'SCENES=lego,chair', args_variable(out)]

    # a missing scene and an unconverted (single-scale) one: both named, the converter named, nothing run
    missing = make(tmp_path, f'DATA_DIR={blender}', 'SCENES=lego,ship', args_variable(out))
    assert missing.returncode != 0
    assert str(blender / 'ship') in missing.stderr and str(blender / 'lego' / 'metadata.json') in missing.stderr
    assert 'mipnerf.scripts.convert_blender_data' in missing.stderr and 'images_{train,val,test}' in missing.stderr
    assert not (tmp_path / 'runs').exists()

    assert_plan(make(tmp_path, *selection, 'DRY_RUN=1'), 'chair', 'lego',
                'mipnerf.train --gin_file=mipnerf/configs/multiblender.gin')
    assert not (tmp_path / 'runs').exists()

    # killed after the first checkpoint of chair (the first scene): the rerun resumes from the newest one
    kill_and_resume(functools.partial(make, tmp_path, *selection), runs / 'chair', 'chair', 'lego', STEPS, 'eval')

    table = json.loads(out.with_suffix('.json').read_text())
    assert [(r['scene'], r['scale']) for r in table['rows']] == [(s, c) for s in ('chair', 'lego') for c in SCALES]
    assert [r['key'] for r in table['rows']][:4] == ['chair/1', 'chair/2', 'chair/4', 'chair/8']
    assert table['finished'] == '8 of 8' and table['table'] == 'multiscale' and table['config_overrides'] == BINDS
    for row in table['rows']:
        ours, protocol = row['ours'], row['protocol']
        assert math.isfinite(ours['psnr']), row
        big = row['scale'] in ('Full', '1/2')  # 32 and 16 px; SSIM's window is 11, VGG's LPIPS needs 16
        assert all(v is None or math.isfinite(v) for v in ours.values()), ours
        assert not big or math.isfinite(ours['ssim']), row
        assert row['published'] is None  # Table 1 has means only
        assert PROTOCOL_KEYS <= set(protocol), PROTOCOL_KEYS - set(protocol)
        size = 32 // 2**SCALES.index(row['scale'])
        assert protocol['resolution'] == f'{size}x{size}' and protocol['scale'] == row['scale']
        assert protocol['split'] == 'test' and protocol['background'] == 'white' and protocol['step'] == STEPS
        assert row['run']['hardware'] and row['run']['commit'] and row['run']['peak_host_memory_mib'] > 0
    assert table['published_mean']['avg_error'] == 0.0114 and math.isfinite(table['mean']['psnr'])
    assert [table['scale_means'][s]['published']['psnr'] for s in SCALES] == [32.629, 34.336, 35.471, 35.602]
    assert all(table['scale_means'][s]['scenes'] == 2 and math.isfinite(table['scale_means'][s]['ours']['psnr'])
               for s in SCALES)
    md = out.with_suffix('.md').read_text()
    assert '| chair | Full | - / ' in md and '| lego | 1/8 | - / ' in md and '| **mean** |  | 34.510 / ' in md
    assert '| 1/8 | 2 | 35.602 / ' in md and 'Protocol:' in md and '"resolution": "4x4"' in md

    # finished scenes are skipped: nothing trains or evaluates again
    assert_rerun_skips_finished(functools.partial(make, tmp_path, *selection), runs, 'mipnerf.train')

    summary = subprocess.run([sys.executable, '-m', 'mipnerf.scripts.summarize', str(runs.parent), '--scenes',
                              'lego,chair', '--data_dir', str(data), '--out', str(tmp_path / 'summary')],
                             cwd=REPO, capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr
    rebuilt = json.loads((tmp_path / 'summary.json').read_text())
    assert [(r['ours'], r['protocol']) for r in rebuilt['rows']] == [(r['ours'], r['protocol']) for r in table['rows']]
    assert rebuilt['scale_means'] == table['scale_means']


def test_singlescale_table(tmp_path):
    blender, _ = standin(tmp_path, 'lego')
    out = tmp_path / 'results' / 'mipnerf_singlescale'
    result = make(tmp_path, 'TABLE=singlescale', f'DATA_DIR={blender}', 'SCENES=lego', args_variable(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / 'runs' / 'mipnerf' / 'reproduce' / 'singlescale' / 'lego' / 'eval' / 'metrics.json').is_file()
    table = json.loads(out.with_suffix('.json').read_text())
    (row,) = table['rows']
    assert row['key'] == 'lego' and row['published'] == {'psnr': 35.70, 'ssim': 0.978, 'lpips_vgg': 0.021}
    assert all(math.isfinite(row['ours'][m]) for m in ('psnr', 'ssim', 'lpips_vgg', 'avg_error')), row['ours']
    assert PROTOCOL_KEYS <= set(row['protocol']) and row['protocol']['resolution'] == '32x32'
    assert row['protocol']['scales'] == ['Full'] and table['config_file'] == 'mipnerf/configs/blender.gin'
    assert table['published_mean'] == {'psnr': 33.09, 'ssim': 0.961, 'lpips_vgg': 0.043, 'avg_error': 0.0161}
    md = out.with_suffix('.md').read_text()
    assert '| lego | 35.700 / ' in md and '| **mean** | 33.090 / ' in md and 'Table 2' in md
