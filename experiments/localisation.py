"""Which explanation method finds the evidence? ResNet-14 on SynthDerm, scored against the planted evidence masks.

Trains resnet14 (quick profile: 600 SynthDerm cases at 64 px, 3 epochs, seed 0) unless the run exists, explains the
melanoma class on every test case whose 7-point checklist evidence is not empty, and scores CAM, Grad-CAM, Integrated
Gradients, Occlusion and Saliency (and a random map, the chance level) with the four localisation metrics. Writes
experiments/results/localisation_resnet14.{csv,json} and the explanations as NetCDF beside the run.

    python experiments/localisation.py [--run DIR] [--seed 0] [--epochs 3]
"""
import argparse, json, time
from pathlib import Path

import numpy as np

from dermxai.core import save_json, atomic_path
from dermxai.explain import explain_run, get_method, run_cases, save_explanations
from dermxai.localisation import localisation_scores, localisation_table, truth_masks
from dermxai.models import get_system
from dermxai.train import fit, load_run

ROOT = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--run', default=str(ROOT/'results'/'tmp'/'resnet14-loc'))
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--ig-steps', type=int, default=32)
    ap.add_argument('--n-cases', type=int, default=48, help='test cases with checklist evidence to explain')
    ap.add_argument('--occlusion-stride', type=int, default=8, help='occlusion stride in pixels (window: size / 8)')
    a = ap.parse_args(argv)
    run_dir = Path(a.run)
    t0 = time.perf_counter()
    if not (run_dir/'metrics.json').exists():
        cfg = get_system('resnet14').config('quick', seed=a.seed, epochs=a.epochs)
        fit('resnet14', cfg, run_dir, resume=run_dir.exists(), progress=True)
    t_train = time.perf_counter() - t0
    run = load_run(run_dir, device='cpu')
    src = run.source()
    cases = run_cases(src, 'test', n=a.n_cases, truth='checklist')
    t1 = time.perf_counter()
    methods = ['cam', 'gradcam', get_method('ig', steps=a.ig_steps), get_method('occlusion', stride=a.occlusion_stride), 'saliency']
    attr = explain_run(run, cases=cases, target='MEL', methods=methods, device='cpu', source=src, progress=True)
    t_explain = time.perf_counter() - t1
    save_explanations(attr, run_dir/'explanations.nc')
    truth = truth_masks(src, cases, head='diagnosis', targets=attr.target.values, size=run.cfg.size)
    scores = localisation_scores(attr, truth, seed=a.seed)
    table = localisation_table({'resnet14': scores})
    out = ROOT/'results'
    with atomic_path(out/'localisation_resnet14.csv', suffix='.csv') as tmp: table.to_csv(tmp)
    mel = np.asarray([src.labels.diagnosis[int(i)] == 'MEL' for i in cases])
    save_json(out/'localisation_resnet14.json', {
        'command': 'python experiments/localisation.py', 'seed': a.seed, 'epochs': a.epochs, 'ig_steps': a.ig_steps, 'occlusion_stride': a.occlusion_stride,
        'run': str(run_dir), 'test_metrics': run.metrics['test'] if run.metrics else None,
        'cases': len(cases), 'cases_melanoma': int(mel.sum()), 'mean_truth_fraction': float(truth.mean()),
        'seconds': {'train': t_train, 'explain': t_explain, 'per_method': json.loads(attr.attrs['seconds_per_method'])},
        'table': json.loads(table.reset_index().to_json(orient='records'))})
    print(table.round(3).to_string())
    print(f'test AUC {run.metrics["test"].get("auc") if run.metrics else None}; {len(cases)} cases; '
          f'mean evidence share of the image {truth.mean():.3f}')


if __name__ == '__main__':
    main()
