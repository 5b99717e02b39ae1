"""Data time per training step as a share of the step, read from the Trainer's history (`data_time_share`: time spent
waiting for the next batch over the epoch's training time).

`gated` (default; writes bench/results/data_pipeline_gated.json): the gated network's training batches (144 cases,
k = 6 per label) with the paper's augmentation drawn and warped per image (torchvision's `v2.Compose`, the pipeline
before) and a batch at a time (`BatchAugmented` + `BatchAffine`: the same draws, the same pixels). Target: under 10 %
of the step with no DataLoader workers, on one torch thread. Each setting is trained `--repeats` times for 3 epochs of
5 steps; a run's figure is the mean of its last two epochs (the first warms up); min and median over the runs are
reported, with the load average, since other work on a shared machine slows every figure.

`resnet14` (writes bench/results/data_pipeline.json): ResNet-14 on SynthDerm at 64 and 128 px, 0 and 2 workers
(target: under 5 % with workers).

    OMP_NUM_THREADS=1 python bench/data_pipeline.py [gated|resnet14] [--sizes 128 256] [--repeats 3]
"""
import argparse, os, shutil, statistics, sys, tempfile
from pathlib import Path

import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from dermxai.datasets import SevenPointDataset, eval_transforms
from dermxai.models import get_system
from dermxai.models_gated import PAPER_AUGMENTATION, BatchAffine
from dermxai.sources import SynthSource
from dermxai.synth import save_synth
from dermxai.train import fit
from torchvision.transforms import v2


def per_image_dataset(system):
    "The gated system's training data with the same augmentation drawn and applied one image at a time."
    def dataset(cfg, source, split):
        if split != 'train': return system.eval_dataset(cfg, source, split)
        tf = v2.Compose([eval_transforms(cfg.size), BatchAffine(**PAPER_AUGMENTATION).per_image()])
        return SevenPointDataset(source, split, binary=cfg.options.get('binary', False), size=cfg.size, transform=tf)
    return dataset


def gated(sizes, repeats):
    figures = {'settings': {'system': 'gated', 'batch': '144 (k = 6 x 24 labels)', 'steps_per_epoch': 5, 'epochs': 3,
                            'num_workers': 0, 'torch_threads': torch.get_num_threads(), 'repeats': repeats},
               'data_time_share': {}, 'step_s': {}, 'load_average_during': []}
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix='bench_gated_'))
        data = tmp/'synth.nc'
        save_synth(SynthSource.generate(n=600, size=size, seed=0, progress=False).ds, data)
        for r in range(repeats):   # alternate the two pipelines so that machine noise hits both alike
            for name in ('per_image', 'batched'):
                system = get_system('gated')
                if name == 'per_image': system.dataset = per_image_dataset(system)
                cfg = system.config('quick', data=str(data), n=600, size=size, epochs=3, seed=r)
                run = tmp/f'{name}-{r}'
                fit(system, cfg, run, progress=False)
                with xr.open_dataset(run/'history.nc') as h:
                    share = float(h.data_time_share[1:].mean()); step = float(h.time_train_s[1:].mean()) / 5
                figures['data_time_share'].setdefault(f'{size}px, {name}', []).append(round(share, 4))
                figures['step_s'].setdefault(f'{size}px, {name}', []).append(round(step, 3))
                figures['load_average_during'].append(round(os.getloadavg()[0], 2))
                print(size, name, r, round(share, 3), round(step, 3), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {k: {'min': min(v), 'median': statistics.median(v)} for k, v in figures['data_time_share'].items()}
    figures['summary_data_time_share'] = summary
    figures['summary_step_s'] = {k: {'min': min(v), 'median': statistics.median(v)} for k, v in figures['step_s'].items()}
    figures['target'] = 'data_time_share < 0.10 for the batched pipeline, no workers'
    figures['met'] = all(v['median'] < 0.10 for k, v in summary.items() if 'batched' in k)
    save('data_pipeline_gated', figures)


def resnet14():
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


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('system', nargs='?', default='gated', choices=['gated', 'resnet14'])
    ap.add_argument('--sizes', type=int, nargs='+', default=[128])
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    gated(a.sizes, a.repeats) if a.system == 'gated' else resnet14()
