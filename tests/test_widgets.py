"""Explanations and widgets from real run directories and the command line; widgets in a live kernel and in the docs."""
import json, os, subprocess

import numpy as np
import pytest
import xarray as xr

from conftest import BIN, ROOT, TINY, dermxai, docs_project


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    "A tiny trained resnet14 run (SynthDerm 96 cases at 32 px, 1 epoch)."
    home = tmp_path_factory.getbasetemp()/'dermxai_home'
    os.environ['DERMXAI_HOME'] = str(home); os.environ['DERMXAI_DEVICE'] = 'cpu'
    out = tmp_path_factory.mktemp('runs')/'r14'
    dermxai('train', 'resnet14', '--out', out, *TINY, '--epochs', '1', check=True)
    return out


def test_dermxai_explain_writes_netcdf_and_scores(run_dir):
    res = dermxai('explain', run_dir, '--methods', 'cam', 'gradcam', 'ig', 'saliency', '--n', '4', '--ig-steps', '2',
                  '--target', 'MEL', '--score', '--no-progress', check=True)
    assert 'cases/s' in res.stdout and 'pointing_game' in res.stdout
    with xr.open_dataarray(run_dir/'explanations.nc') as da:
        assert da.dims == ('case', 'method', 'y', 'x') and da.shape == (4, 4, 32, 32)
        assert list(da.method.values) == ['cam', 'gradcam', 'ig', 'saliency'] and set(da.target.values) == {'MEL'}
        assert da.attrs['run'] == str(run_dir) and np.isfinite(da.values).all()
    table = (run_dir/'explanations.localisation.csv').read_text()
    assert table.startswith('model,method,layer,grid,resolved,aligned,pointing_game') and 'random' in table and 'centre' in table
    assert 'constant_maps' in table.splitlines()[0]
    bad = dermxai('explain', run_dir, '--methods', 'lime', '--n', '2', '--no-progress')
    assert bad.returncode == 2 and "'lime'" in bad.stderr


def test_widgets_from_run(run_dir):
    from dermxai.widgets_checklist import ChecklistExplorer
    from dermxai.widgets import (AttentionOverlay, CorrelationHeatmap, ScaleGateCurves,
                                 SharingFractionExplorer)
    from dermxai.core import DataError
    if not (run_dir/'explanations.nc').exists():
        dermxai('explain', run_dir, '--methods', 'cam', 'saliency', '--n', '4', '--no-progress', check=True)
    ao = AttentionOverlay.from_run(run_dir)
    assert ao.images.shape[1:] == (32, 32, 3) and ao.truth is not None and ao.scale == 8
    before = ao.fig.data[0].source
    ao.case.value = 1
    assert ao.fig.data[0].source != before and ao.fig.layout.title.text.startswith(f'#{ao.cases[1]} ')
    ch = CorrelationHeatmap.from_run(run_dir)
    assert ch.dataset.options[0].endswith('diagnosis') and len(ch.fig.data[1].z) == 5      # planted beside empirical
    with pytest.raises(DataError, match='checklist.nc'): ChecklistExplorer.from_run(run_dir)
    with pytest.raises(DataError, match='ARL-CNN runs record it'): ScaleGateCurves.from_run(run_dir)
    # a gated / ARL history in the agreed formats, as the Trainer writes it
    from dermxai.trainer import history_dataset
    from dermxai.vocab import TASKS
    tasks = list(TASKS)
    recs = [{'epoch': e,
             'sharing_fraction': xr.DataArray(np.full((4, 8, 8), 1 / 8) + 0.01 * e * np.eye(8), dims=('block', 'target_task', 'source_task'),
                                              coords={'block': ['gate1', 'gate2', 'gate3', 'gate4'], 'target_task': tasks, 'source_task': tasks}),
             'scale_gate': xr.DataArray([0.1 * e, 0.2 * e], dims='block', coords={'block': ['layer1.0', 'layer2.0']})}
            for e in (1, 2, 3)]
    fake, arl = run_dir.parent/'gated', run_dir.parent/'arl'
    for d, var in ((fake, 'sharing_fraction'), (arl, 'scale_gate')):
        d.mkdir(exist_ok=True)
        history_dataset([{k: v for k, v in r.items() if k in ('epoch', var)} for r in recs]).to_netcdf(d/'history.nc')
    sf = SharingFractionExplorer.from_run(fake)
    assert sf.epoch.value == 3 and np.isclose(np.array(sf.fig.data[0].z)[0, 0], 1 / 8 + 0.03)
    sf.epoch.value = 1
    assert np.isclose(np.array(sf.fig.data[0].z)[0, 0], 1 / 8 + 0.01) and 'epoch 1' in sf.fig.layout.title.text
    sg = ScaleGateCurves.from_run(arl)
    assert [t.name for t in sg.fig.data] == ['arl · layer1.0', 'arl · layer2.0']
    assert np.allclose(sg.fig.data[1].y, [0.2, 0.4, 0.6])


NB_CELL = """import numpy as np, xarray as xr
from dermxai.widgets import ScaleGateCurves
g = xr.DataArray(np.arange(10.).reshape(5, 2), dims=('epoch', 'block'), coords={'epoch': range(1, 6), 'block': ['layer1.0', 'layer2.0']})
ScaleGateCurves(g)"""


def test_widget_in_a_live_kernel(tmp_path):
    "In a kernel: the widget view (FigureWidget through anywidget) plus the static figure as fallback."
    import nbclient, nbformat
    from nbconvert import MarkdownExporter
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NB_CELL)],
                                  metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbclient.NotebookClient(nb, timeout=180, resources={'metadata': {'path': str(tmp_path)}}).execute()
    data = nb.cells[0].outputs[-1]['data']
    assert 'application/vnd.jupyter.widget-view+json' in data and 'Plotly.newPlot' in data['text/html']
    assert 'scale gate' in data['text/plain']
    md, _ = MarkdownExporter().from_notebook_node(nb)
    assert 'Plotly.newPlot' in md


def test_docs_show_static_figures_not_empty_boxes(tmp_path):
    "nbdev's docs processing runs the `#| exec_doc` cells: every widget there must come out as a static plotly figure."
    stub = tmp_path/'bin'; stub.mkdir()
    (stub/'quarto').write_text('#!/bin/sh\nexit 0\n'); (stub/'quarto').chmod(0o755)
    env = {**os.environ, 'PATH': f'{stub}:{os.environ["PATH"]}'}
    project = docs_project(tmp_path/'project')
    res = subprocess.run([str(BIN/'nbdev_proc_nbs'), '--file_re', r'40_widgets\.ipynb$'], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    src = json.loads((ROOT/'nbs'/'40_widgets.ipynb').read_text())['cells']
    figure_cells = sum(c['cell_type'] == 'code' and '#| exec_doc' in ''.join(c['source']) for c in src)
    for nb_path, expected in [(project/'_proc'/'40_widgets.ipynb', figure_cells)]:
        nb = json.loads(nb_path.read_text())
        shown = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])
                 if 'text/html' in o.get('data', {}) and 'Plotly.newPlot' in ''.join(o['data']['text/html'])]
        assert len(shown) == expected, (nb_path.name, len(shown))
        assert not any('application/vnd.jupyter.widget-view+json' in o['data'] for o in shown)

