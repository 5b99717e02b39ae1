"""Our four localisation metrics agree with Quantus 0.6's reference implementations on tie-free maps.

Quantus scores precomputed attributions without a model: `metric(model=None, x_batch, y_batch, a_batch, s_batch)`
with x (N, 1, H, W), a (N, 1, H, W), s (N, 1, H, W). `normalise=False, abs=False` keep the maps as given (Quantus
normalises by default, which changes neither the ranking nor the mass share of non-negative maps, but we test the
plain call). Quantus's input checks (`asserts.assert_attributions`) look at the whole batch: a batch whose maps are
all zero, all one or all one value is refused with an AssertionError, but a constant map inside a mixed batch is scored.
"""
import numpy as np
import pytest

import quantus  # noqa: E402  (a test dependency: `make install` puts quantus 0.6 into .venv)

from dermxai.localisation import (pointing_game, relevance_mass_accuracy, relevance_rank_accuracy,  # noqa: E402
                                  top_k_intersection)

N, H, W, K = 64, 32, 32, 20
QUANTUS_KW = dict(disable_warnings=True, normalise=False, abs=False, return_aggregate=False)


def masks(rng, n, h=H, w=W) -> np.ndarray:
    "`n` random non-empty rectangles (n, h, w), from one pixel to the whole image."
    s = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
        s[i, y0:y1, x0:x1] = True
    return s


def run_quantus(metric, a: np.ndarray, s: np.ndarray) -> np.ndarray:
    "Quantus's per-case scores of maps `a` (n, h, w) against masks `s` (n, h, w), with no model."
    n = len(a)
    x, y = np.zeros((n, 1, *a.shape[1:]), np.float32), np.zeros(n, int)
    out = metric(model=None, x_batch=x, y_batch=y, a_batch=a[:, None].astype(np.float64), s_batch=s[:, None])
    return np.asarray(out, dtype=float)   # PointingGame returns numpy bools


@pytest.fixture(scope='module')
def data():
    rng = np.random.default_rng(0)
    a = rng.random((N, H, W))             # continuous: no ties, so the top-k and the maximum are unique
    assert all(len(np.unique(m)) == m.size for m in a)
    return a, masks(rng, N)


@pytest.mark.parametrize('ours, theirs', [
    (pointing_game, quantus.PointingGame(**QUANTUS_KW)),
    (relevance_mass_accuracy, quantus.RelevanceMassAccuracy(**QUANTUS_KW)),
    (relevance_rank_accuracy, quantus.RelevanceRankAccuracy(**QUANTUS_KW)),
    (lambda a, s: top_k_intersection(a, s, k=K), quantus.TopKIntersection(k=K, **QUANTUS_KW)),
], ids=['pointing_game', 'relevance_mass_accuracy', 'relevance_rank_accuracy', 'top_k_intersection'])
def test_agrees_with_quantus(data, ours, theirs):
    a, s = data
    expected = run_quantus(theirs, a, s)
    got = np.array([ours(ai, si) for ai, si in zip(a, s)])
    assert expected.shape == got.shape == (N,)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len(np.unique(expected)) > 1      # the cases differ (hits and misses): a real comparison


def test_constant_map_pointing_game():
    """A constant map points nowhere. Quantus's PointingGame takes every pixel equal to the maximum as a maximum, so it
    counts a hit whenever the mask is non-empty; ours scores it NaN (no maximum to point with). Quantus refuses a batch
    of constant maps only, so the constant map goes in with a random one."""
    rng = np.random.default_rng(1)
    s = masks(rng, 2, 8, 8)
    a = np.stack([np.zeros((8, 8)), rng.random((8, 8))])
    q = run_quantus(quantus.PointingGame(**QUANTUS_KW), a, s)
    assert q[0] == 1.0                                   # Quantus: a hit
    with pytest.raises(AssertionError, match='all equal to zero'):
        run_quantus(quantus.PointingGame(**QUANTUS_KW), a[:1], s[:1])   # a batch of constant maps alone is refused


def test_constant_map_pointing_game_ours_nan():
    "Ours: a constant map has no maximum to point with, so its pointing game is NaN (Quantus says hit, above)."
    s = np.zeros((8, 8), bool); s[2:5, 3:6] = True
    assert np.isnan(pointing_game(np.zeros((8, 8)), s))
