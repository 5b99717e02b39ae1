"Property-based checks of SynthDerm: determinism, the prefix property, and labels always in the Derm7pt vocabulary."
from hypothesis import given, settings, strategies as st

from dermxai.synth import MASKS, SynthConfig, render_case, sample_labels, synthderm
from dermxai.vocab import CRITERIA, DERM7PT_DIAGNOSES, DERM7PT_LOCATIONS, DIAGNOSES


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), case=st.integers(0, 10_000), size=st.sampled_from([32, 48, 64, 96, 128]))
def test_same_seed_same_bits(seed, case, size):
    cfg = SynthConfig(seed=seed, size=size)
    a, ma, la = render_case(cfg, case)
    b, mb, lb = render_case(cfg, case)
    assert (a == b).all() and (ma == mb).all() and la == lb
    assert a.shape == (size, size, 3) and ma.shape == (len(MASKS), size, size)
    assert ma[0].any(), 'every case has a lesion'


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), case=st.integers(0, 10**6))
def test_labels_are_in_the_vocabulary(seed, case):
    lab = sample_labels(SynthConfig(seed=seed), case)
    assert lab['diagnosis'] in DIAGNOSES and lab['diagnosis_raw'] in DERM7PT_DIAGNOSES
    assert lab['location'] in DERM7PT_LOCATIONS
    assert all(lab[c] in vals for c, vals in CRITERIA.items())


def test_other_seed_other_images():
    a = synthderm(n=6, size=48, seed=1, progress=False).image.values
    b = synthderm(n=6, size=48, seed=2, progress=False).image.values
    assert (a != b).any(axis=(1, 2, 3)).all()


def test_parallel_rendering_gives_the_same_bits():
    a = synthderm(n=130, size=32, seed=5, progress=False, n_jobs=1)
    b = synthderm(n=130, size=32, seed=5, progress=False, n_jobs=2)
    assert (a.image.values == b.image.values).all() and (a.masks.values == b.masks.values).all()
