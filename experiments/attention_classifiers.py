"""ARL-CNN14 vs ResNet-14, and AttnMel-CNN (with and without lesion-ROI regularisation) vs VGG-16-GAP, on SynthDerm
(`--runs` adds the other baselines of the thesis, VGG-16 with its dense layers and Mel-CNN).

Every system trains with its paper's recipe (the `quick` profile: the papers' sampling, patches, crops, augmentation
and model selection, a smaller budget) on the same SynthDerm set, with the same training seeds and, within a family,
the same budget (epochs, batch size; ARL-CNN and ResNet see `--patches-per-image` patches of every image per epoch).
Reported on the test split: AUC, AP, balanced accuracy, sensitivity and specificity of melanoma vs rest (mean and
sample standard deviation over the seeds, and paired differences seed by seed), ARL-CNN's scale gates per block and
epoch, and the Jaccard index of binarised attention maps and CAMs with the lesion mask (the AttnMel thesis's Table 3.3
measure; maps min-max normalised per image and thresholded at 0.5, CAM of the predicted class), on the image each
family evaluates (ResNet / ARL-CNN: the whole image; the AttnMel family: its 0.8 centre crop).

    python experiments/attention_classifiers.py                    # the reported run (writes results/attention_classifiers.json)

Sized for a 2-core CPU shared with other jobs (one torch thread; about 40 minutes when four jobs share the cores):
240 SynthDerm cases at 48 px, batch 16, 3 epochs for every network, 4 patches per image per epoch for the ResNet
family, seeds 0 1 2. That is a tiny budget: it shows whether the methods work and how they compare at the start of
training, not the papers' converged numbers.
    python experiments/attention_classifiers.py --seeds 0 --epochs-resnet 1 --epochs-vgg 1 --n 120 --name smoke

Finished runs in --work are reused, so an interrupted experiment continues where it stopped.
"""
import argparse, json, os, platform, sys, time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dermxai.core import DermxaiError, save_json
from dermxai.datasets import ClassificationDataset, eval_transforms
from dermxai.models import get_system
from dermxai.sources import SynthSource
from dermxai.systems import model_cam
from dermxai.models_attnmel import attention_jaccard, attnmel_transforms
from dermxai.synth import save_synth
from dermxai.train import fit, load_run

RESULTS = ROOT/'experiments'/'results'
RUNS = {  # run name -> (system, options, family)
    'resnet14': ('resnet14', {}, 'resnet'),
    'arl14': ('arl14', {}, 'resnet'),
    'vgg16': ('vgg16', {}, 'vgg'),
    'vgg16gap': ('vgg16gap', {}, 'vgg'),
    'melcnn': ('melcnn', {}, 'vgg'),
    'attnmel': ('attnmel', {}, 'vgg'),
    'attnmel_lesion': ('attnmel', {'roi': 'lesion'}, 'vgg'),
    'attnmel_lesion_x100': ('attnmel', {'roi': 'lesion', 'lambda3': 0.1, 'lambda4': 1.0}, 'vgg'),  # can the term move A at all?
}
DEFAULT_RUNS = ['resnet14', 'arl14', 'vgg16gap', 'attnmel', 'attnmel_lesion']   # + vgg16 melcnn: the other baselines (--runs)


def _maps(run, images):
    "Native attention maps and the CAM of the predicted class, (N, H, W) each, for a batch of test images."
    model = run.model.eval()
    with torch.no_grad():
        out = run.system.head_logits(model(images), 'diagnosis')
        pred = out.argmax(1)
        try: maps = {'cam': model_cam(model, images)[torch.arange(len(images)), pred]}
        except DermxaiError: maps = {}      # VGG-16's dense layers leave no CAM
        maps.update(run.system.native_maps(model, images))
    return {k: v.float().cpu() for k, v in maps.items()}


def view(family, size):
    "The image a family evaluates: ResNet / ARL-CNN the whole image (their 9 patches are scored, not mapped), AttnMel its 0.8 centre crop."
    return eval_transforms(size) if family == 'resnet' else attnmel_transforms(size, train=False)


def localisation(run_dir, source, size, family, batch=32):
    "Mean per-image Jaccard of every binarised map with the lesion mask on the test split."
    run = load_run(run_dir, device='cpu')
    ds = ClassificationDataset(source, 'test', task='mel', roi='lesion', size=size, transform=view(family, size))
    per_map = {}
    for i in range(0, len(ds), batch):
        items = [ds[k] for k in range(i, min(i + batch, len(ds)))]
        images = torch.stack([it['image'] for it in items])
        masks = torch.stack([it['roi'][0] > 0.5 for it in items])
        for name, m in _maps(run, images).items():
            per_map.setdefault(name, []).append(attention_jaccard(m, masks))
    return {k: float(np.nanmean(np.concatenate(v))) for k, v in per_map.items()}


def center_prior(source, size, family='resnet'):
    "Jaccard of a map that only says 'the middle of the image' (lesions are roughly centred): the bar to clear."
    ds = ClassificationDataset(source, 'test', task='mel', roi='lesion', size=size, transform=view(family, size))
    yy, xx = torch.meshgrid(torch.arange(size) - (size - 1) / 2, torch.arange(size) - (size - 1) / 2, indexing='ij')
    prior = -(yy ** 2 + xx ** 2).float()
    masks = torch.stack([ds[k]['roi'][0] > 0.5 for k in range(len(ds))])
    return float(np.nanmean(attention_jaccard(prior.expand(len(ds), size, size), masks)))


def _stats(values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    return {'mean': float(v.mean()) if len(v) else None, 'sd': float(v.std(ddof=1)) if len(v) > 1 else None,
            'n': int(len(v)), 'values': [float(x) for x in values]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--n', type=int, default=240); ap.add_argument('--size', type=int, default=48)
    ap.add_argument('--data-seed', type=int, default=0)
    ap.add_argument('--epochs-resnet', type=int, default=3); ap.add_argument('--epochs-vgg', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--patches-per-image', type=int, default=4, help='ResNet / ARL-CNN training patches per image per epoch (the paper: 60)')
    ap.add_argument('--runs', nargs='+', default=DEFAULT_RUNS, choices=list(RUNS))
    ap.add_argument('--work', default=str(ROOT/'experiments'/'work'/'attention_classifiers'))
    ap.add_argument('--name', default='attention_classifiers')
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get('DERMXAI_THREADS', 1)))
    work = Path(a.work)/f'n{a.n}-s{a.size}-d{a.data_seed}'
    t0 = time.perf_counter()

    # one SynthDerm set for every run: training seeds change initialisation and sampling order only
    data = work/'synthderm.nc'
    if not data.exists():
        src = SynthSource.generate(n=a.n, size=a.size, seed=a.data_seed, progress=False)
        save_synth(src.ds, data)
    source = SynthSource.load(data)
    epochs = {'resnet': a.epochs_resnet, 'vgg': a.epochs_vgg}

    runs, selection = {}, {}
    for seed in a.seeds:
        for name in a.runs:
            sys_name, opts, family = RUNS[name]
            system = get_system(sys_name)
            o = {**opts, 'patches_per_image': a.patches_per_image} if family == 'resnet' else dict(opts)
            cfg = system.config('quick', data=str(data), n=len(source), size=a.size, seed=seed, epochs=epochs[family],
                                batch_size=a.batch_size, options=o)
            selection[family] = system.monitor(cfg)
            run_dir = work/f'{name}-e{epochs[family]}-seed{seed}'
            t = time.perf_counter()
            res = fit(system, cfg, run_dir, resume=run_dir.exists(), progress=False, source=source)
            rec = {'system': sys_name, 'options': opts, 'seed': seed, 'epochs': epochs[family], 'test': res['test'],
                   'best_epoch': res['best_epoch'], 'train_time_s': res['train_time_s'],
                   'jaccard': localisation(run_dir, source, a.size, family)}
            if sys_name.startswith('arl'):
                hist = load_run(run_dir).history
                rec['scale_gate'] = {b: hist.scale_gate.sel(block=b).values.tolist() for b in hist.block.values.tolist()}
            runs[f'{name}/seed{seed}'] = rec
            print(f"{name} seed {seed}: auc {res['test'].get('auc', float('nan')):.3f}, jaccard "
                  f"{ {k: round(v, 3) for k, v in rec['jaccard'].items()} } ({time.perf_counter() - t:.0f} s)", flush=True)

    summary = {}
    for name in a.runs:
        recs = [runs[f'{name}/seed{s}'] for s in a.seeds]
        summary[name] = {m: _stats([r['test'].get(m) for r in recs]) for m in ('auc', 'ap', 'balanced_accuracy', 'accuracy',
                                                                              'sensitivity', 'specificity')}
        summary[name]['jaccard'] = {k: _stats([r['jaccard'][k] for r in recs]) for k in recs[0]['jaccard']}
        summary[name]['train_time_s'] = _stats([r['train_time_s'] for r in recs])
        if 'scale_gate' in recs[0]:
            summary[name]['scale_gate_mean'] = {b: np.mean([r['scale_gate'][b] for r in recs], 0).tolist() for b in recs[0]['scale_gate']}
    paired = {}
    for model, base in [('arl14', 'resnet14'), ('vgg16gap', 'vgg16'), ('melcnn', 'vgg16gap'), ('attnmel', 'melcnn'),
                        ('attnmel', 'vgg16gap'), ('attnmel_lesion', 'vgg16gap'), ('attnmel_lesion', 'attnmel'),
                        ('attnmel_lesion_x100', 'attnmel')]:
        if model in a.runs and base in a.runs:
            paired[f'{model} - {base}'] = _stats([runs[f'{model}/seed{s}']['test'].get('auc', np.nan) -
                                                  runs[f'{base}/seed{s}']['test'].get('auc', np.nan) for s in a.seeds])
    out = {'experiment': a.name, 'when': time.strftime('%Y-%m-%d %H:%M:%S'),
           'command': 'python experiments/attention_classifiers.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
           'machine': {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
                       'python': platform.python_version(), 'shared': 'yes: other jobs ran on the same cores'},
           'data': {'source': 'SynthDerm', 'n': len(source), 'size': a.size, 'data_seed': a.data_seed,
                    'cases': {s: int(len(source.split_indices(s))) for s in ('train', 'valid', 'test')},
                    'test_melanomas': int((source.labels.diagnosis.values[source.split_indices('test')] == 'MEL').sum())},
           'protocol': {'task': 'mel', 'seeds': a.seeds, 'epochs': epochs, 'batch_size': a.batch_size, 'profile': 'quick',
                        'patches_per_image': a.patches_per_image,
                        'selection': {f: f'best epoch by {m} ({mode})' for f, (m, mode) in selection.items()},
                        'jaccard': 'per-image Jaccard with the lesion mask of maps min-max normalised per image and '
                        'thresholded at 0.5 (CAM: predicted class), mean over the test split'},
           'center_prior_jaccard': center_prior(source, a.size),
           'center_prior_jaccard_attnmel': center_prior(source, a.size, 'vgg'),
           'summary': summary, 'paired_auc_difference': paired, 'runs': runs,
           'wall_time_s': time.perf_counter() - t0}
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS/f'{a.name}.json', out)
    print(json.dumps({k: {m: v[m]['mean'] for m in ('auc', 'ap')} for k, v in summary.items()}, indent=1))
    print(f'-> {RESULTS/(a.name + ".json")}')


if __name__ == '__main__':
    main()
