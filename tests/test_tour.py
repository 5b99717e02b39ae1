"""`dermxai tour` end to end (smoke profile: every system, two training steps each): the run directories, summary.json,
the re-run that reuses finished runs, and report.html opened in headless Chromium with every view drawn."""
import json, re, os, time

import pytest

from browser import ARTIFACTS, browser, chromium_missing_reason
from conftest import dermxai

pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope='module')
def tour(smoke_tour):
    return smoke_tour


def test_tour_writes_every_run_and_the_summary(tour):
    from dermxai.report import VIEWS
    from dermxai.tour import TOUR
    out, res, _ = tour
    s = json.loads((out/'summary.json').read_text())
    assert set(s['runs']) == set(TOUR)
    for name, r in s['runs'].items():
        assert (out/'runs'/name/'metrics.json').exists() and (out/'runs'/name/'config.json').exists(), name
        assert not r['reused'] and r['test'], name
    # every view of the report drawn, and the command says so
    assert {k for k, v in s['views'].items() if v['ok']} == {v.key for v in VIEWS}, s['views']
    assert f"{len(VIEWS)} of {len(VIEWS)} views" in res.stdout and 'make lab' in res.stdout


def test_rerun_reuses_finished_runs(tour):
    out, _, first = tour
    before = {p: p.stat().st_mtime_ns for p in (out/'runs').rglob('model.safetensors')}
    t0 = time.perf_counter()
    res = dermxai('tour', '--profile', 'smoke', '--out', out, '--no-progress', check=True)
    again = time.perf_counter() - t0
    s = json.loads((out/'summary.json').read_text())
    assert all(r['reused'] for r in s['runs'].values()), {k: r['reused'] for k, r in s['runs'].items()}
    assert before and before == {p: p.stat().st_mtime_ns for p in before}     # no weights rewritten
    assert '(reused)' in res.stdout and again < first


def test_other_profile_retrains(tmp_path):
    "A run made for another setting is not reused: its tour.json differs."
    from dermxai.tour import run_tour
    out = tmp_path/'t'
    run_tour(out, 'smoke', runs=['resnet14'], progress=False, report=False)
    key = out/'runs'/'resnet14'/'tour.json'
    k = json.loads(key.read_text()); k['overrides']['epochs'] = 99; key.write_text(json.dumps(k))
    s = run_tour(out, 'smoke', runs=['resnet14'], progress=False, report=False)
    assert not s['runs']['resnet14']['reused'] and json.loads(key.read_text())['overrides']['epochs'] == 1


def test_report_in_chromium(tour):
    why = chromium_missing_reason()
    if why:
        if os.environ.get('CI') == 'true': pytest.fail(f'browser tests cannot run under CI: {why}')
        pytest.skip(why)
    from dermxai.report import VIEWS
    out, _, _ = tour
    ARTIFACTS.mkdir(exist_ok=True)
    with browser() as b:
        page = b.new_page(viewport={'width': 1280, 'height': 900})
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.on('request', lambda r: errors.append(f'network request {r.url}') if not r.url.startswith(('file:', 'data:')) else None)
        page.goto((out/'report.html').resolve().as_uri())
        for v in VIEWS:
            sec = page.locator(f'section.dermxai-view#view-{v.key}')
            assert sec.get_attribute('data-ok') == 'true', v.key
            svg = sec.locator('.js-plotly-plot .main-svg').first
            svg.wait_for(timeout=30_000)
            box = sec.locator('.js-plotly-plot').first.bounding_box()
            assert box and box['width'] > 200 and box['height'] > 150, (v.key, box)
            # drawn, not an empty frame: the figure has traces (heatmap cells, lines or images)
            drawn = sec.locator('.js-plotly-plot path.js-line, .js-plotly-plot image, .js-plotly-plot g.point path').count()   # lines, heatmaps, images, bars
            assert drawn > 0, v.key
            if v.key == 'evidence':   # the scores are printed in the cells: numbers, not just colours
                labels = sec.evaluate("s => Array.from(s.querySelectorAll('.js-plotly-plot text')).map(t => t.textContent)")
                assert sum(bool(re.match(r'\d\.\d\d', t.strip())) for t in labels) >= 5, labels   # mean, then its interval
            sec.screenshot(path=str(ARTIFACTS/f'report-{v.key}.png'))
        assert page.locator('section.dermxai-system').count() == len(json.loads((out/'summary.json').read_text())['runs'])
        assert page.locator('section.dermxai-system table.dermxai-table').count() >= 1
        # ours and the paper's, each under its label: which data, size, profile and seeds; the published set-up
        for name, run in json.loads((out/'summary.json').read_text())['runs'].items():
            heads = page.locator(f'section.dermxai-system#system-{name} h4').all_text_contents()
            assert any(h.startswith('dermxai (SynthDerm,') and 'profile quick' in h for h in heads), (name, heads)
            if run['system'] in ('tatl', 'gated', 'location', 'arl14', 'arl50', 'attnmel'):
                assert any(h.startswith('published (real data') for h in heads), (name, heads)
        # fits a 1280 px window: nothing scrolls sideways, no table is cut; numbers for people, no 'rest' class
        assert page.evaluate('() => document.documentElement.scrollWidth') <= 1280
        rights = page.evaluate("() => Array.from(document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right)")
        assert rights and max(rights) <= 1280, rights
        shown = page.evaluate("() => Array.from(document.querySelectorAll('td, th, .js-plotly-plot text')).map(e => e.textContent)")
        assert not [s for s in shown if re.search(r'\d\.\d{7,}|\brest\b', s)], shown
        page.screenshot(path=str(ARTIFACTS/'report.png'), full_page=True)
        assert not errors, errors


def test_runs_move(tour, tmp_path, monkeypatch):
    """Runs work from any working directory, moved or copied: a run copied alone finds its data where it was trained
    (the absolute path beside the relative one); a tour moved whole finds it through the path relative to the run."""
    import shutil
    from dermxai.core import TrainConfig
    from dermxai.explain import explain_run
    from dermxai.widgets import AttentionOverlay
    from dermxai.widgets_checklist import ChecklistExplorer
    out = tour[0]
    saved = json.loads((out/'runs'/'gated'/'config.json').read_text())
    assert saved['data'] == '../../synth/synthderm.nc' and saved['data_absolute'] == str((out/'synth'/'synthderm.nc').absolute())
    alone = tmp_path/'elsewhere'
    for r in ('resnet14', 'gated'): shutil.copytree(out/'runs'/r, alone/r)
    (tmp_path/'third').mkdir(); monkeypatch.chdir(tmp_path/'third')
    maps = explain_run(alone/'resnet14', n=2, methods=['cam'], device='cpu')
    assert maps.sizes['case'] == 2 and float(abs(maps).max()) > 0
    assert AttentionOverlay.from_run(alone/'resnet14', n=2).view.figure['data']
    assert ChecklistExplorer.from_run(alone/'gated').view.figure['data']
    # the whole tour moves (the old folder gone): each run finds the data it moved with
    moved = tmp_path/'moved'
    shutil.move(out, moved)
    try:
        assert TrainConfig.load(moved/'runs'/'gated'/'config.json').data == str(moved/'synth'/'synthderm.nc')
        assert ChecklistExplorer.from_run(moved/'runs'/'gated').view.figure['data']
    finally:
        shutil.move(moved, out)
