import os, shutil, subprocess, sys, time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    "Each test session renders SynthDerm into its own cache, never the user's."
    home = tmp_path_factory.getbasetemp()/'dermxai_home'
    monkeypatch.setenv('DERMXAI_HOME', str(home))
    monkeypatch.setenv('DERMXAI_DEVICE', 'cpu')


def dermxai(*args, check=False, timeout=1500, env=None, **kw):
    "Run the installed `dermxai` command (with `env` added to the environment); returns the CompletedProcess (text)."
    res = subprocess.run([str(BIN/'dermxai'), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})}, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f'dermxai {args} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}')
    return res


@pytest.fixture(scope='session')
def smoke_tour(tmp_path_factory):
    "One smoke tour (every system, two training steps each) shared by the tests that need trained runs: (folder, process, seconds)."
    if os.environ.get('DERMXAI_TEST_TOUR'):     # a local rerun of the browser tests on a tour made before (never under CI)
        return Path(os.environ['DERMXAI_TEST_TOUR']), None, 0.0
    base = tmp_path_factory.mktemp('smoke')
    t0 = time.perf_counter()
    res = dermxai('tour', '--profile', 'smoke', '--out', base/'tour', '--no-progress', check=True,
                  env={'DERMXAI_HOME': str(base/'dermxai_home'), 'DERMXAI_DEVICE': 'cpu'})
    return base/'tour', res, time.perf_counter() - t0


# small, fast training runs for the command-line tests
TINY = ['--n', '96', '--size', '32', '--epochs', '2', '--batch-size', '16', '--no-progress']


def docs_project(dest: Path) -> Path:
    """A copy of what nbdev's docs processing reads (notebooks, settings, Quarto config) in `dest`: it writes its
    `_proc/` there, never into the repository."""
    shutil.copytree(ROOT/'nbs', dest/'nbs', symlinks=True, ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
    for f in ('settings.ini', '_quarto.yml', 'Makefile'): shutil.copy(ROOT/f, dest/f)
    return dest
