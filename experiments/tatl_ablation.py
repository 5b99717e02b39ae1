"""TATL's Table 2 ablation on SynthDerm, and the paper's central claim: does the transfer from the attribute-agnostic
(union) segmenter help the two rarest attributes compared with Stage 3 alone?

Runs `tatl_ablation` (the four stage combinations x seeds, one SynthDerm set shared by all runs; the seeds vary the
networks' initialisation and batch order) and writes to experiments/results/:

  tatl_ablation.nc / .csv   the ablation table (per variant, seed and attribute; mean and std over seeds)
  tatl_ablation.json        the claim: per seed, Jaccard of the two rarest attributes for each variant and the
                            paired differences against Stage 3 alone

Runs (weights, histories) go to --work (default: $DERMXAI_HOME/experiments/tatl_ablation), not into the repository;
finished runs are reused, so the script can be interrupted and started again.

    python experiments/tatl_ablation.py [--seeds 0 1 2] [--stage1-seeds 0] [--profile quick] [--epochs E] [--n N]

The claim needs Stage 3 and Stages 2,3 over all --seeds; the two variants with Segment-Net (Stages 1,3 and 1,2,3)
cost one more network each and may be run over fewer seeds (--stage1-seeds; missing seeds are NaN in the table).
"""
import argparse, json, sys, time
from pathlib import Path

import numpy as np
import xarray as xr

from dermxai.core import TrainConfig, dermxai_home, save_json
from dermxai.data import open_source
from dermxai.datasets import SegmentationDataset
from dermxai.losses import set_jaccard_dice
from dermxai.models_tatl import TABLE2
from dermxai.tatl_ablation import ablation_table, tatl_ablation

RESULTS = Path(__file__).resolve().parent/'results'


def union_as_attribute(run_dir: Path, attrs) -> dict:
    """Set-level Jaccard of the union segmenter's test prediction taken as the prediction of each attribute: the score a
    target segmenter would get by copying its starting point, without learning anything attribute-specific."""
    cfg = TrainConfig.load(run_dir/'config.json')
    with xr.open_dataset(run_dir/'predictions.nc') as p: pred = p.pred.sel(mask='union').load()
    src = open_source(cfg.data, n=cfg.n, size=cfg.size, seed=cfg.seed, progress=False)
    ds = SegmentationDataset(src, 'test', targets=list(attrs), size=cfg.size, augment=False)
    truth = np.stack([ds[k]['mask'].numpy() > 0.5 for k in range(len(ds))])
    assert list(pred.case.values) == list(ds.indices)
    P = np.repeat(pred.values.astype(bool)[:, None], len(attrs), 1)
    return dict(zip(attrs, set_jaccard_dice(P, truth)[0].tolist()))


def claim(ds, work: Path) -> dict:
    "The two rarest attributes (share of training images) and, per seed, each variant's Jaccard vs Stage 3 alone."
    share = ds.train_image_share.to_series().sort_values()
    rare = list(share.index[:2])
    out = {'rarest': {a: float(share[a]) for a in rare}, 'train_image_share': {a: float(v) for a, v in share.items()},
           'seeds': [int(s) for s in ds.seed.values], 'variants': {}}
    base = ds.jaccard.sel(variant='3')
    for v in ds.variant.values:
        j = ds.jaccard.sel(variant=v)
        entry = {'label': str(ds.label.sel(variant=v).item()),
                 'jaccard_mean_over_attributes': [float(x) for x in j.mean('attribute').values]}
        for a in rare:
            diff = (j.sel(attribute=a) - base.sel(attribute=a)).values
            entry[a] = {'jaccard_per_seed': [float(x) for x in j.sel(attribute=a).values],
                        'minus_stage3_per_seed': [float(x) for x in diff],
                        'minus_stage3_mean': float(np.nanmean(diff)),
                        'seeds_better_than_stage3': int(np.sum(diff > 0)), 'seeds_run': int(np.sum(np.isfinite(diff)))}
        if '2' in str(v):   # the union segmenter's own mask, scored as each rare attribute
            dirs = [work/f"stages{str(v).replace(',', '')}"/f'seed{int(s)}' for s in ds.seed.values]
            base_j = [union_as_attribute(d, rare) if (d/'predictions.nc').exists() else dict.fromkeys(rare, float('nan')) for d in dirs]
            for a in rare: entry[a]['union_mask_as_prediction_per_seed'] = [float(b[a]) for b in base_j]
        out['variants'][str(v)] = entry
    return out


def merge_parts(both, stage1) -> xr.Dataset:
    """One ablation Dataset, Table 2's four rows: Stage 3 / Stages 2,3 over all seeds, the Segment-Net variants one seed per
    part; NaN where a variant or seed was not run."""
    parts, variants = [both, *stage1], list(TABLE2)
    seeds = sorted({int(s) for p in parts for s in p.seed.values})
    ds = xr.Dataset({k: xr.DataArray(np.nan, coords={'variant': variants, 'seed': seeds, 'attribute': both.attribute.values},
                                     dims=('variant', 'seed', 'attribute')).copy() for k in ('jaccard', 'dice')})
    ds['paper_jaccard'] = xr.DataArray(np.nan, coords={'variant': variants, 'attribute': both.attribute.values},
                                       dims=('variant', 'attribute')).copy()
    for p in parts:
        for k in ('jaccard', 'dice'): ds[k].loc[dict(variant=p.variant.values, seed=p.seed.values)] = p[k].transpose('variant', 'seed', 'attribute').values
        ds['paper_jaccard'].loc[dict(variant=p.variant.values)] = p.paper_jaccard.values
    ds['train_image_share'] = both.train_image_share
    ds = ds.assign_coords(label=('variant', list(TABLE2.values())))
    ds.attrs = dict(both.attrs)
    return ds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--stage1-seeds', type=int, nargs='+', default=None,
                    help='seeds for Stages 1,3 and 1,2,3 (default: --seeds)')
    ap.add_argument('--stage1-variants', nargs='*', default=['1,3', '1,2,3'], choices=['1,3', '1,2,3'],
                    help='which Segment-Net variants to run (the others are NaN rows)')
    ap.add_argument('--profile', default='quick'); ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--epochs', type=int); ap.add_argument('--n', type=int); ap.add_argument('--size', type=int)
    ap.add_argument('--arch'); ap.add_argument('--encoder'); ap.add_argument('--freeze', action='store_true')
    ap.add_argument('--work', default=None); ap.add_argument('--no-progress', action='store_true')
    a = ap.parse_args()
    work = Path(a.work) if a.work else dermxai_home()/'experiments'/'tatl_ablation'
    t0 = time.perf_counter()
    kw = dict(data='synth', profile=a.profile, data_seed=a.data_seed, progress=not a.no_progress,
              options={'arch': a.arch, 'encoder': a.encoder, 'freeze': a.freeze or None}, epochs=a.epochs, n=a.n, size=a.size)
    parts = [tatl_ablation(work, seeds=a.seeds, variants=['3', '2,3'], **kw)]
    for v in a.stage1_variants:          # one variant and seed at a time: an interrupted call keeps the finished runs
        for s in a.stage1_seeds or a.seeds: parts.append(tatl_ablation(work, seeds=[s], variants=[v], **kw))
    ds = merge_parts(parts[0], parts[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(RESULTS/'tatl_ablation.nc')
    ablation_table(ds).to_csv(RESULTS/'tatl_ablation.csv', index=False)
    c = claim(ds, work)
    c.update({'command': 'python ' + ' '.join(['experiments/tatl_ablation.py', *sys.argv[1:]]),
              'profile': a.profile, 'data_seed': a.data_seed, 'attrs': dict(ds.attrs), 'wall_s_this_call': time.perf_counter() - t0,
              'paper_table2': 'not found; never invented (paper_jaccard is NaN)'})
    save_json(RESULTS/'tatl_ablation.json', c)
    print(ablation_table(ds).to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    print(json.dumps({k: c[k] for k in ('rarest',)}, indent=2))
    for v, e in c['variants'].items():
        print(f"{e['label']:14s}", {a: round(e[a]['minus_stage3_mean'], 4) for a in c['rarest']},
              {a: f"{e[a]['seeds_better_than_stage3']}/{e[a]['seeds_run']}" for a in c['rarest']})
    print(f'-> {RESULTS}/tatl_ablation.{{nc,csv,json}}')


if __name__ == '__main__':
    main()
