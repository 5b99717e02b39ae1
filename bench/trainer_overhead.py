"""The Trainer's throughput as a ratio to a bare PyTorch loop on the same model, data and loader (target: >= 0.95).

Both train ResNet-14 on the same SynthDerm DataLoader for the same number of steps, alternating three times so that
machine noise hits both alike; the median images/s of each is compared.

    python bench/trainer_overhead.py
"""
import statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _common import save
from dermxai.core import get_device
from dermxai.datasets import ClassificationDataset
from dermxai.models_resnet import ResNetClassifier
from dermxai.sources import SynthSource
from dermxai.trainer import Trainer

SIZE, BATCH, STEPS = 64, 32, 24


def loader(ds):
    g = torch.Generator().manual_seed(0)
    return DataLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True, generator=g, num_workers=0)


def bare(ds, device):
    torch.manual_seed(0)
    model = ResNetClassifier(14, 2).to(device); model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n, t = 0, time.perf_counter()
    it = iter(loader(ds))
    for _ in range(STEPS):
        try: b = next(it)
        except StopIteration: it = iter(loader(ds)); b = next(it)
        x, y = b['image'].to(device), b['target'].to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        n += len(x)
    if device.type == 'cuda': torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def trainer(ds, device):
    torch.manual_seed(0)
    model = ResNetClassifier(14, 2)
    t = Trainer(model, loader(ds), None, loss_fn=lambda o, b: F.cross_entropy(o, b['target']),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), device=device,
                steps_per_epoch=STEPS, progress=False)
    rec = t.train_epoch(0)
    return rec['images_per_s']


if __name__ == '__main__':
    device = get_device()
    src = SynthSource.generate(n=600, size=SIZE, seed=0, progress=False)
    ds = ClassificationDataset(src, 'train', task='mel', size=SIZE)
    bare(ds, device); trainer(ds, device)                      # warm-up
    b, tr = [], []
    for _ in range(3): b.append(bare(ds, device)); tr.append(trainer(ds, device))
    ratio = statistics.median(tr) / statistics.median(b)
    save('trainer_overhead', {'device': str(device), 'model': 'resnet14', 'size': SIZE, 'batch': BATCH, 'steps': STEPS,
                              'bare_images_per_s': [round(v, 1) for v in b], 'trainer_images_per_s': [round(v, 1) for v in tr],
                              'ratio': round(ratio, 3), 'target': 'ratio >= 0.95', 'met': ratio >= 0.95})
