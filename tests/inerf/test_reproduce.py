"""`make reproduce-inerf` end to end on stand-in datasets in the published layouts (tiny configs through
ARGS). Pose table: a missing scene named (in-process), the dry-run plan, a run killed after its first
checkpoint resuming from it, the table, finished scenes skipped, the summariser. pixelNeRF table: a
missing checkpoint named (in-process), the evaluation of a tiny untrained checkpoint in the release's
format, the table."""

import functools
import json
import math
import pathlib
import re
import subprocess
import sys
import types

import pytest

from inerf.scripts import reproduce, summarize
from tests.conftest import (
    assert_plan,
    assert_rerun_skips_finished,
    kill_at_first_checkpoint,
    make_reproduce,
)

REPO = pathlib.Path(__file__).parents[2]
POSE_BINDS = ['Config.N_iters=100', 'Config.i_weights=20', 'Config.i_print=20', 'Config.netdepth=2',
              'Config.netwidth=32', 'Config.N_samples=16', 'Config.N_importance=0', 'Config.N_rand=64',
              'Config.half_res=False', 'Config.testskip=1', 'Config.precrop_iters=0', 'Config.n_test_images=1',
              'Config.n_trials=1', 'Config.n_steps=10', 'Config.eval_steps=(0,10)', 'Config.batch_size=64',
              "Config.sampling_strategy='random'", 'Config.near=2.8', 'Config.far=5.0']
POSE_PROTOCOL_KEYS = {'dataset', 'views', 'resolution', 'background', 'trials_per_view', 'perturbation',
                      'max_rotation_deg', 'max_translation', 'batch_size', 'sampling_strategy', 'n_steps',
                      'rotation_error', 'translation_error', 'rotation_threshold_deg', 'translation_threshold',
                      'final_step', 'n_trials'}
PIXELNERF_PROTOCOL_KEYS = {'dataset_format', 'excluded_views', 'uint8_rounding', 'psnr', 'ssim', 'lpips', 'reduce',
                           'objects', 'source_views', 'resolution', 'background', 'checkpoint'}


def make(tmp, *variables, popen=False):
    return make_reproduce('inerf', tmp, *variables, popen=popen)


def pose_args(tmp):
    return 'ARGS=' + ' '.join(f'--bind "{b}"' for b in POSE_BINDS) + f' --out {tmp / "results" / "inerf_pose"}'


def standin(layout, out, scenes, res, views):
    subprocess.run([sys.executable, '-m', 'data_tools.standin', layout, '--out', str(out), '--scenes', scenes,
                    '--res', res, '--views', str(views)], cwd=REPO, check=True, capture_output=True)


def check_table(path, keys, metrics, protocol_keys):
    table = json.loads(path.with_suffix('.json').read_text())
    assert [r['key'] for r in table['rows']] == keys and table['finished'] == f'{len(keys)} of {len(keys)}'
    for row in table['rows']:
        assert all(math.isfinite(row['ours'][m]) for m in metrics), row['ours']
        assert protocol_keys <= set(row['protocol']), protocol_keys - set(row['protocol'])
        assert row['run']['hardware'] and row['run']['commit'] and row['run']['peak_host_memory_mib'] > 0
    assert all(math.isfinite(table['mean'][m]) for m in metrics)
    md = path.with_suffix('.md').read_text()
    assert all(f'| {k.split("/")[0]} |' in md for k in keys) and '**mean**' in md and 'Protocol:' in md
    return table


def test_pose_table_end_to_end(tmp_path):
    data = tmp_path / 'data'
    standin('nerf_synthetic', data, 'chair,lego', '16x16', 10)
    runs = tmp_path / 'runs' / 'inerf' / 'reproduce'
    args = pose_args(tmp_path)

    with pytest.raises(FileNotFoundError, match=rf"(?s)missing scene folders.*{data / 'ship'}.*transforms_train"):
        reproduce.main(['--runs_dir', str(runs), '--data_dir', str(data), '--scenes', 'chair,ship'])
    assert not runs.exists()

    assert_plan(make(tmp_path, f'DATA_DIR={data}', 'SCENES=chair,lego', 'DRY_RUN=1', args), 'chair', 'lego',
                'inerf.train_nerf')
    assert not runs.exists()

    # killed after the first checkpoint of chair: the rerun resumes from the newest one
    ckpts = runs / 'chair' / 'ckpts' / 'chair'
    process = make(tmp_path, f'DATA_DIR={data}', 'SCENES=chair,lego', args, popen=True)
    saved = kill_at_first_checkpoint(process, ckpts, timeout=120)
    assert saved and saved[-1] < 100 and not (runs / 'chair' / 'results').exists()

    resumed = make(tmp_path, f'DATA_DIR={data}', 'SCENES=chair,lego', args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert '== chair: partial' in resumed.stdout and '== lego: new' in resumed.stdout
    starts = re.findall(r'train_nerf:[^\r\n]*?(\d+)/100 \[00:00<\?', resumed.stdout + resumed.stderr)
    assert starts[:2] == [str(saved[-1]), '0'], starts  # chair from its checkpoint, lego afresh
    out = tmp_path / 'results' / 'inerf_pose'
    table = check_table(out, ['chair', 'lego'], ['rotation_success', 'translation_success', 'success',
                                                  'median_rotation_deg', 'median_translation'], POSE_PROTOCOL_KEYS)
    assert table['published_mean']['rotation_success'] == 0.71 and 'arXiv 2012.05877' in table['source']
    assert all(r['published'] is None for r in table['rows'])

    # finished scenes are skipped: nothing trains or evaluates again
    assert_rerun_skips_finished(functools.partial(make, tmp_path, f'DATA_DIR={data}', 'SCENES=chair,lego', args), runs, 'train_nerf')

    summarize.main([str(runs), '--scenes', 'chair,lego', '--out', str(tmp_path / 'summary')])
    rebuilt = json.loads((tmp_path / 'summary.json').read_text())
    assert [r['ours'] for r in rebuilt['rows']] == [r['ours'] for r in table['rows']]


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_conf):
    """An untrained tiny pixelNeRF (tiny_conf) saved as the release's <ckpts>/srn_car/pixel_nerf_latest."""
    from pyhocon import ConfigFactory

    from inerf.src.model import make_model
    conf = tmp_path / 'tiny.conf'
    conf.write_text(tiny_conf)
    (tmp_path / 'ckpts' / 'srn_car').mkdir(parents=True)
    make_model(ConfigFactory.parse_string(tiny_conf)['model']).save_weights(
        types.SimpleNamespace(checkpoints_path=str(tmp_path / 'ckpts'), name='srn_car'))
    return conf


def test_pixelnerf_table_end_to_end(tmp_path, tiny_checkpoint):
    from inerf.eval import calc_metrics
    if not pathlib.Path(calc_metrics.metrics.default_lpips_weights_path()).exists():
        pytest.skip('LPIPS weights file missing (python -m data_tools.lpips_weights)')
    data = tmp_path / 'srn'
    standin('srn_cars', data, 'cars', '32x32', 3)
    assert sorted(p.name for p in (data / 'cars_test' / 'obj0').iterdir()) == ['intrinsics.txt', 'pose', 'rgb']
    out = tmp_path / 'results' / 'inerf_pixelnerf'
    common = ['TABLE=pixelnerf', f'DATA_DIR={data}', 'SCENES=cars']

    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'none' / 'srn_car' / 'pixel_nerf_latest')):
        reproduce.main(['--runs_dir', str(tmp_path / 'runs'), '--table', 'pixelnerf', '--data_dir', str(data),
                        '--scenes', 'cars', '--checkpoints_path', str(tmp_path / 'none')])
    assert not (tmp_path / 'runs').exists()

    args = (f"ARGS=--checkpoints_path {tmp_path / 'ckpts'} --source_views 0,1 --bind '-c {tiny_checkpoint} "
            f"--scale 0.25 --no_compare_gt --num_workers 0' --metrics_bind '--lpips_batch_size 2' --out {out}")
    run = make(tmp_path, *common, args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = check_table(out, ['cars/1v', 'cars/2v'], ['psnr', 'ssim', 'lpips'], PIXELNERF_PROTOCOL_KEYS)
    assert [r['protocol']['excluded_views']['primary'] for r in table['rows']] == [[0], [0, 1]]
    assert table['rows'][0]['published']['psnr'] == 23.17 and table['rows'][0]['run']['train_seconds'] == 0
    assert table['rows'][0]['protocol']['reduce'].endswith('(every object: --fix_reduce_accumulation)')
