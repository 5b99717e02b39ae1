"""Liao & Luo's recipe in the lesion + location system, without training: the optimiser's groups and schedule, the
crops, the five folds, strict weight loading through the system, retrieval as the paper scores it, and paper_table's
published Table 1 printed by a one-liner."""
import subprocess, sys

import numpy as np
import pytest
import torch
import torchvision

from dermxai.core import DataError
from dermxai.models import get_system
from dermxai.models_location import PAPER_TABLE1, cv_splits, retrieval_precision, retrieve
from dermxai.sources import SynthSource


@pytest.fixture(scope='module')
def prepared():
    src = SynthSource.generate(n=60, size=32, seed=0, progress=False)
    s = get_system('location')
    return s, s.prepare(s.config(n=60, size=32, options={'backbone': 'resnet18'}), src), src


def test_optimizer_is_the_papers(prepared):
    s, cfg, _ = prepared
    model = s.build_model(cfg)
    opt = s.optimizer(cfg, model)
    assert (cfg.batch_size, cfg.lr, type(opt).__name__) == (20, 0.001, 'SGD')
    lrs = {g['name']: g['lr'] for g in opt.param_groups}
    assert lrs == {'trunk': 0.001, 'head weights': pytest.approx(0.01), 'head biases': pytest.approx(0.02)}
    sched = s.scheduler(cfg, opt)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and sched.factor == pytest.approx(0.1)


def test_crops_and_folds(prepared):
    s, cfg, src = prepared
    assert s.dataset(cfg, src, 'train')[0]['image'].shape == (3, 32, 32)
    assert s.eval_dataset(cfg, src, 'test')[0]['image'].shape == (10, 3, 32, 32)     # 10-crop testing
    folds = np.stack([cv_splits(60, k) for k in range(5)])
    assert ((folds == 'test').sum(0) == 1).all() and ((folds == 'test').sum(1) == 12).all()
    cf = s.prepare(s.config(n=60, size=32, options={'backbone': 'resnet18', 'fold': 3}), src)
    assert sorted(s.dataset(cf, src, 'test').indices) == list(np.flatnonzero(folds[3] == 'test'))


def test_mismatched_weights_refused_by_build_model(prepared, tmp_path):
    s, cfg, _ = prepared
    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save({f'encoder.{k}': v for k, v in sd.items()}, tmp_path/'bad.pth')
    with pytest.raises(DataError, match=r"bad\.pth.*unexpected \(e\.g\. \['encoder\.conv1\.weight'"):
        s.build_model(cfg.replace(options={**cfg.options, 'weights': str(tmp_path/'bad.pth')}))
    torch.save({f'module.{k}': v for k, v in sd.items()}, tmp_path/'ddp.pth')      # a DataParallel prefix: stripped
    m = s.build_model(cfg.replace(options={**cfg.options, 'weights': str(tmp_path/'ddp.pth')}))
    assert torch.equal(m.trunk.conv1.weight, sd['conv1.weight'])


def test_retrieval_is_euclidean_and_a_hit_shares_a_label():
    gallery = np.array([[0., 0.], [3., 0.], [0., 1.], [10., 10.]])
    nb = retrieve(np.array([[1., 0.]]), gallery, k=2)
    assert nb.neighbour.values.tolist() == [[0, 2]]                                    # distances 1 and sqrt(2)
    labels = {0: np.array([1, 0, 1]), 1: np.array([0, 0, 1]), 2: np.array([0, 1, 1])}
    nb = retrieve(np.array([[3., 0.]]), gallery, k=2, query_index=[1])                 # query = case 1: itself, case 0
    assert retrieval_precision(nb, labels) == 1.0 and retrieval_precision(nb, labels, match='exact') == 0.5


def test_paper_table_one_liner_prints_both_labels(tmp_path):
    assert PAPER_TABLE1.loc['mAP-image', 'Ensemble'] == 0.798 and PAPER_TABLE1.shape == (27, 4)
    cmd = ('from dermxai.models_location import PAPER_TABLE1, PAPER_WHERE; from dermxai.systems import side_by_side, '
           "with_published; import pandas as pd; t = pd.DataFrame({'MTL': [0.5]}, index=['mAP-class']); "
           "print(side_by_side(with_published(t, PAPER_TABLE1, PAPER_WHERE, 'dermxai (SynthDerm)')).to_string())")
    out = subprocess.run([sys.executable, '-c', cmd], capture_output=True, text=True, check=True).stdout
    assert 'published (real data: DermQuest' in out and 'dermxai (SynthDerm)' in out and '0.761' in out
