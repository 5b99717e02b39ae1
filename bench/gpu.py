"""Training throughput (images/s) and peak memory of every registered system at the paper's input sizes (the `full`
profile), with the GPU path on: mixed precision (bf16 where supported, else fp16 with a gradient scaler),
channels-last, cuDNN benchmark, pinned memory and non-blocking copies; `--compile` adds torch.compile.

On a machine without a GPU it says so and measures the CPU at the `quick` profile's sizes instead, so the script is
exercised everywhere. Each system runs in its own process, so peak memory is that system's.

    python bench/gpu.py                      # every system
    python bench/gpu.py --systems arl50 attnmel --steps 30 --batch 32 --compile
"""
import argparse, json, resource, subprocess, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def one(name: str, steps: int, batch: int, compile_: bool) -> dict:
    import torch
    from dermxai.models import get_system
    from dermxai.sources import SynthSource
    from dermxai.trainer import Trainer
    cuda = torch.cuda.is_available()
    system = get_system(name)
    cfg = system.config('full' if cuda else 'quick', batch_size=batch)
    src = SynthSource.generate(n=max(2 * batch, 24), size=cfg.size, seed=0, progress=False, cache=False,
                               split=[1.0, 0.0, 0.0])
    cfg = system.prepare(cfg, src)
    ds = system.dataset(cfg, src, 'train')
    model = system.build_model(cfg)
    t = Trainer(model, ds, None, loss_fn=system.loss(cfg), optimizer=system.optimizer(cfg, model), amp=True,
                batch_size=batch, steps_per_epoch=steps, channels_last=cuda, compile=compile_, progress=False,
                sampler=system.sampler(cfg, ds))
    t.steps_per_epoch = 3; t.train_epoch(0)                     # warm-up: cuDNN autotuning, compilation, allocator
    t.steps_per_epoch = steps
    if cuda: torch.cuda.reset_peak_memory_stats()
    rec = t.train_epoch(1)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {'system': name, 'size': cfg.size, 'batch': batch, 'steps': steps, 'images_per_s': round(rec['images_per_s'], 1),
            'peak_memory_mib': round(peak, 1), 'memory_kind': 'GPU allocated' if cuda else 'process RSS',
            'amp': str(t.amp_dtype).replace('torch.', '') if t.amp_dtype else 'float32', 'compile': compile_,
            'data_time_share': round(rec['data_time_share'], 4)}


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--systems', nargs='*'); ap.add_argument('--steps', type=int, default=None)
    ap.add_argument('--batch', type=int, default=None); ap.add_argument('--compile', action='store_true')
    ap.add_argument('--one', help=argparse.SUPPRESS)
    a = ap.parse_args()
    import torch
    cuda = torch.cuda.is_available()
    steps, batch = a.steps or (20 if cuda else 6), a.batch or (32 if cuda else 8)
    if a.one:
        print(json.dumps(one(a.one, steps, batch, a.compile))); sys.exit(0)
    from dermxai.models import list_systems
    from _common import save
    names = a.systems or list_systems()
    rows = []
    for name in names:
        res = subprocess.run([sys.executable, __file__, '--one', name, '--steps', str(steps), '--batch', str(batch)]
                             + (['--compile'] if a.compile else []), capture_output=True, text=True)
        if res.returncode == 0: rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        else: rows.append({'system': name, 'error': res.stderr.strip().splitlines()[-1] if res.stderr.strip() else 'failed'})
    device = torch.cuda.get_device_name(0) if cuda else 'no GPU present: CPU at the quick profile sizes'
    print(f'\n{device}')
    print(f"{'system':18s} {'size':>5s} {'batch':>5s} {'images/s':>9s} {'peak MiB':>9s}  amp")
    for r in rows:
        if 'error' in r: print(f"{r['system']:18s} error: {r['error']}"); continue
        print(f"{r['system']:18s} {r['size']:5d} {r['batch']:5d} {r['images_per_s']:9.1f} {r['peak_memory_mib']:9.1f}  {r['amp']}")
    save('gpu' if cuda else 'gpu_cpu_fallback', {'device': device, 'gpu_present': cuda, 'rows': rows})
