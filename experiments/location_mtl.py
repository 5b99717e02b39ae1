"""Lesion + body-location network on SynthDerm (Liao & Luo): multi-task vs single-task, the Ensemble, retrieval and R.

For every seed: train `location` (both heads), `location-single --head lesion` and `location-single --head location`
on the same SynthDerm set with the paper's recipe (the `quick` profile: SGD, batch 20, base lr 0.001 with the new FC
layers at 10x / 20x, lr / 10 on a validation plateau, scale jittering + 64 px crops + horizontal flips, 10-crop
testing), then record
- the test AP per lesion label, mAP-class / mAP-image (lesion head) and top-1 / top-3 accuracy (location head),
- the Ensemble of Table 1: per test case and label the higher of the MTL and single-task ResNet probabilities,
- 5-nearest-neighbour retrieval as in the paper (test queries, training gallery, pool5 features of the centre crop,
  Euclidean distance): the share of neighbours sharing at least one lesion label with the query (the paper's hit);
  also the share with exactly its label set and with its body location,
- R (eq. 1) from the MTL network's test predictions (hard and soft) against SynthDerm's planted table;
and, without any network, R from SynthDerm labels (the rendered set's and 5000 label-only cases) against the planted
tables (Pearson r over the cells).

Shrunk to fit 35 minutes of one CPU thread shared with other jobs (recorded in the JSON under `shrunk`): 600 cases
rendered at 48 px, 32 px crops (shorter side jittered in [37, 69]; paper: 21657 images, 224 px crops), 8 epochs of 21 steps (paper: 12 x 10^4 iterations), one fixed split (paper:
5-fold cross-validation), from scratch (paper: ImageNet weights), no AlexNet. Writes
experiments/results/location_mtl.{json,nc}. Reproduce:

    OMP_NUM_THREADS=1 python experiments/location_mtl.py --seeds 0 1 2
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
from dermxai.datasets import LesionLocationDataset
from dermxai.models import get_system
from dermxai.models_location import (location_transforms, mean_average_precision, predict_lesion_location,
                                     retrieval_precision, retrieve)
from dermxai.sources import SynthSource
from dermxai.synth import save_synth, synth_labels
from dermxai.train import fit, load_run

RESULTS = Path(__file__).resolve().parent/'results'
RUNS = {'mtl': ('location', {}), 'single-lesion': ('location-single', {'head': 'lesion'}),
        'single-location': ('location-single', {'head': 'location'})}
SHRUNK = {'data': 'SynthDerm, 600 cases (paper: DermQuest, 21657 images)', 'crops': '32 px from 48 px renders, shorter side in [37, 69] (paper: 224 px, [256, 480])',
          'iterations': '8 epochs of 21 steps of 20 cases (paper: 12 x 10^4 iterations)',
          'protocol': 'one fixed train / valid / test split (paper: 5-fold cross-validation)',
          'weights': 'from scratch (paper: ImageNet-initialised)', 'baselines': 'no AlexNet'}


class _Labels:
    "A label table as a case source for `correlation_from_source`."
    def __init__(self, labels, vocab, name): self.labels, self.vocab, self.name = labels, vocab, name


def _centre(source, split, size):
    "The cases of `split` as one centre crop each (retrieval's queries and gallery)."
    return LesionLocationDataset(source, split, lesion='morphology', size=size, transform=location_transforms(size, 'valid'))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--n', type=int, default=600)
    ap.add_argument('--size', type=int, default=32, help='crop size')
    ap.add_argument('--render-size', type=int, default=48, help='SynthDerm image size')
    ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--runs', default=None, help='where to keep the run directories (default: a temporary folder)')
    ap.add_argument('--out', default=str(RESULTS/'location_mtl'))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = Path(a.runs) if a.runs else Path(tempfile.mkdtemp(prefix='location_mtl_'))
    source = SynthSource.generate(n=a.n, size=a.render_size, seed=a.data_seed, progress=False)
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

    lab = source.labels
    tag_cols = [c for c in lab if c.startswith('morph_')]
    tags = dict(zip(lab.index, lab[tag_cols].values))
    records, R_pred, ensemble = [], {}, []
    for seed in a.seeds:
        probs = {}
        for key, (name, opts) in RUNS.items():
            system = get_system(name)
            cfg = system.config('quick', data=str(data), n=a.n, size=a.size, epochs=a.epochs, seed=seed, options=opts)
            run_dir = runs/f'{key}-seed{seed}'
            if run_dir.exists(): shutil.rmtree(run_dir)
            t = time.perf_counter()
            res = fit(system, cfg, run_dir, progress=False)
            run = load_run(run_dir)
            with xr.open_dataset(run_dir/'test_predictions.nc') as p:        # the 10-crop test scores `fit` wrote
                pt = {k.removesuffix('_probability'): p[k].values for k in p.data_vars} | {'index': p.case.values}
                classes = {'lesion': p.lesion.values.tolist(), 'location': p.location.values.tolist()}
            probs[key] = pt
            q, g = (predict_lesion_location(run.model, _centre(source, s, a.size)) for s in ('test', 'train'))   # pool5
            nb = retrieve(q['features'], g['features'], k=5, query_index=q['index'], gallery_index=g['index'])
            hist = xr.open_dataset(run_dir/'history.nc').load()
            rec = {'run': key, 'system': name, 'options': opts, 'seed': seed, 'epochs_run': res['epochs_run'],
                   'lr_per_epoch': hist['lr'].values.tolist() if 'lr' in hist else None,
                   'seconds': time.perf_counter() - t, 'test': res['test'],
                   'retrieval_shares_a_tag': retrieval_precision(nb, tags, match='any'),
                   'retrieval_same_tag_set': retrieval_precision(nb, tags, match='exact'),
                   'retrieval_same_location': retrieval_precision(nb, lab['location'])}
            if key == 'mtl':
                for soft in (False, True):
                    R = correlation_from_predictions(pt['lesion'], pt['location'], classes['lesion'], classes['location'], soft=soft)
                    R_pred[(seed, 'soft' if soft else 'hard')] = R.drop_vars('n_cases')
                    rec[f"R_predicted_{'soft' if soft else 'hard'}_vs_planted"] = correlation_agreement(R, planted['morphology'])
                rec['R_test_labels_vs_planted'] = correlation_agreement(
                    correlation_from_source(source, lesion='morphology', split='test'), planted['morphology'])
            records.append(rec)
            print(f"{key:16s} seed {seed}: {', '.join(f'{k} {v:.3f}' for k, v in res['test'].items() if isinstance(v, float) and not k.startswith('loss'))}; "
                  f"5-NN shares a tag {rec['retrieval_shares_a_tag']:.3f}, same location {rec['retrieval_same_location']:.3f} "
                  f"({rec['seconds']:.0f} s)", flush=True)
        # Table 1's Ensemble: the higher of the two networks' scores for each test case and label
        m, r = probs['mtl'], probs['single-lesion']
        assert (m['index'] == r['index']).all()
        best = np.maximum(m['lesion'], r['lesion'])
        ensemble.append({'seed': seed, 'mAP_class': mean_average_precision(m['lesion_true'], best, 'class'),
                         'mAP_image': mean_average_precision(m['lesion_true'], best, 'image')})
        print(f'ensemble         seed {seed}: {ensemble[-1]}', flush=True)

    # baselines that need no network: label frequencies (mAP of a constant ranking) and the majority location
    te = lab[lab.split == 'test']
    summary = {}
    for key in RUNS:
        rs = [r for r in records if r['run'] == key]
        metrics = [k for k, v in rs[0]['test'].items() if isinstance(v, float) and not k.startswith('loss')]
        metrics += ['retrieval_shares_a_tag', 'retrieval_same_tag_set', 'retrieval_same_location']
        get = lambda r, k: r['test'][k] if k in r['test'] else r[k]
        summary[key] = {k: {'mean': float(np.mean([get(r, k) for r in rs])), 'std': float(np.std([get(r, k) for r in rs], ddof=1))}
                        for k in metrics}
        if key != 'single-location':
            summary[key]['AP'] = {c: float(np.mean([r['test']['AP'][c] for r in rs])) for c in rs[0]['test']['AP']}
    summary['ensemble'] = {k: {'mean': float(np.mean([e[k] for e in ensemble])), 'std': float(np.std([e[k] for e in ensemble], ddof=1))}
                           for k in ('mAP_class', 'mAP_image')}
    mtl = {r['seed']: r for r in records if r['run'] == 'mtl'}
    one = {r['seed']: r for r in records if r['run'] == 'single-lesion'}
    loc = {r['seed']: r for r in records if r['run'] == 'single-location'}
    summary['mtl_minus_single'] = {
        'mAP_class': [mtl[s]['test']['mAP_class'] - one[s]['test']['mAP_class'] for s in a.seeds],
        'mAP_image': [mtl[s]['test']['mAP_image'] - one[s]['test']['mAP_image'] for s in a.seeds],
        'location_top1': [mtl[s]['test']['location_top1'] - loc[s]['test']['location_top1'] for s in a.seeds],
        'location_top3': [mtl[s]['test']['location_top3'] - loc[s]['test']['location_top3'] for s in a.seeds]}
    summary['majority_location_top1'] = float((te.location == lab[lab.split == 'train'].location.mode()[0]).mean())
    prev = lab[lab.split == 'train'][tag_cols].values.mean(0)
    y_te = te[tag_cols].values
    summary['prevalence_predictor'] = {'mAP_class': mean_average_precision(y_te, np.tile(prev, (len(te), 1)), 'class'),
                                       'mAP_image': mean_average_precision(y_te, np.tile(prev, (len(te), 1)), 'image')}
    # retrieval by chance: a random training case shares a tag with a test query this often
    tr_tags = lab[lab.split == 'train'][tag_cols].values > 0.5
    summary['retrieval_chance_shares_a_tag'] = float(np.mean([(tr_tags & (row > 0.5)).any(1).mean() for row in y_te]))
    summary['retrieval_chance_same_location'] = float(np.mean([(lab[lab.split == 'train'].location == l).mean() for l in te.location]))
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    nc = xr.Dataset({'R_predicted': xr.concat([xr.concat([R_pred[(s, k)] for k in ('hard', 'soft')], dim=pd.Index(['hard', 'soft'], name='counting'))
                                               for s in a.seeds], dim=pd.Index(a.seeds, name='seed')),
                     'R_planted': planted['morphology'].drop_vars([c for c in planted['morphology'].coords if c not in ('lesion', 'location')])})
    with tempfile.TemporaryDirectory() as d:
        nc.to_netcdf(Path(d)/'r.nc'); shutil.copy(Path(d)/'r.nc', out.with_suffix('.nc'))
    save_json(out.with_suffix('.json'), {
        'experiment': 'location_mtl', 'when': time.strftime('%Y-%m-%d %H:%M:%S'),
        'command': 'python experiments/location_mtl.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        'settings': vars(a) | {'runs': str(runs)}, 'shrunk': SHRUNK, 'recipe': get_system('location').config('quick').to_dict(),
        'machine': _machine(), 'seconds': time.perf_counter() - t0,
        'R_from_labels_vs_planted': r_labels, 'records': records, 'ensemble': ensemble, 'mean_over_seeds': summary})
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    print(f'-> {out}.json, .nc')
    if not a.runs: shutil.rmtree(runs, ignore_errors=True)


def _machine():
    return {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
            'python': platform.python_version(), 'load_average': os.getloadavg()}


if __name__ == '__main__':
    main()
