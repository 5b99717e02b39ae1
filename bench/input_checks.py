"""What the input checks of a data set on disk cost when cases are read for training (target: at most 5 % more time
per case than reading without them, from the second epoch on; the first epoch, which checks each file, is reported).

Every read of a case now checks that the image and mask paths stay inside the data set's folder (symbolic links
followed: `inside`), that each is a regular file (`regular_file`: no FIFO, device or link loop), and reads the mask by
the stated rule (`mask_positive`: the distinct values counted). The baseline is the same read with those three
replaced by what stood there before (no path checks; the old threshold). Both read every case of an ISIC 2018 layout
(image + lesion mask; 256 px and 768 px, the latter nearer a real dermoscopy photo), eight rounds, each in a shuffled
order (a fixed order favours whichever runs third); the median seconds per case of each are compared. A source checks each file on its first read only, so the first epoch
(a freshly opened source: `cold`) pays more than the later ones (the same source again: `warm`).

    python bench/input_checks.py
"""
import random, shutil, statistics, sys, tempfile, time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
import dermxai.files as files
import dermxai.sources as sources
from dermxai.data import open_source, write_layout
from dermxai.synth import synthderm

N, ROUNDS = 60, 8


def _old_mask_positive(values, file=None, report=None, checked=False):
    v = np.asarray(values)
    if v.dtype == bool: return v.copy()
    return v >= 0.5 if v.size == 0 or v.max() <= 1 else v > 128


@contextmanager
def unchecked():
    "The reads as they were before the checks: no path checks, the old mask threshold."
    saved = files.regular_file, sources.inside, files.mask_positive
    files.regular_file = lambda p, what='file': Path(p)
    sources.inside = lambda p, root: Path(p)
    files.mask_positive = _old_mask_positive
    try: yield
    finally: files.regular_file, sources.inside, files.mask_positive = saved


def per_case(src) -> float:
    t = time.perf_counter()
    for i in range(len(src)): src.image(i); src.masks(i, ['lesion'])
    return (time.perf_counter() - t) / len(src)


def measure(size:int) -> dict:
    root = Path(tempfile.mkdtemp())/'isic2018'
    write_layout(synthderm(n=N, size=size, seed=0, progress=False), root, 'isic2018', seed=0)
    per_case(open_source(root))                              # warm the page cache
    warm_src = open_source(root); per_case(warm_src)
    times, rng = {'cold': [], 'warm': [], 'unchecked': []}, random.Random(0)
    for _ in range(ROUNDS):
        for kind in rng.sample(list(times), 3):
            if kind == 'cold': times[kind].append(per_case(open_source(root)))
            elif kind == 'warm': times[kind].append(per_case(warm_src))
            else:
                with unchecked(): times[kind].append(per_case(open_source(root)))
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    shutil.rmtree(root.parent)
    return {**{f'ms_per_case_{k}': round(v, 3) for k, v in ms.items()},
            'ratio_first_epoch': round(ms['cold'] / ms['unchecked'], 3), 'ratio_later_epochs': round(ms['warm'] / ms['unchecked'], 3)}


if __name__ == '__main__':
    by_size = {f'{s}px': measure(s) for s in (256, 768)}
    save('input_checks', {'cases': N, 'rounds': ROUNDS, 'by_size': by_size,
                          'target': 'ratio_later_epochs (checked / unchecked seconds per case) <= 1.05 at both sizes',
                          'met': all(v['ratio_later_epochs'] <= 1.05 for v in by_size.values())})
