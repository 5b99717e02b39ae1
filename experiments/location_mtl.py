"""Lesion + body-location network on SynthDerm (Liao & Luo): multi-task vs single-task, and the lesion-location R.

For every seed: train `location` (both heads), `location-single --head lesion` and `location-single --head location`
on the same SynthDerm set with the same recipe, then record
- the test mAP-class / mAP-image (lesion head) and top-1 / top-3 accuracy (location head),
- 5-nearest-neighbour retrieval (test queries, training gallery, pooled features): share of neighbours with the
  query's location and with its exact set of morphology tags,
- R (eq. 1) from the MTL network's test predictions (hard and soft) against SynthDerm's planted table;
and, without any network, R from SynthDerm labels (the rendered set's and 5000 label-only cases) against the planted
tables (Pearson r over the cells).

Writes experiments/results/location_mtl.{json,nc}. Reproduce (ResNet-50 at 64 px; about 10 minutes per seed on two busy
CPU cores):

    OMP_NUM_THREADS=1 python experiments/location_mtl.py --seeds 0 1
"""
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from dermxai.core import save_json
from dermxai.correlation import (correlation_agreement, correlation_from_predictions, correlation_from_source,
                                 planted_correlation)
from dermxai.sources import SynthSource
from dermxai.models import get_system
from dermxai.models_location import predict_lesion_location, retrieval_precision, retrieve
from dermxai.synth import save_synth, synth_labels
from dermxai.train import fit, load_run

RESULTS = Path(__file__).resolve().parent/'results'
RUNS = {'mtl': ('location', {}), 'single-lesion': ('location-single', {'head': 'lesion'}),
        'single-location': ('location-single', {'head': 'location'})}


class _Labels:
    "A label table as a case source for `correlation_from_source`."
    def __init__(self, labels, vocab, name): self.labels, self.vocab, self.name = labels, vocab, name


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0])
    ap.add_argument('--n', type=int, default=600)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--epochs', type=int, default=6)
    ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--runs', default=None, help='where to keep the run directories (default: a temporary folder)')
    ap.add_argument('--out', default=str(RESULTS/'location_mtl'))
    a = ap.parse_args(argv)
    runs = Path(a.runs) if a.runs else Path(tempfile.mkdtemp(prefix='location_mtl_'))
    source = SynthSource.generate(n=a.n, size=a.size, seed=a.data_seed, progress=False)
    data = runs/'synthderm.nc'
    save_synth(source.ds, data)
    t0 = time.perf_counter()

    # R from labels alone, against the planted tables
    planted = {k: planted_correlation(source, k) for k in ('diagnosis', 'morphology')}
    labels_only = _Labels(synth_labels(5000, seed=a.data_seed), source.vocab, 'SynthDerm labels (5000)')
    r_labels = {f'{k} / {name}': correlation_agreement(correlation_from_source(src, lesion=k), planted[k])
                for name, src in [('rendered set', source), ('5000 label-only cases', labels_only)]
                for k in ('diagnosis', 'morphology')}
    print(json.dumps(r_labels, indent=1), flush=True)

    records, R_pred = [], {}
    for seed in a.seeds:
        feats = {}
        for key, (name, opts) in RUNS.items():
            system = get_system(name)
            cfg = system.config('quick', data=str(data), n=a.n, size=a.size, epochs=a.epochs, seed=seed, options=opts)
            run_dir = runs/f'{key}-seed{seed}'
            if run_dir.exists(): shutil.rmtree(run_dir)
            t = time.perf_counter()
            res = fit(system, cfg, run_dir, progress=False)
            run = load_run(run_dir)
            test = run.system.dataset(run.cfg, source, 'test'); train = run.system.dataset(run.cfg, source, 'train')
            pt, pg = predict_lesion_location(run.model, test), predict_lesion_location(run.model, train)
            nb = retrieve(pt['features'], pg['features'], k=5, query_index=pt['index'], gallery_index=pg['index'])
            lab = source.labels
            tags = {i: tuple(row) for i, row in zip(lab.index, lab[[c for c in lab if c.startswith('morph_')]].values)}
            rec = {'run': key, 'system': name, 'options': opts, 'seed': seed, 'epochs_run': res['epochs_run'],
                   'seconds': time.perf_counter() - t, 'test': res['test'],
                   'retrieval_same_location': retrieval_precision(nb, lab['location']),
                   'retrieval_same_tags': retrieval_precision(nb, tags)}
            if key == 'mtl':
                for soft in (False, True):
                    R = correlation_from_predictions(pt['lesion'], pt['location'], test.lesion_classes,
                                                     test.location_classes, soft=soft)
                    R_pred[(seed, 'soft' if soft else 'hard')] = R.drop_vars('n_cases')
                    rec[f"R_predicted_{'soft' if soft else 'hard'}_vs_planted"] = correlation_agreement(R, planted['morphology'])
                rec['R_test_labels_vs_planted'] = correlation_agreement(
                    correlation_from_source(source, lesion='morphology', split='test'), planted['morphology'])
            records.append(rec)
            print(f"{key:16s} seed {seed}: {', '.join(f'{k} {v:.3f}' for k, v in res['test'].items() if not k.startswith('loss'))}; "
                  f"5-NN same location {rec['retrieval_same_location']:.3f}, same tags {rec['retrieval_same_tags']:.3f} "
                  f"({rec['seconds']:.0f} s)", flush=True)

    # baselines that need no network: label frequencies (mAP of a constant ranking) and the majority location
    lab = source.labels
    te = lab[lab.split == 'test']
    summary = {}
    for key in RUNS:
        rs = [r for r in records if r['run'] == key]
        summary[key] = {m: float(np.mean([r['test'][m] for r in rs])) for m in rs[0]['test'] if not m.startswith('loss')}
        summary[key] |= {m: float(np.mean([r[m] for r in rs])) for m in ('retrieval_same_location', 'retrieval_same_tags')}
    summary['majority_location_top1'] = float((te.location == lab[lab.split == 'train'].location.mode()[0]).mean())
    # a network-free lesion predictor: every test case scored with the training prevalence of each tag
    from dermxai.models_location import mean_average_precision
    tag_cols = [c for c in lab if c.startswith('morph_')]
    prev = lab[lab.split == 'train'][tag_cols].values.mean(0)
    y_te = te[tag_cols].values
    summary['prevalence_predictor'] = {'mAP_class': mean_average_precision(y_te, np.tile(prev, (len(te), 1)), 'class'),
                                       'mAP_image': mean_average_precision(y_te, np.tile(prev, (len(te), 1)), 'image')}
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    nc = xr.Dataset({'R_predicted': xr.concat([xr.concat([R_pred[(s, k)] for k in ('hard', 'soft')], dim=pd.Index(['hard', 'soft'], name='counting'))
                                               for s in a.seeds], dim=pd.Index(a.seeds, name='seed')),
                     'R_planted': planted['morphology'].drop_vars([c for c in planted['morphology'].coords if c not in ('lesion', 'location')])})
    with tempfile.TemporaryDirectory() as d:
        nc.to_netcdf(Path(d)/'r.nc'); shutil.copy(Path(d)/'r.nc', out.with_suffix('.nc'))
    save_json(out.with_suffix('.json'), {
        'experiment': 'location_mtl', 'when': time.strftime('%Y-%m-%d %H:%M:%S'),
        'command': 'python experiments/location_mtl.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        'settings': vars(a) | {'runs': str(runs)}, 'machine': _machine(), 'seconds': time.perf_counter() - t0,
        'R_from_labels_vs_planted': r_labels, 'records': records, 'mean_over_seeds': summary})
    print(json.dumps(summary, indent=1))
    print(f'-> {out}.json, .nc')


def _machine():
    return {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
            'python': platform.python_version(), 'load_average': os.getloadavg()}


if __name__ == '__main__':
    main()
