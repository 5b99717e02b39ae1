"""The docs pipeline up to the Quarto render (Quarto itself cannot be installed here): configuration, sidebar,
front matter, nbdev_proc_nbs, and the README made from index.ipynb."""
import json, os, re, shutil, subprocess, sys

import yaml

from conftest import BIN, ROOT, docs_project

NBS = ROOT/'nbs'


def _notebooks():
    return sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob('*.ipynb')
                  if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_'))


def test_quarto_yml_is_top_level_and_found_by_nbdev():
    top = yaml.safe_load((ROOT/'_quarto.yml').read_text())
    assert top['project']['type'] == 'website'
    assert 'sidebar.yml' in top['metadata-files'] and 'nbdev.yml' in top['metadata-files']
    link = NBS/'_quarto.yml'
    assert link.is_symlink() and link.resolve() == (ROOT/'_quarto.yml').resolve()


def test_sidebar_lists_every_notebook():
    sidebar = (NBS/'sidebar.yml').read_text()
    missing = [nb for nb in _notebooks() if nb not in sidebar]
    assert not missing, f'notebooks missing from nbs/sidebar.yml: {missing}'


def test_every_notebook_opens_with_title_and_description():
    for nb in _notebooks():
        cells = json.loads((NBS/nb).read_text())['cells']
        first = ''.join(cells[0]['source'])
        assert cells[0]['cell_type'] == 'markdown' and first.startswith('# '), nb
        assert '\n> ' in first or first.split('\n', 2)[-1].lstrip().startswith('>'), f'{nb}: no description line'


def test_nbdev_proc_nbs_succeeds(tmp_path):
    # nbdev only checks that a `quarto` executable exists before processing; the render itself is not ours here
    stub = tmp_path/'bin'; stub.mkdir()
    (stub/'quarto').write_text('#!/bin/sh\nexit 0\n'); (stub/'quarto').chmod(0o755)
    make = (ROOT/'Makefile').read_text()
    renderer = re.search(r'^DOCS_ENV := PLOTLY_RENDERER=(\S+)', make, re.M).group(1)   # what `make docs` sets
    env = {**os.environ, 'PATH': f'{stub}:{os.environ["PATH"]}', 'PLOTLY_RENDERER': renderer}
    project = docs_project(tmp_path/'project')
    res = subprocess.run([str(BIN/'nbdev_proc_nbs')], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (ROOT/'_proc').exists()
    proc = project/'_proc'
    for nb in _notebooks(): assert (proc/nb).exists(), nb
    assert (proc/'_quarto.yml').exists() and (proc/'sidebar.yml').exists()
    # figures render statically: the `#| exec_doc` cells (the directive is gone from _proc; some only compute what a
    # later figure needs) ran without error and left figures as HTML Quarto can show (never only a widget view or
    # plotly JSON), without plotly.js inlined into the page
    total = 0
    for nb in _notebooks():
        wanted = sum(c['cell_type'] == 'code' and bool(re.search(r'^#\|\s*exec_doc', ''.join(c['source']), re.M))
                     for c in json.loads((NBS/nb).read_text())['cells'])
        figures = 0
        for c in json.loads((proc/nb).read_text())['cells']:
            for o in c.get('outputs', []):
                assert o.get('output_type') != 'error', f'{nb}: {o.get("ename")}: {o.get("evalue")}'
                data = o.get('data', {})
                if 'application/vnd.jupyter.widget-view+json' in data or 'application/vnd.plotly.v1+json' in data:
                    assert 'text/html' in data, f'{nb}: a figure Quarto cannot draw (no HTML)'
                html = ''.join(data.get('text/html', ''))
                assert len(html) < 2_000_000, f'{nb}: {len(html)} characters of HTML in one output (plotly.js inlined?)'
                figures += 'plotly' in html.lower() or 'image/png' in data
        assert figures >= min(wanted, 1), f'{nb}: {wanted} exec_doc cells and no static figure'
        total += figures
    assert total >= 8, total


def test_pages_workflow_renders_with_quarto():
    "The GitHub Pages workflow installs Quarto, builds with `make docs` and publishes nbdev's output folder."
    wf = yaml.safe_load((ROOT/'.github'/'workflows'/'docs.yml').read_text())
    steps = wf['jobs']['build']['steps']
    uses = [s.get('uses', '') for s in steps]
    assert any(u.startswith('quarto-dev/quarto-actions/setup') for u in uses)
    assert [s.get('run') for s in steps if s.get('run')] == ['make install', 'make docs']
    out = yaml.safe_load((NBS/'nbdev.yml').read_text())['project']['output-dir']
    assert [s['with']['path'] for s in steps if s.get('uses', '').startswith('actions/upload-pages-artifact')] == [out]
    assert 'nbdev_docs' in (ROOT/'Makefile').read_text().split('\ndocs:', 1)[1].split('\n\n', 1)[0]


def test_readme_is_index_with_exactly_the_two_setup_commands():
    sys.path.insert(0, str(ROOT/'tools'))
    import readme
    text = (ROOT/'README.md').read_text()
    if not shutil.which('quarto'):
        assert text == readme.convert(NBS/'index.ipynb'), 'README.md is stale: run `make readme`'
    setup = text.split('## Set-up', 1)[1].split('\n## ', 1)[0]
    commands = re.findall(r'^(make \w+)', setup, flags=re.M)
    assert commands == ['make tour', 'make test'], commands


def test_no_cell_mixes_imports_with_other_code():
    "nbdev's docs processing executes every cell that contains an import: such cells must hold imports only."
    import ast
    bad = []
    for nb in _notebooks():
        for k, c in enumerate(json.loads((NBS/nb).read_text())['cells']):
            src = ''.join(c['source'])
            if c['cell_type'] != 'code' or 'nbdev_export()' in src or re.search(r'^#\|\s*(export|exporti|exports|exec_doc)', src, re.M): continue
            try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.startswith(('%', '!'))))
            except SyntaxError: continue
            imports = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
            if imports and any(not isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body): bad.append(f'{nb} cell {k}')
    assert not bad, f'cells mixing imports with code (split them): {bad}'


def test_every_cell_has_a_stable_id():
    "nbdev_export writes cell ids into dermxai/: a cell without one gets a random id and the export never settles."
    missing = [f'{nb} cell {k}' for nb in _notebooks()
               for k, c in enumerate(json.loads((NBS/nb).read_text())['cells']) if not c.get('id')]
    assert not missing, f'cells without an id (open and save the notebook in Jupyter, or set ids): {missing[:5]}'
