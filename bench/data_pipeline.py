"""Data time per training step as a share of the step (target: under 5 % with DataLoader workers, so data never
starves the accelerator), for ResNet-14 on SynthDerm at 64 and 128 px, with 0 and 2 workers.

The share is what the Trainer records in history.nc (`data_time_share`): time spent waiting for the next batch
divided by the epoch's training time. The last of the epochs is reported (the first includes warm-up).

    python bench/data_pipeline.py
"""
import sys, tempfile
from pathlib import Path

import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from dermxai.models import get_system
from dermxai.sources import SynthSource
from dermxai.train import fit

if __name__ == '__main__':
    system = get_system('resnet14')
    figures = {'data_time_share': {}, 'images_per_s': {}}
    for size in (64, 128):
        src = SynthSource.generate(n=400, size=size, seed=0, progress=False)
        for workers in (0, 2):
            run = Path(tempfile.mkdtemp())/'run'
            cfg = system.config('quick', n=400, size=size, epochs=2, batch_size=32, num_workers=workers)
            fit(system, cfg, run, progress=False, source=src)
            with xr.open_dataset(run/'history.nc') as h:
                share, ips = float(h.data_time_share[-1]), float(h.images_per_s[-1])
            key = f'{size}px, {workers} workers'
            figures['data_time_share'][key] = round(share, 4)
            figures['images_per_s'][key] = round(ips, 1)
    worst = max(v for k, v in figures['data_time_share'].items() if '2 workers' in k)
    figures['target'] = 'data_time_share < 0.05 with workers'
    figures['met'] = worst < 0.05
    save('data_pipeline', figures)
