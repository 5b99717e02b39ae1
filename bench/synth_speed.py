"""SynthDerm rendering speed: cases per second at 64, 128 and 256 px, in one process and in parallel processes.

    python bench/synth_speed.py
"""
import os, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from dermxai.synth import synthderm


def rate(n, size, n_jobs):
    synthderm(n=4, size=size, seed=99, progress=False, n_jobs=1)          # warm caches and imports
    t = time.perf_counter()
    synthderm(n=n, size=size, seed=0, progress=False, n_jobs=n_jobs)
    return n / (time.perf_counter() - t)


if __name__ == '__main__':
    cores = os.cpu_count() or 1
    figures = {'cases_per_s': {}}
    for size, n in [(64, 300), (128, 300), (256, 100)]:
        one = rate(n, size, 1)
        par = rate(n, size, cores) if cores > 1 else one
        figures['cases_per_s'][f'{size}px'] = {'1 process': round(one, 1), f'{cores} processes': round(par, 1),
                                               'parallel speed-up': round(par / one, 2)}
    figures['headline'] = f"{figures['cases_per_s']['128px']['1 process']} cases/s at 128 px in one process"
    save('synth_speed', figures)
