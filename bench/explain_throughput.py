"""Explanation throughput per method (cases/s) on ResNet-14 (seeded, untrained: the cost does not depend on the
weights), at 64 and 224 px, with the settings `dermxai explain` uses by default (IG 32 steps; occlusion window
size/8, stride size/16; internal batch 64).

    python bench/explain_throughput.py [--device cpu|cuda] [--n64 16] [--n224 4]
"""
import argparse, json, sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from dermxai.core import get_device
from dermxai.explain import Explainer, get_method
from dermxai.models_resnet import ResNetClassifier

METHODS = ['cam', 'gradcam', 'ig', 'occlusion', 'saliency']
PARAMS = {'ig': dict(steps=32, internal_batch_size=64), 'occlusion': dict(internal_batch_size=64)}


def throughput(size, n, device, methods=METHODS):
    torch.manual_seed(0)
    ex = Explainer(ResNetClassifier(14, 2), classes=['rest', 'MEL'], device=device, batch_size=16)
    x = torch.rand(n, 3, size, size)
    ex.explain(x[:2], methods=['cam', 'saliency'])   # warm-up
    out = {}
    for m in methods:
        da = ex.explain(x, methods=[get_method(m, **PARAMS.get(m, {}))], target='MEL')
        s = json.loads(da.attrs['seconds_per_method'])[m]
        out[m] = {'cases_per_s': n / s, 'seconds': s, 'cases': n}
        print(f'{size} px {m:10s} {n / s:8.2f} cases/s', flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default=None); ap.add_argument('--n64', type=int, default=16); ap.add_argument('--n224', type=int, default=4)
    a = ap.parse_args()
    dev = get_device(a.device)
    save('explain_throughput', {'device': str(dev), 'model': 'resnet14', 'ig_steps': 32, 'internal_batch_size': 64,
                                '64px': throughput(64, a.n64, dev), '224px': throughput(224, a.n224, dev)})


if __name__ == '__main__':
    main()
