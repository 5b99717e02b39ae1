"""Widget latency: the kernel-side callback (p50 / p95 per widget, target p95 < 100 ms at 224 px), the browser round
trip from an input event to the redrawn figure in the page (target p95 < 300 ms), and the time to first draw of each
widget cell of the notebooks after a tour (target < 3 s once the kernel is warm), the latter two in JupyterLab on
127.0.0.1 driven by Debian's chromium (skipped, and said so, when chromium is missing).

    python bench/widget_latency.py [--size 224] [--n 40] [--no-browser] [--tour tour]
"""
import argparse, json, sys, tempfile, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tests'))
from _common import save  # noqa: E402

SETUP = '''
import numpy as np, xarray as xr
from dermxai.sources import SynthSource
from dermxai.vocab import TASKS
from dermxai.widgets import AttentionOverlay, CorrelationHeatmap, ScaleGateCurves, SharingFractionExplorer
from dermxai.widgets_checklist import ChecklistExplorer, ChecklistQuiz, checklist_fixture
SIZE = {size}
rng = np.random.default_rng(0)
tasks = list(TASKS)
sf = rng.dirichlet(np.ones(8), size=(10, 4, 8))
sf = xr.DataArray(sf, dims=('epoch', 'block', 'target_task', 'source_task'),
                  coords={{'epoch': np.arange(1, 11), 'block': ['gate1', 'gate2', 'gate3', 'gate4'], 'target_task': tasks, 'source_task': tasks}})
sg = xr.DataArray(np.cumsum(rng.normal(0.02, 0.01, (30, 4)), 0), dims=('epoch', 'block'),
                  coords={{'epoch': np.arange(1, 31), 'block': ['layer1.0', 'layer2.0', 'layer3.0', 'layer4.0']}})
src = SynthSource.generate(n=48, size=SIZE, seed=0, progress=False)
cases = [int(i) for i in src.split_indices('test')[:8]]
maps = rng.random((len(cases), 3, SIZE, SIZE)).astype('float32')
attr = xr.DataArray(maps, dims=('case', 'method', 'y', 'x'), coords={{'case': cases, 'method': ['cam', 'gradcam', 'saliency'],
                    'technique': ('method', ['cam', 'gradcam', 'saliency']), 'layer': ('method', ['net.layer4', 'net.layer4', '']),
                    'target': ('case', ['MEL'] * len(cases)), 'probability': ('case', rng.random(len(cases))),
                    'predicted': ('case', ['MEL'] * len(cases))}})
images = np.stack([src.image(i) for i in cases])
truth = np.stack([src.masks(i, ['lesion'])[0] for i in cases])
widgets = {{
    'SharingFractionExplorer': SharingFractionExplorer({{'a': sf, 'b': sf[::-1].assign_coords(epoch=sf.epoch)}}),
    'ScaleGateCurves': ScaleGateCurves({{'a': sg, 'b': sg * 2}}),
    'AttentionOverlay': AttentionOverlay({{('resnet14', 'diagnosis'): attr}}, images, truth, src.labels.diagnosis.values[cases]),
    'CorrelationHeatmap': CorrelationHeatmap.from_source(src),
    'ChecklistExplorer': ChecklistExplorer(checklist_fixture(src, src.split_indices('test')), src),
    'ChecklistQuiz': ChecklistQuiz(src, cases, None),
}}
'''

# per widget: (the control to move, the values to cycle through, the CSS selector of the control in the page, the action)
MOVES = {
    'SharingFractionExplorer': ('epoch', 'slider'), 'ScaleGateCurves': ('blocks', 'multiselect'),
    'AttentionOverlay': ('case', 'select'), 'CorrelationHeatmap': ('order', 'toggle'),
    'ChecklistExplorer': ('tau', 'slider'), 'ChecklistQuiz': ('next', 'quiz'),
}


def kernel_latency(size, n):
    ns = {}
    exec(SETUP.format(size=size), ns)
    out = {}
    for name, w in ns['widgets'].items():
        w.timings.clear()
        attr, _ = MOVES[name]
        if name == 'ChecklistQuiz':
            for _ in range(n): w.next_case()
        else:
            c = getattr(w, attr)
            opts = [o[1] if isinstance(o, tuple) else o for o in c.options] if hasattr(c, 'options') else list(range(c.min, c.max + 1))
            if name == 'ScaleGateCurves': opts = [tuple(opts[:k]) for k in range(1, len(opts) + 1)]
            cur = c.value
            for k in range(n):
                v = opts[k % len(opts)]
                if v == cur: v = opts[(k + 1) % len(opts)]
                c.value = cur = v
        t = np.array(w.timings)
        out[name] = {'p50_ms': float(np.percentile(t, 50)), 'p95_ms': float(np.percentile(t, 95)), 'n': int(len(t))}
    return out


def browser_latency(size, n):
    from browser import browser, chromium_missing_reason, jupyter_lab
    from test_browser import _open, _run_all
    why = chromium_missing_reason()
    if why: return {'skipped': why}
    import nbformat
    tmp = Path(tempfile.mkdtemp()); root = tmp/'root'; root.mkdir()
    cells = [nbformat.v4.new_code_cell(SETUP.format(size=size))]
    cells += [nbformat.v4.new_code_cell(f"widgets['{k}']") for k in MOVES]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}),
                   root/'bench.ipynb')
    css = {'SharingFractionExplorer': 'dermxai-sharing', 'ScaleGateCurves': 'dermxai-scalegate', 'AttentionOverlay': 'dermxai-attention',
           'CorrelationHeatmap': 'dermxai-correlation', 'ChecklistExplorer': 'dermxai-checklist', 'ChecklistQuiz': 'dermxai-quiz'}
    out = {}
    with jupyter_lab(root, tmp) as (base, token), browser() as b:
        page = b.new_page(viewport={'width': 1400, 'height': 1000})
        page.set_default_timeout(60_000)
        _open(page, base, token, 'bench.ipynb')
        _run_all(page, timeout=400)
        for name, cls in css.items():
            page.locator(f'.{cls} .js-plotly-plot .gtitle').first.wait_for(timeout=180_000)
        for name, cls in css.items():
            box = page.locator(f'.{cls}').first
            box.scroll_into_view_if_needed()
            sel = f'.{cls} .js-plotly-plot .gtitle'
            times = []
            for k in range(n):
                before = page.locator(sel).first.text_content()
                kind = MOVES[name][1]
                t0 = time.perf_counter()
                if kind == 'slider':
                    h = box.locator('.noUi-handle').first
                    h.press('ArrowRight' if k % 2 == 0 else 'ArrowLeft')   # up and back down: always a change
                elif kind == 'select':
                    s = box.locator('select').first
                    s.select_option(index=(k + 1) % s.locator('option').count())
                elif kind == 'multiselect':
                    s = box.locator('select').first
                    s.select_option(index=[0, 1] if k % 2 else [2])
                elif kind == 'toggle':
                    box.locator('button', has_text='clustered' if k % 2 == 0 else 'as listed').click()
                else:
                    page.evaluate('() => 0')
                    box.locator('.widget-toggle-buttons').first.locator('button').first.click()
                    for r in range(1, 7): box.locator('.widget-toggle-buttons').nth(r).locator('button').first.click()
                    box.locator('button', has_text='Submit').click()
                    t0 = time.perf_counter()
                    box.locator('button', has_text='Next case').click()
                try:
                    page.wait_for_function('([s, old]) => { const t = document.querySelector(s); return t && t.textContent !== old }',
                                           arg=[sel, before], polling='raf', timeout=30_000)
                except Exception:
                    shots = Path(__file__).resolve().parent/'results'/'tmp'; shots.mkdir(parents=True, exist_ok=True)
                    box.screenshot(path=str(shots/f'{name}-timeout.png'))
                    print(name, 'no redraw within 30 s after input', k, before, flush=True)
                    times = None; break
                times.append((time.perf_counter() - t0) * 1000)
            if times is None:
                out[name] = {'error': 'no redraw within 30 s after an input (screenshot in bench/results/tmp/)'}; continue
            t = np.array(times)
            out[name] = {'p50_ms': float(np.percentile(t, 50)), 'p95_ms': float(np.percentile(t, 95)), 'n': n}
            print(name, out[name], flush=True)
    return out


def first_draw(tour: Path, repeats: int = 3) -> dict:
    """Seconds from running a figure cell of 40_widgets, 41_widgets_checklist or the teaching session (kernel warm: the notebook ran once) to
    every figure of its output drawn with data, median of `repeats`; the notebooks beside `tour` as in the repository."""
    from browser import browser, chromium_missing_reason, jupyter_lab
    from test_browser import _counts, _open, _panel, _repo_copy, _run_all
    why = chromium_missing_reason()
    if why: return {'skipped': why}
    tmp = Path(tempfile.mkdtemp()); root = _repo_copy(tmp/'repo', tour.resolve())
    out = {}
    with jupyter_lab(root, tmp) as (base, token), browser() as b:
        page = b.new_page(viewport={'width': 1400, 'height': 1000})
        page.set_default_timeout(120_000)
        for nb in ['nbs/40_widgets.ipynb', 'nbs/41_widgets_checklist.ipynb', 'nbs/tutorials/teaching.ipynb']:
            _open(page, base, token, nb)
            _run_all(page, timeout=600)
            cells = _panel(page).locator('.jp-CodeCell')
            for k in range(cells.count()):
                cell = cells.nth(k)
                if not cell.locator('.jp-OutputArea .js-plotly-plot').count(): continue
                shown = cell.locator('.jp-InputArea-editor').inner_text().strip().splitlines()[-1].strip()
                times = []
                for _ in range(repeats):
                    before = _counts(page)[k]
                    cell.locator('.jp-InputArea-editor').click()
                    t0 = time.perf_counter()
                    page.keyboard.press('Control+Enter')
                    page.wait_for_function("""([p, k, before]) => {
                        const c = p.querySelectorAll('.jp-CodeCell')[k];
                        const m = /\\[(\\d+)\\]/.exec(c.querySelector('.jp-InputPrompt').textContent);
                        const figs = Array.from(c.querySelectorAll('.jp-OutputArea .js-plotly-plot'));
                        return m && +m[1] > before && figs.length && figs.every(d => (d.data || []).length &&
                            d.querySelectorAll('g.trace, image, g.point path, path.js-line').length);
                    }""", arg=[_panel(page).element_handle(), k, before], polling=50, timeout=120_000)
                    times.append(time.perf_counter() - t0)
                out[f'{nb.split("/")[-1]}: {shown}'] = {'median_s': float(np.median(times)), 'runs_s': [round(t, 2) for t in times]}
                print(nb, shown, out[f'{nb.split("/")[-1]}: {shown}'], flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', type=int, default=224); ap.add_argument('--n', type=int, default=40)
    ap.add_argument('--browser-n', type=int, default=20); ap.add_argument('--no-browser', action='store_true')
    ap.add_argument('--tour', default='tour', help='a finished tour (`make tour`) for the time to first draw')
    a = ap.parse_args()
    kernel = kernel_latency(a.size, a.n)
    print(json.dumps(kernel, indent=1), flush=True)
    browser_rt = {'skipped': '--no-browser'} if a.no_browser else browser_latency(a.size, a.browser_n)
    tour = Path(a.tour)
    draw = ({'skipped': '--no-browser'} if a.no_browser else
            {'skipped': f'no finished tour in {tour} (make tour)'} if not (tour/'summary.json').exists() else first_draw(tour))
    save('widget_latency', {'image_size': a.size, 'kernel_callback': kernel, 'browser_round_trip': browser_rt,
                            'first_draw_s': draw, 'tour': str(tour),
                            'targets': {'kernel_p95_ms': 100, 'browser_p95_ms': 300, 'first_draw_s': 3},
                            'note': 'kernel: time inside the widget callback; browser: input event in chromium to the '
                                    'redrawn plotly title in the page, in JupyterLab on 127.0.0.1'})


if __name__ == '__main__':
    main()
