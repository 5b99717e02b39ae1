import os, subprocess, sys
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


def dermxai(*args, check=False, timeout=1500, **kw):
    "Run the installed `dermxai` command; returns the CompletedProcess (text)."
    res = subprocess.run([str(BIN/'dermxai'), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ}, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f'dermxai {args} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}')
    return res


# small, fast training runs for the command-line tests
TINY = ['--n', '96', '--size', '32', '--epochs', '2', '--batch-size', '16', '--no-progress']
