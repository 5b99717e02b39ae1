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


def _repo_copy(dest: Path, tour: Path) -> Path:
    """The notebooks a user opens, where they live (nbs/, nbs/tutorials/), without their nbdev export cells, beside a
    tour/ folder as `make tour` leaves it: the kernels start in the notebooks' own folders and find it from there."""
    for name in ['40_widgets.ipynb', '41_widgets_checklist.ipynb', 'tutorials/teaching.ipynb', 'tutorials/quiz.ipynb']:
        nb = json.loads((ROOT/'nbs'/name).read_text())
        nb['cells'] = [c for c in nb['cells'] if 'nbdev_export' not in ''.join(c['source'])]
        (dest/'nbs'/name).parent.mkdir(parents=True, exist_ok=True)
        (dest/'nbs'/name).write_text(json.dumps(nb))
    (dest/'tour').symlink_to(tour)
    for d in ('bench', 'experiments'): (dest/d).symlink_to(ROOT/d)      # the measured figures the notebooks quote and check
    return dest


def _panel(page):
    "The notebook on screen."
    return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)').first


def _outputs(page) -> str:
    "What the cells of the notebook on screen printed and showed (not their code)."
    return '\n'.join(_panel(page).locator('.jp-OutputArea').all_inner_texts())


def _open(page, base, token, name):
    "Open notebook `name` alone (`reset`: no other tab restored from the workspace) and wait for its idle kernel."
    page.goto(f'{base}/lab/tree/{name}?reset&token={token}')
    _panel(page).locator('.jp-CodeCell').first.wait_for()
    _kernel_ready(page)


def _open_and_run(page, base, token, name, times: int = 1):
    _open(page, base, token, name)
    for k in range(times):
        took = _run_all(page)
        print(f'{name} ran in the browser in {took:.0f} s (run {k + 1} of {times})')
        _all_figures_drawn(page, f'{name}, run {k + 1}')


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


def _counts(page) -> list:
    "The execution count of every code cell of the notebook on screen (None: not run; '*': running)."
    prompts = _panel(page).locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()
    return [int(m.group(1)) if (m := re.search(r'\[(\d+)\]', p)) else ('*' if '*' in p else None) for p in prompts]


def _run_all(page, timeout: float = 300):
    "Run All Cells of the notebook on screen; done when every code cell shows a count above those it showed before."
    before = max([c for c in _counts(page) if isinstance(c, int)], default=0)
    _panel(page).locator('.jp-Cell').first.click()          # the notebook has the focus: Run All runs this one
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _accept_kernel_dialog(page): raise AssertionError('JupyterLab asked for a kernel after Run All')
        # JupyterLab draws a cell's exception with the stderr renderer: its traceback says it
        errors = _panel(page).locator('.jp-OutputArea-output', has_text='Traceback (most recent call last)')
        if errors.count(): raise AssertionError('a cell failed:\n' + errors.first.inner_text()[-3000:])
        counts = _counts(page)
        if counts and all(isinstance(c, int) and c > before for c in counts): return time.monotonic() - t0
        time.sleep(1)
    page.screenshot(path=str(ARTIFACTS/'lab-timeout.png'), full_page=True)
    raise TimeoutError(f'the notebook did not finish within {timeout} s; execution counts: {_counts(page)}')


_FIGURES = """p => Array.from(p.querySelectorAll('.js-plotly-plot')).map(d => ({
    title: (d.querySelector('.gtitle') || {}).textContent || '',
    traces: (d.data || []).length,
    drawn: d.querySelectorAll('g.trace, image, g.point path, path.js-line').length}))"""


def _all_figures_drawn(page, what: str, timeout: float = 60):
    "Every plotly figure in the notebook on screen has data, read from the DOM (an empty frame has no traces drawn)."
    t0 = time.monotonic()
    while True:
        figs = _panel(page).evaluate(_FIGURES)
        blank = [f for f in figs if not (f['traces'] and f['drawn'])]
        if figs and not blank: return figs
        if time.monotonic() - t0 > timeout:
            page.screenshot(path=str(ARTIFACTS/'lab-blank.png'), full_page=True)
            raise AssertionError(f'{what}: {len(blank)} of {len(figs)} figures drawn blank: {blank}')
        time.sleep(1)


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


def _grade_and_next(box):
    "In the quiz: the first label of every criterion, Submit, then Next case (enabled once the case is graded)."
    rows = box.locator('.widget-toggle-buttons')
    for k in range(rows.count()): rows.nth(k).locator('button').first.click()
    box.locator('button', has_text='Submit').click()
    box.locator('.dermxai-quiz-result').wait_for()
    box.locator('button', has_text='Next case').click()


def _slider(box, key, k=0):
    handle = box.locator('.noUi-handle').nth(k)
    handle.focus(); handle.press(key)


@pytest.mark.timeout(1800)     # the session's smoke tour is made here when this test runs first
def test_notebooks_in_jupyterlab_after_a_tour(tmp_path, smoke_tour):
    """After a tour, as a user meets them: 40_widgets Run All three times, 41_widgets_checklist and the teaching session
    once, each from its own folder; no cell fails and every figure is drawn every time. Then each widget is moved (a
    slider, a selector, a case) and its figure must change."""
    root = _repo_copy(tmp_path/'repo', smoke_tour[0])
    with jupyter_lab(root, tmp_path) as (base, token), browser() as b:
        page = b.new_page(viewport={'width': 1400, 'height': 1000})
        page.set_default_timeout(60_000)
        _open_and_run(page, base, token, 'nbs/40_widgets.ipynb', times=3)
        text = _outputs(page)
        assert "the tour's gated network" in text and 'STAND-IN' not in text     # the tour's runs, and said so
        # 1. sharing fractions: the block slider, one step right (the widget is as first drawn: its first block)
        before, after = _changes(page, 'dermxai-sharing', 'lab-sharing', lambda box: _slider(box, 'ArrowRight', 0))
        assert 'block gate1' in before and 'block gate2' in after
        # 2. scale gates: keep one block
        _, after = _changes(page, 'dermxai-scalegate', 'lab-scalegate',
                            lambda box: box.locator('select').first.select_option(index=1))
        assert after.count('·') >= 1
        # 3. attention overlay: pick another case
        _, after = _changes(page, 'dermxai-attention', 'lab-attention',
                            lambda box: box.locator('select').first.select_option(index=1))
        # 4. correlation: the clustered order
        _, after = _changes(page, 'dermxai-correlation', 'lab-correlation',
                            lambda box: box.locator('button', has_text='clustered').click())
        assert after.endswith('clustered')
        page.screenshot(path=str(ARTIFACTS/'lab-page.png'))
        _open_and_run(page, base, token, 'nbs/41_widgets_checklist.ipynb')
        assert "the tour's gated network" in _outputs(page) and 'STAND-IN' not in _outputs(page)
        # 5. checklist: tau one step up; 6. quiz: next case (both as first drawn)
        before, after = _changes(page, 'dermxai-checklist', 'lab-checklist', lambda box: _slider(box, 'ArrowRight', 0))
        assert before != after
        before, after = _changes(page, 'dermxai-quiz', 'lab-quiz', _grade_and_next)
        assert before.startswith('case 1 of') and after.startswith('case 2 of')
        page.screenshot(path=str(ARTIFACTS/'lab-page-checklist.png'))
        _open_and_run(page, base, token, 'nbs/tutorials/teaching.ipynb')
        text = _outputs(page)
        assert 'tour: ' in text and 'gated run: yes' in text and 'STAND-IN' not in text
        page.screenshot(path=str(ARTIFACTS/'lab-teaching.png'), full_page=True)


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
