"""Gated multi-task network on SynthDerm: the five variants side by side (Coppola, Lee & Guan).

For every variant (standard, binary, half, double, gates-off) and seed: train with the paper's recipe, then record
- the sharing fractions SF^t_i (eq. 11) of every gated block of the trained (best-epoch) network,
- whether DIAG draws more from the criteria than the criteria draw from each other (per block),
- the Table 2-shaped test metrics (accuracy, macro recall, macro precision per task and averaged over the criteria),
- the 7-point checklist on the test split: inferred (tau 1, 3) vs direct vs the rule on the true criteria,
- which gates get gradient in the trained network (`gate_gradients` on one training batch).

The recipe is the paper's (eq. 10 loss weighted in training only, k = 6 cases per label, Adam 1e-3 with the gates at
100x, L2 1e-4, epochs of 5 iterations, best epoch by the validation loss), shrunk to fit about 30 minutes on ONE CPU
thread shared with other jobs: 600 SynthDerm cases (not Derm7pt's 1011), 96 px (not 256), at most 25 epochs (the
paper trains until 50 epochs pass without a better validation loss; here patience 50 never triggers, so the best of
the 25 epochs is kept), 3 training seeds (the paper reports one run). The JSON records these settings.

Writes experiments/results/gated_variants.{json,nc,csv}. Reproduce:

    OMP_NUM_THREADS=1 nice python experiments/gated_variants.py --seeds 0 1 2
"""
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from dermxai.core import save_json
from dermxai.sources import SynthSource
from dermxai.models import get_system
from dermxai.models_gated import criteria_draw, gate_gradients, sharing_fraction, table2
from dermxai.synth import save_synth
from dermxai.train import fit, load_run

RESULTS = Path(__file__).resolve().parent/'results'
VARIANTS = ['gated', 'gated-binary', 'gated-half', 'gated-double', 'gated-off']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--variants', nargs='+', default=VARIANTS)
    ap.add_argument('--n', type=int, default=600, help='SynthDerm cases (70/15/15 split)')
    ap.add_argument('--size', type=int, default=96, help='input px (shrunk: the paper 256; 91 is the least four stages take)')
    ap.add_argument('--epochs', type=int, default=25, help='epochs of 5 balanced batches (shrunk: the paper stops on patience)')
    ap.add_argument('--patience', type=int, default=50, help='early stopping on the validation loss (the paper: 50)')
    ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--runs', default=None, help='where to keep the run directories (default: a temporary folder)')
    ap.add_argument('--out', default=str(RESULTS/'gated_variants'))
    a = ap.parse_args(argv)
    runs = Path(a.runs) if a.runs else Path(tempfile.mkdtemp(prefix='gated_variants_'))
    # one SynthDerm set for every run, saved once: `seed` below is the training seed (initialisation, batches)
    data = runs/'synthderm.nc'
    save_synth(SynthSource.generate(n=a.n, size=a.size, seed=a.data_seed, progress=False).ds, data)
    records, sf_all, t0 = [], {}, time.perf_counter()
    for seed in a.seeds:
        for name in a.variants:
            system = get_system(name)
            run_dir = runs/f'{name}-seed{seed}'
            if run_dir.exists(): shutil.rmtree(run_dir)
            cfg = system.config('quick', data=str(data), n=a.n, size=a.size, epochs=a.epochs, patience=a.patience, seed=seed)
            t = time.perf_counter()
            res = fit(system, cfg, run_dir, progress=False)
            run = load_run(run_dir)
            sf = sharing_fraction(run.model)
            sf_all[(seed, name)] = sf
            gates = _gate_check(system, cfg, run)
            rec = {'variant': name, 'seed': seed, 'epochs_run': res['epochs_run'], 'best_epoch': res['best_epoch'],
                   'seconds': time.perf_counter() - t, 'test': res['test'],
                   'draw': {b: criteria_draw(sf.sel(block=b)) for b in sf.block.values.tolist()},
                   'checklist': res['test']['checklist'], 'gate_gradients': gates,
                   'row_draw_gate4': _row_draw(sf.sel(block='gate4'))}
            records.append(rec)
            print(f"{name:13s} seed {seed}: {res['epochs_run']} epochs (best {res['best_epoch']}), "
                  f"criteria accuracy {res['test']['criteria_accuracy']:.3f}, DIAG accuracy {res['test']['DIAG_accuracy']:.3f}, "
                  f"gate4 DIAG<-criteria {rec['draw']['gate4']['diag_from_criteria']:.3f} vs criteria<-criteria "
                  f"{rec['draw']['gate4']['criteria_from_criteria']:.3f}  ({rec['seconds']:.0f} s)", flush=True)
    summary = _summarise(records)
    out = Path(a.out)
    sf_da = xr.concat([xr.concat([sf_all[(s, v)] for v in a.variants], dim=pd.Index(a.variants, name='variant'))
                       for s in a.seeds], dim=pd.Index(a.seeds, name='seed'))
    with tempfile.TemporaryDirectory() as d:   # NetCDF via a temporary file, then moved into place
        tmp = Path(d)/'sf.nc'
        sf_da.to_dataset(name='sharing_fraction').to_netcdf(tmp)
        out.parent.mkdir(parents=True, exist_ok=True); shutil.copy(tmp, out.with_suffix('.nc'))
    pd.concat({'mean': summary['table2'], 'std': summary['table2_std']}, axis=1).to_csv(out.with_suffix('.csv'))
    save_json(out.with_suffix('.json'), {
        'experiment': 'gated_variants', 'when': time.strftime('%Y-%m-%d %H:%M:%S'),
        'command': 'python experiments/gated_variants.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
        'settings': vars(a) | {'runs': str(runs)}, 'machine': _machine(), 'seconds': time.perf_counter() - t0,
        'records': records, 'table2_mean_over_seeds': summary['table2'].reset_index().to_dict(orient='records'),
        'shrunk': {'data': '600 SynthDerm cases, data seed 0 (paper: Derm7pt, 413/203/395)', 'size': a.size,
                   'epochs': a.epochs, 'seeds': a.seeds, 'why': 'about 30 minutes on one shared CPU thread'},
        'table2_std_over_seeds': summary['table2_std'].reset_index().to_dict(orient='records'),
        'draw_gate4': summary['draw'], 'gates_off_vs_standard': summary['off_vs_standard'],
        'diag_takes_most': summary['diag_takes_most'], 'gate_gradients': summary['gates'],
        'checklist_mean_over_seeds': summary['checklist']})
    print(summary['table2'].round(3).to_string())
    print(json.dumps({'draw_gate4': summary['draw'], 'gates_off_vs_standard': summary['off_vs_standard']}, indent=1))
    print(f'-> {out}.json, .nc, .csv')


def _summarise(records):
    rows = []
    for r in records:
        t = table2(r['test'])
        for task, row in t.iterrows(): rows.append({'variant': r['variant'], 'seed': r['seed'], 'task': task, **row})
    df = pd.DataFrame(rows)
    g = df.groupby(['variant', 'task'], sort=False)[['accuracy', 'recall', 'precision']]
    table, table_std = g.mean(), g.std(ddof=1)
    variants = list(dict.fromkeys(r['variant'] for r in records))
    draw, most, gates = {}, {}, {}
    for v in variants:
        rs = [r for r in records if r['variant'] == v]
        d = [r['draw']['gate4'] for r in rs]
        draw[v] = {k: float(np.mean([x[k] for x in d])) for k in d[0]} | {
            f'{k}_std': float(np.std([x[k] for x in d], ddof=1)) if len(d) > 1 else None for k in d[0]} | {
            'seeds_with_diag_drawing_more': int(sum(x['diag_from_criteria'] > x['criteria_from_criteria'] for x in d)),
            'seeds': len(d)}
        most[v] = {'seeds_where_diag_takes_most': int(sum(max(r['row_draw_gate4'], key=r['row_draw_gate4'].get) == 'DIAG' for r in rs)),
                   'seeds': len(rs), 'mean_row_draw': {t: float(np.mean([r['row_draw_gate4'][t] for r in rs])) for t in rs[0]['row_draw_gate4']}}
        if rs[0]['gate_gradients']:
            gates[v] = {k: int(sum(r['gate_gradients'][k] for r in rs)) for k in rs[0]['gate_gradients']}
    off_vs = {}
    for metric in ('criteria_accuracy', 'DIAG_accuracy'):
        acc = lambda v: {r['seed']: r['test'][metric] for r in records if r['variant'] == v}
        std, off = acc('gated'), acc('gated-off')
        common = sorted(set(std) & set(off))
        diff = [std[s] - off[s] for s in common]
        off_vs[metric] = {'seeds': common, 'standard': [std[s] for s in common], 'gates_off': [off[s] for s in common],
                          'mean_difference_standard_minus_off': float(np.mean(diff)) if common else None,
                          'std_difference': float(np.std(diff, ddof=1)) if len(common) > 1 else None}
    ck = {}
    for v in dict.fromkeys(r['variant'] for r in records):
        for tau in ('tau1', 'tau3'):
            for kind in ('inferred', 'direct', 'rule_on_truth'):
                xs = [r['checklist'][tau][kind] for r in records if r['variant'] == v]
                ck.setdefault(v, {}).setdefault(tau, {})[kind] = {
                    'confusion_sum_over_seeds': np.sum([x['confusion'] for x in xs], 0).tolist(),
                    **{m: float(np.mean([x[m] for x in xs])) for m in ('sensitivity', 'specificity', 'accuracy', 'balanced_accuracy')}}
    return {'table2': table, 'table2_std': table_std, 'draw': draw, 'off_vs_standard': off_vs, 'checklist': ck,
            'diag_takes_most': most, 'gates': gates}


def _row_draw(sf):
    "How much each target task takes from all the others: the mean of its row of SF without the diagonal."
    m = sf.values
    return {t: float(np.delete(m[k], k).mean()) for k, t in enumerate(sf.target_task.values.tolist())}


def _gate_check(system, cfg, run):
    "`gate_gradients` of the trained network on one training batch, summed over the blocks ({} with the gates off)."
    from torch.utils.data import DataLoader
    cfg = run.cfg
    ds = system.dataset(cfg, run.source(), 'train')
    torch.manual_seed(0)
    batch = next(iter(DataLoader(ds, batch_sampler=system.sampler(cfg.replace(steps_per_epoch=1), ds))))
    gg = gate_gradients(run.model, batch, system.loss(cfg))
    return {k: int(v) for k, v in gg.sum().items()} if len(gg) else {}


def _machine():
    return {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
            'python': platform.python_version(), 'load_average': os.getloadavg()}


if __name__ == '__main__':
    main()
