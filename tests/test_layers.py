"""The package's structure, checked: modules import only modules of lower layers (imports inside functions included, so
no circle hides behind a late import), no module is longer than 600 lines, and every extension point has one registry
whose names the command line offers."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

PKG = ROOT/'dermxai'
# bottom to top; a module may import modules of its own layer listed before it, or of lower layers
LAYERS = [
    ['core'],
    ['vocab'],
    ['synth_render', 'synth', 'files', 'checklist', 'correlation'],
    ['sources'],
    ['formats_isic', 'formats_ham10000', 'formats_derm7pt'],
    ['data'],
    ['datasets', 'losses', 'weights', 'localisation', 'receptive'],
    ['trainer'],
    ['systems'],
    ['models_resnet', 'models_arl', 'models_attnmel', 'models_gated', 'models_location', 'models_tatl'],
    ['models'],
    ['train'],
    ['explain', 'tatl_ablation'],
    ['evidence'],
    ['runs'],
    ['widgets', 'widgets_checklist'],
    ['report'],
    ['tour'],
    ['cli'],
    ['__main__'],
]
ORDER = {m: k for k, layer in enumerate(LAYERS) for m in layer}
POSITION = {m: (k, layer.index(m)) for k, layer in enumerate(LAYERS) for m in layer}


def _imports(path: Path) -> set:
    "Every dermxai module `path` imports, at the top or inside a function."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: out |= {mod.split('.')[0]} if mod else {a.name for a in node.names}
            elif mod == 'dermxai': out |= {a.name for a in node.names}
            elif mod.startswith('dermxai.'): out.add(mod.split('.')[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('dermxai.')}
    return out - {'__version__'}


MODULES = sorted(p.stem for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx'))


def test_every_module_has_a_layer():
    assert sorted(ORDER) == MODULES, f'place new modules in LAYERS: {sorted(set(MODULES) ^ set(ORDER))}'


@pytest.mark.parametrize('module', MODULES)
def test_imports_point_down(module):
    up = [m for m in _imports(PKG/f'{module}.py') if m != module and POSITION[m] >= POSITION[module]]
    assert not up, f'{module} imports {up}, which are not below it'


def test_no_import_cycle():
    "With every import (top level or inside a function) an edge, the module graph has no cycle."
    graph = {m: _imports(PKG/f'{m}.py') - {m} for m in MODULES}
    state = {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', 'import cycle: ' + ' -> '.join(path + [m])
        state[m] = 'open'
        for n in graph[m]: visit(n, path + [m])
        state[m] = 'done'
    for m in MODULES: visit(m, [])


@pytest.mark.parametrize('module', MODULES)
def test_modules_stay_under_600_lines(module):
    n = len((PKG/f'{module}.py').read_text().splitlines())
    assert n <= 600, f'{module}.py has {n} lines: split it along a seam'


def test_module_docstrings_are_whole_sentences():
    "nbdev takes a module's docstring from the first line of its notebook's description: it must not stop mid-sentence."
    for m in MODULES:
        doc = ast.get_docstring(ast.parse((PKG/f'{m}.py').read_text())) or ''
        assert doc.rstrip().endswith(('.', ')', '`')), f'{m}: {doc!r}'


def test_registries_are_the_single_source_of_names():
    "The command line's choices are the registries' names, not lists of their own."
    from dermxai.cli import build_parser
    from dermxai.data import list_formats
    from dermxai.explain import METHODS
    from dermxai.models import list_systems
    sub = build_parser()._subparsers._group_actions[0].choices
    assert list(sub['train']._subparsers._group_actions[0].choices) == list_systems()
    synth_layout = next(a for a in sub['synth']._actions if a.dest == 'layout')
    assert synth_layout.choices == list_formats()
    check = sub['data']._subparsers._group_actions[0].choices['check']
    assert next(a for a in check._actions if a.dest == 'format').choices == list_formats()
    methods_help = next(a for a in sub['explain']._actions if a.dest == 'methods').help
    assert all(f' {m}' in methods_help for m in METHODS)
    src = '\n'.join((PKG/f'{m}.py').read_text() for m in MODULES)
    for literal in ("'isic2018', 'isic2017'", "'cam', 'gradcam', 'ig'", "'Training', 'Validation', 'Test'}", "'train', 'valid', 'test']"):
        assert src.count(literal) <= 1, f'a list of names written out again: {literal}'
