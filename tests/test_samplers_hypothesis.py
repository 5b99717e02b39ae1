"""Property-based tests of the samplers of `dermxai.datasets`: the class-weighted sampler gives every class the same
total weight; balanced batches are k draws of every label of every task (b = k x labels), k different cases where the label has k; the
per-batch label weights are w_j = max_k n_k / n_j; everything is deterministic for (seed, epoch)."""
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dermxai.core import DataError
from dermxai.datasets import BalancedBatchSampler, ClassWeightedSampler, batch_label_weights

SETTINGS = settings(max_examples=60, deadline=None)
SEEDS = st.integers(-2**40, 2**40)


@SETTINGS
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), SEEDS, st.integers(0, 50), st.integers(1, 200))
def test_class_weighted_sampler(y, seed, epoch, num_samples):
    s = ClassWeightedSampler(y, seed=seed, num_samples=num_samples)
    y = np.asarray(y)
    per_class = {c: float(s.weights[y == c].sum()) for c in np.unique(y)}
    assert np.allclose(list(per_class.values()), 1.0)               # each class carries the same total weight
    s.set_epoch(epoch)
    draw = list(s)
    assert len(draw) == len(s) == num_samples and all(0 <= i < len(y) for i in draw)
    assert list(s) == draw                                           # same (seed, epoch), same draw


def test_class_weighted_sampler_balances_and_varies():
    y = np.array([0] * 95 + [1] * 5)
    s = ClassWeightedSampler(y, seed=1, num_samples=20_000)
    assert abs(y[list(s)].mean() - 0.5) < 0.02
    s.set_epoch(1); a = list(s); s.set_epoch(2); b = list(s)
    assert a != b
    # no aliasing between (seed, epoch) pairs (the old seed * 7919 + epoch made these equal)
    s0, s1 = ClassWeightedSampler(y, seed=0, num_samples=50), ClassWeightedSampler(y, seed=1, num_samples=50)
    s0.set_epoch(7919)
    assert list(s0) != list(s1)
    with pytest.raises(DataError, match='no cases'): ClassWeightedSampler([])


@st.composite
def label_tables(draw):
    n = draw(st.integers(1, 60))
    cols = draw(st.integers(1, 4))
    return pd.DataFrame({f't{c}': draw(st.lists(st.integers(0, draw(st.integers(0, 4))), min_size=n, max_size=n))
                         for c in range(cols)})


@SETTINGS
@given(label_tables(), st.integers(1, 5), SEEDS, st.integers(0, 20))
def test_balanced_batches(labels, k, seed, epoch):
    s = BalancedBatchSampler(labels, k=k, seed=seed)
    n_labels = sum(labels[c].nunique() for c in labels)
    assert s.batch_size == k * n_labels                                 # b = k x labels (24k for the 7-point tasks), no top-up
    s.set_epoch(epoch)
    batches = list(s)
    assert len(batches) == len(s) >= 1
    for b in batches:
        assert len(b) == k * n_labels and all(0 <= i < len(labels) for i in b)
        drawn = labels.iloc[b]
        for c in labels:
            have, avail = drawn[c].value_counts(), labels[c].value_counts()
            for v, n in avail.items():                                 # at least k cases of every label, in every batch
                assert have.get(v, 0) >= k, (c, v, have.get(v, 0), k, n)
                if n >= k:                                             # k *different* cases of it when it has that many
                    assert (labels.iloc[sorted(set(b))][c] == v).sum() >= k
    assert list(s) == batches


def test_balanced_batches_seven_point_sizes():
    "The paper's batch: 24 labels x k = 6 = 144; 21 labels (DIAG melanoma vs rest) x 6 = 126."
    from dermxai.vocab import TASKS
    rng = np.random.default_rng(0)
    full = pd.DataFrame({t: rng.permutation(np.arange(200) % len(c)) for t, c in TASKS.items()})
    assert BalancedBatchSampler(full, k=6).batch_size == 144
    binary = full.assign(DIAG=(full.DIAG == list(TASKS['DIAG']).index('MEL')).astype(int))
    s = BalancedBatchSampler(binary, k=6, num_batches=3)
    assert s.batch_size == 126 and all(len(b) == 126 for b in s)


@SETTINGS
@given(st.lists(st.integers(0, 6), min_size=1, max_size=100), st.integers(7, 10))
def test_batch_label_weights(target, num_classes):
    t = torch.tensor(target)
    w = batch_label_weights(t, num_classes)
    counts = np.bincount(target, minlength=num_classes)
    assert w.shape == (num_classes,)
    for j, n in enumerate(counts):
        if n: assert w[j].item() == pytest.approx(counts.max() / n)
        else: assert w[j].item() == 0
    assert w[counts > 0].min().item() == pytest.approx(1.0)          # the most frequent label weighs 1
    with pytest.raises(DataError): batch_label_weights(torch.tensor(target + [num_classes]), num_classes)
