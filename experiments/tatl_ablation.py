"""TATL's Table 2 ablation on SynthDerm, compute-matched, with the paper's headline model (U-shape + Link-shape ensemble,
probabilities averaged), and the paper's central claim: does the transfer from the attribute-agnostic (union) segmenter
help, above all the two rarest attributes, compared with training the target segmenters without it?

Runs `tatl_ablation` (the four stage combinations x 3 seeds x 2 shapes, one SynthDerm set shared by all runs; the seeds
vary the networks' initialisation and batch order) and writes to experiments/results/:

  tatl_ablation.nc / .csv   the ablation table (per variant, seed and attribute, ensemble and members; mean and std)
  tatl_ablation.json        the claim: per seed, paired differences between variants, for the mean over the attributes
                            and for the two rarest attributes; the ensemble against its members; the run's size and wall

What is compared: union pre-training against random initialisation (the paper's Stage 3 starts from ImageNet, which we
cannot download). Compute-matched: without stage 2 the target segmenters train for 2 x EPOCHS, with it the union
segmenter and each target segmenter for EPOCHS each, so every target segmenter has had the same number of SGD steps
(same training images per epoch) since random initialisation (`target_epochs` in the results records what ran).

Size (default): 200 SynthDerm cases (139 / 26 / 35 train / valid / test) at 32 px, batch 16, 2 epochs per network
but Segment-Net (6: after 2 at 32 px it predicts boxes that are the whole image, and stage 1 would do nothing) (quick
profile otherwise: SGD lr 0.01, momentum 0.9, patience 3, EfficientNet-b0, TATL-Non-Freeze, no augmentation):
24 networks per seed and shape, 144 in all: sized for about 25 min on one thread of the 2-core CPU at a light load;
the committed run took 48 min (2889 s) while other jobs kept the load average at 5-7.

Runs (weights, histories) go to --work (default: $DERMXAI_HOME/experiments/tatl_ablation), not into the repository;
finished runs are reused, so the script can be interrupted and started again; the networks' checkpoints are deleted
once a run is finished (about 5 GB stay).

    OMP_NUM_THREADS=1 nice python experiments/tatl_ablation.py [--seeds 0 1 2] [--epochs 2] [--n 200] [--size 32]
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dermxai.core import TrainConfig, dermxai_home, save_json
from dermxai.data import open_source
from dermxai.datasets import SegmentationDataset
from dermxai.losses import set_jaccard_dice
from dermxai.tatl_ablation import ablation_table, tatl_ablation

RESULTS = Path(__file__).resolve().parent/'results'
PAIRS = [('2,3', '3'), ('1,2,3', '1,3'), ('1,2,3', '3'), ('1,3', '3'), ('1,2,3', '2,3')]   # (with, without)


def union_as_attribute(run_dir: Path, attrs) -> dict:
    """Set-level Jaccard of the union segmenter's test prediction taken as the prediction of each attribute: the score a
    target segmenter would get by copying its starting point, without learning anything attribute-specific."""
    cfg_file = run_dir/'config.json' if (run_dir/'config.json').exists() else sorted(run_dir.glob('*/config.json'))[0]
    cfg = TrainConfig.load(cfg_file)
    with xr.open_dataset(run_dir/'predictions.nc') as p: pred = p.pred.sel(mask='union').load()
    src = open_source(cfg.data, n=cfg.n, size=cfg.size, seed=cfg.seed, progress=False)
    ds = SegmentationDataset(src, 'test', targets=list(attrs), size=cfg.size, augment=False)
    truth = np.stack([ds[k]['mask'].numpy() > 0.5 for k in range(len(ds))])
    assert list(pred.case.values) == list(ds.indices)
    P = np.repeat(pred.values.astype(bool)[:, None], len(attrs), 1)
    return dict(zip(attrs, set_jaccard_dice(P, truth)[0].tolist()))


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.asarray(a, float) - np.asarray(b, float)
    return {'per_seed': [float(x) for x in d], 'mean': float(np.mean(d)), 'std': float(np.std(d, ddof=1)) if len(d) > 1 else None,
            'seeds_positive': int(np.sum(d > 0)), 'seeds': int(np.sum(np.isfinite(d)))}


def claim(ds, work: Path) -> dict:
    "The two rarest attributes, per-seed scores per variant, and paired differences per seed between variants."
    share = ds.train_image_share.to_series().sort_values()
    rare = list(share.index[:2])
    out = {'rarest': {a: float(share[a]) for a in rare}, 'train_image_share': {a: float(v) for a, v in share.items()},
           'seeds': [int(s) for s in ds.seed.values], 'variants': {}, 'paired': {}, 'ensemble_vs_members': {}}
    for v in ds.variant.values:
        j, d = ds.jaccard.sel(variant=v), ds.dice.sel(variant=v)
        entry = {'label': str(ds.label.sel(variant=v).item()),
                 'jaccard_mean_over_attributes_per_seed': [float(x) for x in j.mean('attribute').values],
                 'dice_mean_over_attributes_per_seed': [float(x) for x in d.mean('attribute').values],
                 'target_epochs_per_seed': [float(x) for x in ds.target_epochs.sel(variant=v).mean('attribute').values]}
        for a in ds.attribute.values: entry[str(a)] = {'jaccard_per_seed': [float(x) for x in j.sel(attribute=a).values]}
        if '2' in str(v):   # the union segmenter's own mask, scored as each rare attribute
            dirs = [work/f"stages{str(v).replace(',', '')}"/f'seed{int(s)}' for s in ds.seed.values]
            base = [union_as_attribute(p, rare) if (p/'predictions.nc').exists() else dict.fromkeys(rare, float('nan')) for p in dirs]
            for a in rare: entry[a]['union_mask_as_prediction_per_seed'] = [float(b[a]) for b in base]
        out['variants'][str(v)] = entry
    for w, wo in PAIRS:
        J = lambda v: ds.jaccard.sel(variant=v)
        out['paired'][f'{w} minus {wo}'] = {'mean_over_attributes': _paired(J(w).mean('attribute').values, J(wo).mean('attribute').values),
                                            **{a: _paired(J(w).sel(attribute=a).values, J(wo).sel(attribute=a).values) for a in rare}}
    if 'arch' in ds.dims and ds.sizes['arch'] > 1:
        for v in ds.variant.values:
            ens = ds.jaccard.sel(variant=v).mean('attribute').values
            out['ensemble_vs_members'][str(v)] = {
                'ensemble_per_seed': [float(x) for x in ens],
                **{f'{a}_per_seed': [float(x) for x in ds.jaccard_member.sel(variant=v, arch=a).mean('attribute').values] for a in ds.arch.values},
                **{f'ensemble_minus_{a}': _paired(ens, ds.jaccard_member.sel(variant=v, arch=a).mean('attribute').values) for a in ds.arch.values}}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--archs', nargs='+', default=['unet', 'linknet'], help='one run per shape; two or more are ensembled')
    ap.add_argument('--profile', default='quick'); ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--n', type=int, default=200)
    ap.add_argument('--size', type=int, default=32); ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--lesion-epochs', type=int, default=6, help="Segment-Net's epochs (fewer leave its boxes the whole image at 32 px)")
    ap.add_argument('--encoder'); ap.add_argument('--freeze', action='store_true')
    ap.add_argument('--no-match-steps', action='store_true', help='give every target segmenter the same epochs (not compute-matched)')
    ap.add_argument('--work', default=None); ap.add_argument('--results', default=str(RESULTS))
    ap.add_argument('--no-progress', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(a.work) if a.work else dermxai_home()/'experiments'/'tatl_ablation'
    results = Path(a.results)
    t0 = time.perf_counter()
    ds = tatl_ablation(work, data='synth', profile=a.profile, seeds=a.seeds, data_seed=a.data_seed, archs=a.archs,
                       match_steps=not a.no_match_steps, prune=True, progress=not a.no_progress,
                       options={'encoder': a.encoder, 'freeze': a.freeze or None, 'lesion_epochs': a.lesion_epochs}, epochs=a.epochs, n=a.n, size=a.size,
                       batch_size=a.batch_size)
    wall = time.perf_counter() - t0
    results.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(results/'tatl_ablation.nc')
    ablation_table(ds).to_csv(results/'tatl_ablation.csv', index=False)
    c = claim(ds, work)
    c.update({'command': 'OMP_NUM_THREADS=1 nice python ' + ' '.join(['experiments/tatl_ablation.py', *sys.argv[1:]]),
              'size': {'n': a.n, 'size_px': a.size, 'epochs': a.epochs, 'lesion_epochs': a.lesion_epochs, 'batch_size': a.batch_size, 'archs': a.archs,
                       'seeds': a.seeds, 'networks': int(ds.sizes['seed'] * len(a.archs) * 24), 'torch_threads': 1},
              'profile': a.profile, 'data_seed': a.data_seed, 'attrs': dict(ds.attrs), 'wall_s_this_call': wall,
              'compared': 'union pre-training (stage 2) vs random initialisation, compute-matched; the paper compares with ImageNet',
              'paper_table2': 'Nguyen et al. Table 2 (ISIC 2018): paper_jaccard / paper_dice in tatl_ablation.nc'})
    save_json(results/'tatl_ablation.json', c)
    print(ablation_table(ds).to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    for k, e in c['paired'].items():
        print(f'{k:16s}', {n: (round(x['mean'], 4), f"{x['seeds_positive']}/{x['seeds']}") for n, x in e.items()})
    print(f'wall {wall:.0f} s -> {results}/tatl_ablation.{{nc,csv,json}}')


if __name__ == '__main__':
    main()
