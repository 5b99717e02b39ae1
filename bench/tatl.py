"""TATL's cost: `dermxai train tatl --profile quick` (all seven networks) in a child process -- its wall and CPU time
(target: <= 120 s wall on the 2-core CPU), its peak resident memory, and the training images/s of every stage.

SynthDerm is rendered (or taken from the cache) before the clock starts, so the figures are training, scoring and
saving only.

    python bench/tatl.py [--profile quick] [--arch unet] [--encoder efficientnet-b0]
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from dermxai.sources import SynthSource
from dermxai.models import get_system

TARGET_S = 120


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--profile', default='quick'); ap.add_argument('--arch', default='unet')
    ap.add_argument('--encoder', default='efficientnet-b0')
    a = ap.parse_args()
    cfg = get_system('tatl').config(a.profile)
    SynthSource.generate(n=cfg.n, size=cfg.size, seed=cfg.seed, progress=False)   # warm the cache
    out = Path(tempfile.mkdtemp())/'tatl'
    cmd = [str(Path(sys.executable).parent/'dermxai'), 'train', 'tatl', '--profile', a.profile, '--out', str(out),
           '--arch', a.arch, '--encoder', a.encoder, '--no-progress']
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0: sys.exit(f'training failed:\n{res.stderr[-3000:]}')
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = json.loads((out/'metrics.json').read_text())
    stages = {k: {'images_per_s': round(v['images_per_s'], 1), 'train_time_s': round(v['train_time_s'], 1),
                  'epochs_run': v['epochs_run']} for k, v in m['stage_runs'].items()}
    load = os.getloadavg()
    save('tatl', {'command': ' '.join(['dermxai', *cmd[1:-3], '...']), 'profile': a.profile, 'arch': a.arch,
                  'encoder': a.encoder, 'n': cfg.n, 'size': cfg.size, 'epochs': cfg.epochs, 'batch_size': cfg.batch_size,
                  'networks': len(stages), 'wall_s': round(wall, 1), 'cpu_s': round(cpu, 1),
                  'peak_rss_mib': round(after.ru_maxrss / 1024, 1),   # Linux: KiB; the largest child so far
                  'train_images_per_s': stages, 'test_jaccard': m['test']['jaccard'],
                  'load_average_1_5_15': [round(v, 2) for v in load],
                  'target': f'wall <= {TARGET_S} s', 'met': wall <= TARGET_S})


if __name__ == '__main__':
    main()
