"""torch.distributed on CPU (Gloo): two processes train the same weights as one process on the same global batch, and
a distributed run killed with SIGKILL resumes and completes."""
import os, signal, subprocess, sys, time
from pathlib import Path

import torch
import xarray as xr
from safetensors.torch import load_file

from conftest import BIN, dermxai

SCRIPT = '''
import sys, torch, torch.nn as nn, torch.distributed as dist
from pathlib import Path
from dermxai.datasets import ClassificationDataset
from dermxai.sources import SynthSource
from dermxai.trainer import Trainer
src = SynthSource.generate(n=96, size=32, seed=0, progress=False, cache=False)
ds = ClassificationDataset(src, 'train', task='mel', augment=False)      # identical inputs in every process
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
t = Trainer(model, ds, None, loss_fn=lambda o, b: nn.functional.cross_entropy(o, b['target']), optimizer=opt,
            out=Path(sys.argv[1]), batch_size=16, progress=False)
t.fit(3)
if dist.is_initialized(): dist.destroy_process_group()
'''


def _torchrun(nproc, *args, **kw):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', *map(str, args)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'}, **kw)


def test_two_gloo_processes_train_the_same_weights_as_one(tmp_path):
    script = tmp_path/'train.py'; script.write_text(SCRIPT)
    one = subprocess.run([sys.executable, str(script), str(tmp_path/'one')], capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun(2, script, tmp_path/'two')
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = load_file(tmp_path/'one'/'model.safetensors'), load_file(tmp_path/'two'/'model.safetensors')
    for k in a: assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    with xr.open_dataset(tmp_path/'one'/'history.nc') as h1, xr.open_dataset(tmp_path/'two'/'history.nc') as h2:
        assert abs(h1.train_loss.values - h2.train_loss.values).max() < 1e-5   # the logged loss is over all processes


def _completed_epochs(run: Path) -> int:
    from dermxai.weights import load_checkpoint
    try: return load_checkpoint(run/'checkpoint.safetensors')[1]['epoch']
    except Exception: return 0


def test_distributed_run_killed_and_resumed(tmp_path):
    run = tmp_path/'run'
    args = ['train', 'resnet14', '--nproc', '2', '--n', '256', '--size', '32', '--epochs', '4', '--batch-size', '16',
            '--no-progress', '--out', str(run)]
    proc = subprocess.Popen([str(BIN/'dermxai'), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ})
    deadline = time.time() + 400
    while _completed_epochs(run) < 2 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    assert proc.poll() is None, 'the run ended before it could be killed'
    os.killpg(proc.pid, signal.SIGKILL)             # the launcher and both workers
    proc.wait()
    assert 2 <= _completed_epochs(run) < 4 and not (run/'metrics.json').exists()
    res = dermxai(*args, '--resume', timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    with xr.open_dataset(run/'history.nc') as h: assert list(h.epoch.values) == [1, 2, 3, 4]
    import json
    m = json.loads((run/'metrics.json').read_text())
    assert m['processes'] == 2 and m['epochs_run'] == 4
