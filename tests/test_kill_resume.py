"""A training run SIGKILLed inside each of its writes — the checkpoint (the commit point of an epoch), the history of the
last epoch, and the final weights — resumes with every finished epoch recovered exactly once, ends with the same weights
and history as a run that was never interrupted, and leaves no partly written file behind. The kills come from
`dermxai.core.fault_point` at a named write (`write:<file>@k`: the k-th write of that file in the process), not from a
timer, so the test kills at the same instant on any machine."""
import signal

import torch
import xarray as xr
from safetensors.torch import load_file

from conftest import dermxai
from dermxai.core import PARTIAL
from dermxai.weights import load_checkpoint

ARGS = ['--n', '96', '--size', '32', '--epochs', '3', '--batch-size', '16', '--no-progress']


def _epochs(path):
    with xr.open_dataset(path) as h: return list(h.epoch.values)


def _killed(run, point):
    res = dermxai('train', 'resnet14', '--out', run, *ARGS, '--resume', env={'DERMXAI_FAULT': point})
    assert res.returncode == -signal.SIGKILL, (point, res.returncode, res.stderr[-2000:])
    assert list(run.glob(f'.*{PARTIAL}*')), f'{point}: the kill came after the temporary file was complete'
    assert not (run/'metrics.json').exists()


def test_sigkill_inside_each_write_then_resume(tmp_path):
    straight = tmp_path/'straight'
    dermxai('train', 'resnet14', '--out', straight, *ARGS, check=True)

    run = tmp_path/'killed'
    _killed(run, 'write:checkpoint.safetensors@2')            # inside epoch 2's commit: epoch 2 never happened
    assert load_checkpoint(run/'checkpoint.safetensors')[1]['epoch'] == 1 and _epochs(run/'history.nc') == [1]

    _killed(run, 'write:history.nc@2')                        # epochs 2 and 3 committed; the kill is in epoch 3's history
    assert load_checkpoint(run/'checkpoint.safetensors')[1]['epoch'] == 3
    assert _epochs(run/'history.nc') == [1, 2]                # the file lags: epoch 3 lives in the checkpoint only

    _killed(run, 'write:model.safetensors@1')                 # nothing left to train: killed writing the final weights
    assert _epochs(run/'history.nc') == [1, 2, 3]             # written again from the checkpoint before the weights
    assert not (run/'model.safetensors').exists()

    dermxai('train', 'resnet14', '--out', run, *ARGS, '--resume', check=True)
    assert _epochs(run/'history.nc') == [1, 2, 3]             # every epoch once: no gap, no repeat
    with xr.open_dataset(run/'history.nc') as h, xr.open_dataset(straight/'history.nc') as g:
        assert (h.train_loss.values == g.train_loss.values).all() and (h.valid_loss.values == g.valid_loss.values).all()
    a, b = load_file(straight/'model.safetensors'), load_file(run/'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'resumed weights differ from the uninterrupted run'
    assert not list(run.glob(f'.*{PARTIAL}*')), 'a partly written file was left behind'
