"""The widgets in a real browser: JupyterLab and the Voila teaching app on localhost, driven through Debian's chromium
with Playwright. Each widget is moved (a slider, a case, a selector) and the rendered figure must change, read from
the page. Screenshots land in test-artifacts/."""
import json, os, re, time
from pathlib import Path

import pytest

from browser import (ARTIFACTS, ROOT, browser, chromium_missing_reason, jupyter_lab, open_voila, plot_title, teach_app,
                     wait_changed)

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope='module', autouse=True)
def _chromium():
    why = chromium_missing_reason()
    if why:
        if os.environ.get('CI') == 'true': pytest.fail(f'browser tests cannot run under CI: {why}')
        pytest.skip(why)
    ARTIFACTS.mkdir(exist_ok=True)


def _widgets_notebook(dest: Path, name: str = '40_widgets.ipynb') -> Path:
    "nbs/NAME without its nbdev export cell (the copy lives outside the repository) and its number of code cells."
    nb = json.loads((ROOT/'nbs'/name).read_text())
    nb['cells'] = [c for c in nb['cells'] if 'nbdev_export' not in ''.join(c['source'])]
    code = sum(c['cell_type'] == 'code' for c in nb['cells'])
    p = dest/name
    p.write_text(json.dumps(nb))
    return p, code


def _open_and_run(page, base, token, name, n_code):
    page.goto(f'{base}/lab/tree/{name}?token={token}')
    page.locator('.jp-Notebook').first.wait_for()
    page.locator('.jp-CodeCell').first.wait_for()
    _kernel_ready(page)
    took = _run_all(page, n_code)
    print(f'{name} ran in the browser in {took:.0f} s')


def _accept_kernel_dialog(page) -> bool:
    "JupyterLab may ask which kernel to start (a race at page load): accept the default."
    select = page.locator('.jp-Dialog button', has_text=re.compile(r'^Select$'))
    if select.count() and select.first.is_visible():
        select.first.click(); return True
    return False


def _kernel_ready(page, timeout: float = 90):
    "Wait for an idle kernel for 3 s in a row, accepting the kernel dialog whenever it shows."
    t0, idle_since = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        _accept_kernel_dialog(page)
        idle = page.locator('.jp-StatusBar-TextItem', has_text='Idle').count() and not page.locator('.jp-Dialog').count()
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since and time.monotonic() - idle_since > 3: return
        time.sleep(0.5)
    raise TimeoutError(f'no idle kernel within {timeout} s')


def _run_all(page, n_code: int, timeout: float = 240):
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _accept_kernel_dialog(page): raise AssertionError('JupyterLab asked for a kernel after Run All')
        prompts = page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()
        done = [p for p in prompts if re.search(r'\[\d+\]', p)]
        errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]').count()
        if errors: raise AssertionError('a cell failed:\n' + page.locator('[data-mime-type="application/vnd.jupyter.error"]').first.inner_text()[:3000])
        if len(done) == n_code and not any('*' in p for p in prompts): return time.monotonic() - t0
        time.sleep(1)
    page.screenshot(path=str(ARTIFACTS/'lab-timeout.png'), full_page=True)
    raise TimeoutError(f'the notebook did not finish within {timeout} s; prompts: {prompts}')


def _shot(box, name):
    box.scroll_into_view_if_needed()
    box.screenshot(path=str(ARTIFACTS/f'{name}.png'))


def _changes(page, css, name, act):
    "In the widget `css`: screenshot, act, assert the plotly figure's title in the page changed, screenshot."
    box = page.locator(f'.{css}').first
    box.scroll_into_view_if_needed()
    try: before = plot_title(box)
    except Exception:
        page.screenshot(path=str(ARTIFACTS/f'{name}-missing.png')); box.screenshot(path=str(ARTIFACTS/f'{name}-missing-box.png'))
        raise
    _shot(box, f'{name}-before')
    act(box)
    after = wait_changed(box, before)
    _shot(box, f'{name}-after')
    assert after != before
    return before, after


def _slider(box, key, k=0):
    handle = box.locator('.noUi-handle').nth(k)
    handle.focus(); handle.press(key)


def test_widgets_notebook_in_jupyterlab(tmp_path):
    root = tmp_path/'root'; root.mkdir()
    _, n_code = _widgets_notebook(root)
    _, n_code_checklist = _widgets_notebook(root, '41_widgets_checklist.ipynb')
    with jupyter_lab(root, tmp_path) as (base, token), browser() as b:
        page = b.new_page(viewport={'width': 1400, 'height': 1000})
        page.set_default_timeout(60_000)
        _open_and_run(page, base, token, '40_widgets.ipynb', n_code)
        for css in ['dermxai-sharing', 'dermxai-scalegate', 'dermxai-attention', 'dermxai-correlation']:
            page.locator(f'.{css} .js-plotly-plot').first.wait_for(timeout=60_000)
        # 1. sharing fractions: the block slider (the notebook left it at gate3) -> gate4
        _, after = _changes(page, 'dermxai-sharing', 'lab-sharing', lambda box: _slider(box, 'ArrowRight', 0))
        assert 'block gate4' in after
        # 2. scale gates: keep one block
        _, after = _changes(page, 'dermxai-scalegate', 'lab-scalegate',
                            lambda box: box.locator('select').first.select_option(['layer2.0']))
        assert 'blocks: layer2.0 ·' in after
        # 3. attention overlay: pick another case
        def pick_case(box):
            sel = box.locator('select').first
            opts = sel.locator('option').all_inner_texts()
            sel.select_option(label=opts[0])
        _, after = _changes(page, 'dermxai-attention', 'lab-attention', pick_case)
        # 4. correlation: back to the order as listed
        _, after = _changes(page, 'dermxai-correlation', 'lab-correlation',
                            lambda box: box.locator('button', has_text='as listed').click())
        assert after.endswith('as listed')
        page.screenshot(path=str(ARTIFACTS/'lab-page.png'))
        _open_and_run(page, base, token, '41_widgets_checklist.ipynb', n_code_checklist)
        for css in ['dermxai-checklist', 'dermxai-quiz']:
            page.locator(f'.{css} .js-plotly-plot').first.wait_for(timeout=60_000)
        # 5. checklist: tau from 1 to 2
        _, after = _changes(page, 'dermxai-checklist', 'lab-checklist', lambda box: _slider(box, 'ArrowRight', 0))
        assert after.startswith('τ = 2')
        # 6. quiz: next case
        _, after = _changes(page, 'dermxai-quiz', 'lab-quiz', lambda box: box.locator('button', has_text='Next case').click())
        assert after.startswith('case 3 of 4')
        page.screenshot(path=str(ARTIFACTS/'lab-page-checklist.png'))


def test_teach_voila_app(tmp_path):
    with teach_app(tmp_path, n=4, size=64) as url, browser() as b:
        page = b.new_page(viewport={'width': 1200, 'height': 900})
        page.set_default_timeout(60_000)
        open_voila(page, url, timeout=300)
        box = page.locator('.dermxai-quiz').first
        box.locator('.js-plotly-plot').first.wait_for(timeout=180_000)
        first = plot_title(box)
        assert first.startswith('case 1 of 4')
        _shot(box, 'voila-quiz-start')
        # grade: the first label of every criterion, then submit
        rows = box.locator('.widget-toggle-buttons')
        assert rows.count() == 7
        for k in range(7): rows.nth(k).locator('button').first.click()
        box.locator('button', has_text='Submit').click()
        box.locator('.dermxai-quiz-result').wait_for()
        tally = box.locator('.dermxai-tally').inner_text()
        assert 'diagnosis right' in tally and '/1' in tally
        assert box.locator('.dermxai-quiz-result tr').count() == 10   # header, 7 criteria, score, call
        _shot(box, 'voila-quiz-graded')
        box.locator('button', has_text='Next case').click()
        after = wait_changed(box, first)
        assert after.startswith('case 2 of 4')
        _shot(box, 'voila-quiz-next')
