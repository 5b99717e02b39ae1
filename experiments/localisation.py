"""Do the maps show the evidence? Every classifier and multi-task head of the tour, scored against SynthDerm's planted
evidence, at every explainable layer, aligned and bilinear, beside a random map and a centre prior; 3 seeds.

Trains the tour's quick runs resnet14, arl14, attnmel, gated and location (SynthDerm quick: 600 cases at 64 px; the
tour's per-run settings) for each seed unless they exist, then `dermxai.evidence.evidence_scores(layers='all')` on every
test case with evidence (each head explained for its true class: MEL on the melanomas). Writes
experiments/results/localisation.{csv,json}.

    python experiments/localisation.py [--seeds 0 1 2] [--runs resnet14 arl14 attnmel gated location] [--n N]
"""
import argparse, time
from pathlib import Path

import pandas as pd

from dermxai.core import atomic_path, save_json
from dermxai.evidence import evidence_scores
from dermxai.models import get_system
from dermxai.sources import SynthSource
from dermxai.synth import save_synth, synthderm
from dermxai.tour import TOUR, TOUR_DATA
from dermxai.train import fit

ROOT = Path(__file__).resolve().parent
COLUMNS = {'relevance_mass_accuracy': 'relevance_mass', 'relevance_rank_accuracy': 'rank_accuracy', 'top_k_intersection': 'top_k'}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--runs', nargs='+', default=['resnet14', 'arl14', 'attnmel', 'gated', 'location'])
    ap.add_argument('--n', type=int, default=None, help='test cases with evidence to explain (default: all)')
    ap.add_argument('--work', default=str(ROOT/'results'/'tmp'/'localisation'))
    a = ap.parse_args(argv)
    tables, seconds = [], {}
    for name in a.runs:            # each system over its seeds, the table written after every run (a long job can stop)
        for seed in a.seeds:
            work = Path(a.work)/f'seed{seed}'
            data = work/'synthderm.nc'
            if not data.exists(): save_synth(synthderm(**TOUR_DATA['quick'], seed=seed, progress=False), data)
            source = SynthSource.load(data)
            sys_name, overrides = TOUR[name]
            run_dir, t0 = work/name, time.perf_counter()
            if not (run_dir/'metrics.json').exists():
                cfg = get_system(sys_name).config('quick', **{'data': str(data), 'seed': seed, 'n': len(source),
                                                              'size': source.size, **overrides.get('quick', {})})
                fit(sys_name, cfg, run_dir, resume=run_dir.exists(), progress=False)
            t1 = time.perf_counter()
            table, _ = evidence_scores(run_dir, n=a.n, layers='all', seed=seed, device='cpu', source=source)
            seconds[f'{name}/seed{seed}'] = {'train': t1 - t0, 'explain_and_score': time.perf_counter() - t1}
            tables.append(table)
            write(tables, seconds, a)
            print(f'seed {seed} {name}: {seconds[f"{name}/seed{seed}"]}', flush=True)


def write(tables, seconds, a):
    "experiments/results/localisation.{csv,json} from the runs scored so far."
    df = pd.concat(tables, ignore_index=True).rename(columns=COLUMNS)
    keep = ['system', 'head', 'method', 'layer', 'grid', 'aligned', 'resolved', 'pointing_game', 'relevance_mass',
            'rank_accuracy', 'top_k', 'constant_maps', 'cases', 'seed']
    out = ROOT/'results'
    with atomic_path(out/'localisation.csv', suffix='.csv') as tmp: df[keep].to_csv(tmp, index=False)
    save_json(out/'localisation.json', {'command': 'python experiments/localisation.py', 'seeds': a.seeds, 'runs': a.runs,
                                        'cases': a.n or 'all', 'done': sorted(seconds), 'seconds': seconds,
                                        'rows': df[keep].to_dict(orient='records')})

if __name__ == '__main__':
    main()
