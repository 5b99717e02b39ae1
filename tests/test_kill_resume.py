"""A training run killed with SIGKILL in the middle of an epoch resumes with no epoch lost or repeated, and ends with
the same weights as a run that was never interrupted."""
import os, signal, subprocess, sys, time
from pathlib import Path

import torch
import xarray as xr
from safetensors.torch import load_file

from conftest import BIN, dermxai

ARGS = ['--n', '320', '--size', '48', '--epochs', '4', '--batch-size', '16', '--no-progress']


def _completed_epochs(run: Path) -> int:
    from dermxai.train import load_checkpoint
    try: return load_checkpoint(run/'checkpoint.safetensors')[1]['epoch']
    except Exception: return 0


def test_sigkill_mid_epoch_then_resume(tmp_path):
    straight = tmp_path/'straight'
    dermxai('train', 'resnet14', '--out', straight, *ARGS, check=True)

    run = tmp_path/'killed'
    proc = subprocess.Popen([str(BIN/'dermxai'), 'train', 'resnet14', '--out', str(run), *ARGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.time() + 300
    while _completed_epochs(run) < 2 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    assert proc.poll() is None, 'training finished before it could be killed: make the epochs longer'
    time.sleep(0.3)                                # well into epoch 3
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert _completed_epochs(run) == 2 and not (run/'metrics.json').exists()

    dermxai('train', 'resnet14', '--out', run, *ARGS, '--resume', check=True)
    with xr.open_dataset(run/'history.nc') as h:
        assert list(h.epoch.values) == [1, 2, 3, 4]            # no gap, no repeat
        with xr.open_dataset(straight/'history.nc') as g:
            assert (h.train_loss.values == g.train_loss.values).all()
    a, b = load_file(straight/'model.safetensors'), load_file(run/'model.safetensors')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), 'resumed weights differ from the uninterrupted run'
    assert not list(run.glob('.*tmp*')), 'a temporary file was left behind'
