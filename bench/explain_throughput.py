"""Explanation cost per method on ResNet-14 (seeded, untrained: the cost does not depend on the weights), at 64 and
224 px, as a ratio to one bare forward + backward pass of the same model on the same batch, with the settings
`dermxai explain` uses by default (IG 32 steps; occlusion window size/8, stride window/2; internal batch 64).

Every figure is the minimum over repeats of the wall-clock time of one `Explainer.explain` call on the whole batch
(one batch: n <= batch_size), after a warm-up (a first explain call per explainer and size fills the receptive-field
geometry cache, measured once per process, and is not counted). The quick set (CAM, Grad-CAM, Saliency in one call)
shares one forward + backward pass; its ratio is the overhead of the explainer over that pass. The quick set is also
timed with `upsample='bilinear'`, to show what drawing layer maps at their cells' receptive-field centres costs.

    OMP_NUM_THREADS=2 python bench/explain_throughput.py [--device cpu|cuda] [--n64 16] [--n224 4] [--repeats 3]
"""
import argparse, json, os, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from dermxai.core import get_device
from dermxai.explain import Explainer, get_method
from dermxai.models import get_system
from dermxai.models_resnet import ResNetClassifier

METHODS = ['cam', 'gradcam', 'saliency', 'ig', 'occlusion']
QUICK = ['cam', 'gradcam', 'saliency']
QUICK_LABEL = 'quick (cam+gradcam+saliency)'
SLOW = ['ig', 'occlusion']
PARAMS = {'ig': dict(steps=32, internal_batch_size=64), 'occlusion': dict(internal_batch_size=64)}
BARE_REPEATS = 10            # the reference pass is cheap: more repeats for a steadier minimum
BARE_REPEATS_ADJACENT = 3    # the reference timed again right before and right after each figure


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def bare_pass(model, x, dev, repeats) -> float:
    "Minimum seconds of one forward + backward pass of batch `x` (d score of class 1 / d input), model in eval mode."
    times = []
    for _ in range(2 + repeats):                              # 2 warm-up passes, not counted
        sync(dev); t0 = time.perf_counter()
        xi = x.detach().clone().requires_grad_()
        y = model(xi)[:, 1].sum()
        torch.autograd.grad(y, xi)
        sync(dev); times.append(time.perf_counter() - t0)
    return min(times[2:])


def time_explain(ex, x, methods, repeats, dev) -> dict:
    "Minimum wall seconds of one explain call over `repeats`, and the minimum of the methods' own summed seconds."
    walls, own = [], []
    for _ in range(repeats):
        sync(dev); t0 = time.perf_counter()
        da = ex.explain(x, methods=methods, target='MEL')
        sync(dev); walls.append(time.perf_counter() - t0)
        own.append(sum(json.loads(da.attrs['seconds_per_method']).values()))
    return {'seconds': min(walls), 'method_seconds': min(own), 'repeats': repeats, 'all_seconds': [round(w, 4) for w in walls]}


def run_size(size, n, dev, repeats, slow_repeats) -> dict:
    torch.manual_seed(0)
    model = ResNetClassifier(14, 2)
    system = get_system('resnet14')
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))
    exs = {up: Explainer(model, system=system, classes=['rest', 'MEL'], device=dev, batch_size=max(16, n), upsample=up)
           for up in ('aligned', 'bilinear')}
    xd = x.to(dev)
    for ex in exs.values():                                   # warm-up: fills the geometry cache, not counted
        ex.explain(x[:2], methods=QUICK, target='MEL')
    exs['aligned'].explain(x[:1], methods=[get_method(m, **PARAMS[m]) for m in SLOW], target='MEL')
    model = exs['aligned'].model
    bare = bare_pass(model, xd, dev, BARE_REPEATS)
    print(f'{size} px: bare forward+backward of {n} cases {bare * 1e3:.1f} ms', flush=True)

    def figure(ex, ms, r):
        "One figure, its reference pass timed right before and right after it (robust to load that comes and goes)."
        before = bare_pass(model, xd, dev, BARE_REPEATS_ADJACENT)
        load = round(os.getloadavg()[0], 2)
        t = time_explain(ex, x, ms, r, dev)
        ref = min(before, bare_pass(model, xd, dev, BARE_REPEATS_ADJACENT))
        return {**t, 'bare_forward_backward_s': ref, 'ratio_to_fwd_bwd': t['seconds'] / ref,
                'method_seconds_ratio': t['method_seconds'] / ref, 'cases_per_s': n / t['seconds'], 'load_1min': load}

    out = {'load_average_at_start': [round(v, 2) for v in os.getloadavg()], 'cases': n,
           'bare_forward_backward_s': bare, 'aligned': {}, 'bilinear': {}}
    for m in METHODS + [QUICK_LABEL]:
        ms = QUICK if m == QUICK_LABEL else [get_method(m, **PARAMS.get(m, {}))]
        out['aligned'][m] = e = figure(exs['aligned'], ms, slow_repeats if m in SLOW else repeats)
        print(f'{size} px {m:30s} x{e["ratio_to_fwd_bwd"]:7.2f}  {e["seconds"]:8.3f} s  {e["cases_per_s"]:8.2f} cases/s'
              f'  (load {e["load_1min"]})', flush=True)
    out['bilinear'][QUICK_LABEL] = e = figure(exs['bilinear'], QUICK, repeats)
    print(f'{size} px {QUICK_LABEL + " bilinear":30s} x{e["ratio_to_fwd_bwd"]:7.2f}  {e["seconds"]:8.3f} s', flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default=None)
    ap.add_argument('--n64', type=int, default=16); ap.add_argument('--n224', type=int, default=4)
    ap.add_argument('--repeats', type=int, default=3, help='repeats per figure (the minimum is kept)')
    ap.add_argument('--slow-repeats-224', type=int, default=1, help='repeats of IG and occlusion at 224 px (slow on a CPU)')
    a = ap.parse_args()
    dev = get_device(a.device)
    load_before, t0 = [round(v, 2) for v in os.getloadavg()], time.perf_counter()
    res = {'64px': run_size(64, a.n64, dev, a.repeats, a.repeats),
           '224px': run_size(224, a.n224, dev, a.repeats, a.slow_repeats_224)}
    load_after = [round(v, 2) for v in os.getloadavg()]
    summary = {f'{k} {up}': {m: round(e['ratio_to_fwd_bwd'], 2) for m, e in v[up].items()}
               for k, v in res.items() for up in ('aligned', 'bilinear')}
    save('explain_throughput', {
        'device': str(dev), 'model': 'ResNetClassifier(14, 2), seeded, untrained', 'system': 'resnet14', 'target': 'MEL',
        'settings': {'ig': PARAMS['ig'], 'occlusion': {**PARAMS['occlusion'], 'window': 'size/8', 'stride': 'window/2'},
                     'batch_size': 'all cases in one batch', 'repeats': a.repeats,
                     'repeats_ig_occlusion_224px': a.slow_repeats_224,
                     'note_repeats': f'IG and occlusion at 224 px are timed {a.slow_repeats_224}x only (slow on a CPU); '
                                     f'every other figure is the minimum of {a.repeats}',
                     'bare_pass': 'x.requires_grad_(); y = model(x)[:, 1].sum(); torch.autograd.grad(y, x); model.eval(); '
                                  f'each figure divides by the minimum of {BARE_REPEATS_ADJACENT} passes timed right before '
                                  f'and {BARE_REPEATS_ADJACENT} right after it (2 warm-up passes each, not counted); '
                                  f'per size, bare_forward_backward_s is the minimum of {BARE_REPEATS} at the start',
                     'timing': 'wall seconds of one explain call (incl. upsampling and the DataArray), minimum over repeats; '
                               "method_seconds: the methods' own seconds_per_method summed",
                     'warm_up': 'one quick explain call per explainer and size (fills the receptive-field geometry '
                                'cache), one IG + occlusion call on one case; not counted'},
        'torch_threads': torch.get_num_threads(), 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'),
        'load_average_before': load_before, 'load_average_after': load_after,
        'contended': max(load_before[0], load_after[0], *(v['load_average_at_start'][0] for v in res.values()))
                     > torch.get_num_threads() + 0.5,   # other work on the cores: the slow figures are inflated
        'total_seconds': round(time.perf_counter() - t0, 1),
        'ratio_to_fwd_bwd': summary, **res})


if __name__ == '__main__':
    main()
