"""A training run killed with SIGKILL inside the write of its checkpoint resumes with no epoch lost or repeated, ends with
the same weights as a run that was never interrupted, and leaves no partly written file behind. The kill comes from
`dermxai.core.fault_point` at a named write, not from a timer, so the test kills the same instant on any machine."""
import signal

import torch
import xarray as xr
from safetensors.torch import load_file

from conftest import dermxai
from dermxai.core import PARTIAL
from dermxai.weights import load_checkpoint

ARGS = ['--n', '96', '--size', '32', '--epochs', '3', '--batch-size', '16', '--no-progress']


def test_sigkill_inside_the_checkpoint_write_then_resume(tmp_path):
    straight = tmp_path/'straight'
    dermxai('train', 'resnet14', '--out', straight, *ARGS, check=True)

    run = tmp_path/'killed'
    res = dermxai('train', 'resnet14', '--out', run, *ARGS, env={'DERMXAI_FAULT': 'write:checkpoint.safetensors@2'})
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])
    assert list(run.glob(f'.checkpoint.safetensors{PARTIAL}*')), 'the kill came after the temporary file was complete'
    assert load_checkpoint(run/'checkpoint.safetensors')[1]['epoch'] == 1          # epoch 2 never committed
    assert not (run/'metrics.json').exists()

    dermxai('train', 'resnet14', '--out', run, *ARGS, '--resume', check=True)
    with xr.open_dataset(run/'history.nc') as h, xr.open_dataset(straight/'history.nc') as g:
        assert list(h.epoch.values) == [1, 2, 3]                                     # no gap, no repeat
        assert (h.train_loss.values == g.train_loss.values).all()
    a, b = load_file(straight/'model.safetensors'), load_file(run/'model.safetensors')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), 'resumed weights differ from the uninterrupted run'
    assert not list(run.glob(f'.*{PARTIAL}*')), 'a partly written file was left behind'
