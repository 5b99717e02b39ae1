"""The command line answers at once: building its parser, `--help` of every command and `dermxai systems` import none of
the heavy libraries (timings live in bench/cli_startup.py), and the catalogue the parser reads agrees with the registries."""
import json, subprocess, sys

HEAVY = ['torch', 'torchvision', 'captum', 'plotly', 'xarray', 'pandas', 'sklearn', 'segmentation_models_pytorch']

PROBE = f"""
import contextlib, io, json, sys
from dermxai.cli import _COMMANDS, build_parser, main
argvs = [['--help'], ['systems']] + [[c, '--help'] for c in _COMMANDS] + [['train', n, '--help'] for n in ('resnet14', 'gated', 'tatl')]
codes = {{}}
for argv in argvs:
    with contextlib.redirect_stdout(io.StringIO()) as out: codes[' '.join(argv)] = (main(argv), 'usage: dermxai' in out.getvalue() or 'resnet14' in out.getvalue())
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps({{'codes': codes, 'heavy': heavy, 'dermxai': sorted(m for m in sys.modules if m.startswith('dermxai'))}}))
"""


def test_help_and_systems_import_nothing_heavy():
    res = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r['heavy'] == [], f"heavy modules imported by the parser: {r['heavy']} (dermxai modules: {r['dermxai']})"
    assert r['dermxai'] == ['dermxai', 'dermxai.cli'], r['dermxai']
    for argv, (code, answered) in r['codes'].items(): assert code == 0 and answered, (argv, code)


def test_catalogue_agrees_with_the_registries():
    "dermxai/catalogue.json is derived from the registries: running nbs/50_cli.ipynb (or `write_catalogue()`) rewrites it."
    from dermxai.cli import CATALOGUE, live_catalogue
    assert CATALOGUE.exists(), 'no dermxai/catalogue.json: run `python -c "from dermxai.cli import write_catalogue; write_catalogue()"`'
    assert json.loads(CATALOGUE.read_text()) == live_catalogue(), \
        'dermxai/catalogue.json is stale: run `python -c "from dermxai.cli import write_catalogue; write_catalogue()"`'
