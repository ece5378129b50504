"""data_tools.reproduce on cells whose commands are small Python snippets: missing data, the plan, skipping
finished cells, resuming a failed one, side-by-side jobs, and the written table."""

import json
import os

import pytest

from data_tools import reproduce

REFERENCE = {'paper': 'Toy paper', 'source': 'Table 1 of the toy paper', 'metrics': ['psnr', 'ssim'],
             'rows': {'a': {'psnr': 30.0, 'ssim': 0.9}, 'b': {'psnr': 20.0, 'ssim': 0.5}},
             'mean': {'psnr': 25.0, 'ssim': 0.7}}


def toy_cells(root, fail_marker=None):
    """Cells a and b: 'training' counts its runs in run_dir/trained; 'eval' writes metrics.json."""
    cells = []
    for key, psnr in (('a', 29.0), ('b', 21.0)):
        data, run = root / 'data' / key, root / 'runs' / key
        fail = f"import os,sys; sys.exit(3) if os.path.exists({str(fail_marker)!r}) else None; " if fail_marker else ''
        train = ['-c', fail + f"import pathlib; p = pathlib.Path({str(run / 'trained')!r}); "
                 "p.write_text(str(int(p.read_text()) + 1) if p.exists() else '1')"]
        evaluate = ['-c', f"import json; json.dump({{'psnr': {psnr}, 'ssim': 0.6, 'protocol': {{'split': 'test'}}}}, "
                    f"open({str(run / 'metrics.json')!r}, 'w'))"]
        cells.append(reproduce.Cell(key=key, labels={'scene': key}, data_dir=str(data), run_dir=str(run),
                                    train=train, eval=evaluate, metrics_file=str(run / 'metrics.json'),
                                    train_rays=3.6e6, eval_rays=0.))
    return cells


def read_metrics(cell):
    with open(cell.metrics_file) as f:
        metrics = json.load(f)
    return metrics, metrics['protocol']


def test_missing_scenes_are_named_and_nothing_runs(tmp_path):
    cells = toy_cells(tmp_path)
    (tmp_path / 'data' / 'a').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"(?s)missing scene folders.*data/b.*expected in each: images/"):
        reproduce.missing_scenes(cells, 'images/ and sparse/0/')
    assert not (tmp_path / 'runs').exists()


def test_plan_estimates_hours_from_rates(tmp_path):
    lines = reproduce.plan(toy_cells(tmp_path), {'train_rays_per_s': 1000., 'render_rays_per_s': 1.})
    assert lines[0].split()[:3] == ['a', 'new', '~1.00']
    assert lines[-1].startswith('total ~2.00 h at 1000 train / 1 render rays/s')


def test_run_skips_finished_cells_resumes_failed_ones_and_writes_the_table(tmp_path):
    marker = tmp_path / 'fail'
    cells = toy_cells(tmp_path, fail_marker=marker)
    for cell in cells:
        os.makedirs(cell.data_dir)
    marker.write_text('')
    with pytest.raises(RuntimeError, match='cell a failed.*rerun the same command'):
        reproduce.run_cells(cells)
    assert reproduce.status(cells[0]) == 'partial' and reproduce.status(cells[1]) == 'new'
    marker.unlink()
    reproduce.run_cells(cells, jobs=2)
    assert [reproduce.status(c) for c in cells] == ['done', 'done']
    assert (tmp_path / 'runs' / 'a' / 'trained').read_text() == '1'
    reproduce.run_cells(cells)  # finished cells are skipped
    assert (tmp_path / 'runs' / 'a' / 'trained').read_text() == '1'
    record = json.loads((tmp_path / 'runs' / 'a' / reproduce.RECORD).read_text())
    assert record['train_seconds'] > 0 and record['peak_host_memory_mib'] > 1
    assert record['train_command'].startswith('python -c') and record['hardware']

    out = tmp_path / 'results' / 'toy'
    table = reproduce.summarize(REFERENCE, cells, read_metrics, str(out))
    assert table['mean'] == {'psnr': 25.0, 'ssim': 0.6} and table['finished'] == '2 of 2'
    assert json.loads((tmp_path / 'results' / 'toy.json').read_text())['rows'][1]['ours']['psnr'] == 21.0
    md = (tmp_path / 'results' / 'toy.md').read_text()
    assert '| a | 30.000 / 29.000 | 0.900 / 0.600 |' in md
    assert '| **mean** | 25.000 / 25.000 | 0.700 / 0.600 |' in md
    assert '"split": "test"' in md and 'Table 1 of the toy paper' in md


def test_selected_scenes():
    assert reproduce.selected(['garden', 'room', 'bonsai'], 'room,garden') == ['garden', 'room']
    assert reproduce.selected(['garden', 'room'], '') == ['garden', 'room']
    with pytest.raises(ValueError, match="unknown \\['gardn'\\]"):
        reproduce.selected(['garden', 'room'], 'gardn')
