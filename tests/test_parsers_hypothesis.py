"""Property-based tests of the CSV / metadata parsers of the formats (`dermxai.formats_*`): random valid rows parse to exactly their
values; a random invalid value in a random field raises a DataError that names that field, row and value; random
files never raise anything but a DataError. Also the 7-point score rule against an independent implementation."""
import io, json, math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from dermxai.core import DataError
from dermxai.formats_derm7pt import DERM7PT_COLUMNS, derm7pt_splits, parse_derm7pt_meta, parse_index_file
from dermxai.formats_ham10000 import HAM10000_COLUMNS, parse_ham10000_metadata, parse_isic2018_task3
from dermxai.formats_isic import ISIC2017_ATTRIBUTES, ISIC2017_DIAGNOSES, parse_isic2017_features, parse_isic2017_part3
from dermxai.vocab import (CRITERIA, DERM7PT_DIAGNOSES, DERM7PT_LOCATIONS, DERM7PT_OTHER, HAM10000_DX, HAM10000_DX_TYPE,
                           HAM10000_LOCALIZATION, HAM10000_SEX, ISIC2018_TASK3_CLASSES, seven_point_score)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- an independent statement of the 7-point checklist (Argenziano et al. 1998), for checking vocab.seven_point_score
MAJOR = {'pigment_network': {'atypical'}, 'blue_whitish_veil': {'present'}, 'vascular_structures': {'dotted', 'linear irregular'}}
MINOR = {'pigmentation': {'diffuse irregular', 'localized irregular'}, 'streaks': {'irregular'},
         'dots_and_globules': {'irregular'}, 'regression_structures': {'blue areas', 'white areas', 'combinations'}}

def checklist(row):
    return 2 * sum(row[c] in v for c, v in MAJOR.items()) + sum(row[c] in v for c, v in MINOR.items())

# values a CSV writer and reader carry unchanged: no surrounding white space, no NUL / CR
TEXT = st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00\r'), max_size=24)
SAFE = st.text(st.characters(whitelist_categories=('Lu', 'Ll', 'Nd'), max_codepoint=0x24F), min_size=1, max_size=12)

def to_csv(df) -> io.StringIO:
    return io.StringIO(df.to_csv(index=False))

@st.composite
def derm7pt_rows(draw, n=st.integers(1, 8)):
    k = draw(n)
    rows = []
    for i in range(k):
        r = {'case_num': str(i + 1), 'diagnosis': draw(st.sampled_from(DERM7PT_DIAGNOSES)),
             **{c: draw(st.sampled_from(v)) for c, v in CRITERIA.items()},
             **{c: draw(st.sampled_from(v)) for c, v in DERM7PT_OTHER.items()},
             'location': draw(st.sampled_from(DERM7PT_LOCATIONS)),
             'clinic': draw(SAFE) + '/' + draw(SAFE) + draw(st.sampled_from(['.jpg', '.JPG'])),
             'derm': draw(SAFE) + '/' + draw(SAFE) + '.jpg', 'case_id': draw(st.one_of(st.just(''), SAFE)), 'notes': ''}
        r['seven_point_score'] = str(checklist(r))
        rows.append(r)
    return pd.DataFrame(rows, columns=DERM7PT_COLUMNS)


# --- the 7-point score ---------------------------------------------------------------------------------------------------
@SETTINGS
@given(derm7pt_rows(st.integers(1, 20)))
def test_seven_point_rule_equals_the_checklist(df):
    assert seven_point_score(df).tolist() == [checklist(r) for r in df.to_dict('records')]


def test_seven_point_score_on_hand_made_rows():
    absent = {c: 'absent' for c in CRITERIA}
    cases = [({}, 0), ({'pigment_network': 'typical', 'streaks': 'regular', 'pigmentation': 'diffuse regular'}, 0),
             ({'pigment_network': 'atypical'}, 2), ({'blue_whitish_veil': 'present'}, 2), ({'vascular_structures': 'dotted'}, 2),
             ({'vascular_structures': 'arborizing'}, 0), ({'vascular_structures': 'linear irregular'}, 2),
             ({'pigmentation': 'localized irregular'}, 1), ({'regression_structures': 'white areas'}, 1),
             ({'streaks': 'irregular', 'dots_and_globules': 'irregular'}, 2),
             ({'pigment_network': 'atypical', 'blue_whitish_veil': 'present', 'vascular_structures': 'linear irregular',
               'pigmentation': 'diffuse irregular', 'streaks': 'irregular', 'dots_and_globules': 'irregular',
               'regression_structures': 'combinations'}, 10)]
    df = pd.DataFrame([{**absent, **c} for c, _ in cases])
    assert seven_point_score(df).tolist() == [s for _, s in cases]
    grouped = {'PN': 'ATP', 'BWV': 'ABS', 'VS': 'IR', 'PIG': 'REG', 'STR': 'IR', 'DaG': 'ABS', 'RS': 'PRS'}
    assert int(seven_point_score(grouped)) == 2 + 2 + 1 + 1


# --- Derm7pt meta.csv -------------------------------------------------------------------------------------------------
@SETTINGS
@given(derm7pt_rows())
def test_valid_derm7pt_rows_parse(df):
    meta, problems = parse_derm7pt_meta(to_csv(df))
    assert problems == {} and len(meta) == len(df)
    assert meta.seven_point_score.tolist() == df.seven_point_score.astype(int).tolist()
    for c in ['diagnosis', *CRITERIA, 'location', 'derm', 'clinic', *DERM7PT_OTHER]: assert meta[c].tolist() == df[c].tolist(), c


VOCAB = {'diagnosis': DERM7PT_DIAGNOSES, **CRITERIA, 'location': DERM7PT_LOCATIONS, **DERM7PT_OTHER}

@SETTINGS
@given(derm7pt_rows(), st.data())
def test_invalid_derm7pt_value_names_field_row_and_value(df, data):
    col = data.draw(st.sampled_from(sorted(VOCAB)))
    row = data.draw(st.integers(0, len(df) - 1))
    bad = data.draw(TEXT.filter(lambda v: v.strip() not in VOCAB[col]))
    df.loc[row, col] = bad
    with pytest.raises(DataError) as e: parse_derm7pt_meta(to_csv(df), file='meta.csv')
    err = e.value
    assert (err.field, err.row, err.value) == (col, row, bad.strip()), str(err)
    assert 'meta.csv' in str(err) and f"column '{col}'" in str(err)
    meta, problems = parse_derm7pt_meta(to_csv(df), strict=False)
    assert list(problems) == [row] and row not in meta.row.tolist() and len(meta) == len(df) - 1


@SETTINGS
@given(derm7pt_rows(), st.data())
def test_wrong_score_or_case_number_is_named(df, data):
    row = data.draw(st.integers(0, len(df) - 1))
    col = data.draw(st.sampled_from(['seven_point_score', 'case_num']))
    true = int(df.loc[row, 'seven_point_score'])
    bad = data.draw(st.one_of(st.integers(-5, 15).filter(lambda v: v != true).map(str),
                              TEXT.filter(lambda v: v.strip() != str(true)))) if col == 'seven_point_score' else \
          data.draw(st.one_of(st.just('-1'), st.just('1.5'), st.just(''), SAFE.filter(lambda v: not v.isdigit())))
    if col == 'seven_point_score':
        try: assume(float(bad) != true)
        except (ValueError, OverflowError): pass
    df.loc[row, col] = bad
    with pytest.raises(DataError) as e: parse_derm7pt_meta(to_csv(df))
    assert (e.value.field, e.value.row) == (col, row)
    assert e.value.value in (bad.strip(), int(float(bad)) if _is_int(bad) else None)


def _is_int(s):
    try: return float(s).is_integer()
    except (ValueError, OverflowError): return False


def test_duplicate_case_numbers_and_missing_columns():
    row = {'diagnosis': 'clark nevus', **{c: 'absent' for c in CRITERIA}, 'seven_point_score': '0', 'location': 'back',
           'level_of_diagnostic_difficulty': 'low', 'elevation': 'flat', 'sex': 'male', 'management': 'excision',
           'clinic': 'A/a.JPG', 'derm': 'A/b.jpg', 'case_id': '', 'notes': ''}
    df = pd.DataFrame([{**row, 'case_num': str(k + 1)} for k in range(3)], columns=DERM7PT_COLUMNS)
    assert parse_derm7pt_meta(to_csv(df))[1] == {}
    df.loc[2, 'case_num'] = df.case_num[0]
    with pytest.raises(DataError, match="row 2, column 'case_num'"): parse_derm7pt_meta(to_csv(df))
    with pytest.raises(DataError, match="field 'derm'.*missing column"): parse_derm7pt_meta(to_csv(df.drop(columns='derm')))


# --- Derm7pt index files ------------------------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(1, 40), st.data())
def test_index_files(n, data):
    perm = data.draw(st.permutations(range(n)))
    a, b = sorted(data.draw(st.tuples(st.integers(0, n), st.integers(0, n))))
    files = {'train': perm[:a], 'valid': perm[a:b], 'test': perm[b:]}
    split, problems = derm7pt_splits({s: to_csv(pd.DataFrame({'indexes': v})) for s, v in files.items()}, n)
    assert problems == [] and all(split[i] == s for s, v in files.items() for i in v)
    if n > 1 and a > 0:                                     # a train position also listed for test: overlapping splits
        files['test'] = list(files['test']) + [perm[0]]
        with pytest.raises(DataError, match='overlapping splits'):
            derm7pt_splits({s: to_csv(pd.DataFrame({'indexes': v})) for s, v in files.items()}, n)
    bad = data.draw(st.one_of(st.integers(n, n + 100), st.integers(-100, -1)).map(str) | SAFE.filter(lambda v: not v.isdigit()))
    with pytest.raises(DataError) as e: parse_index_file(io.StringIO('indexes\n' + bad + '\n'), n, file='x_indexes.csv')
    assert (e.value.field, e.value.row, e.value.value) == ('indexes', 0, bad)


# --- HAM10000 -------------------------------------------------------------------------------------------------------------------
AGES = st.one_of(st.just(''), st.integers(0, 24).map(lambda v: f'{5 * v}.0'), st.integers(0, 120).map(str))

@st.composite
def ham_rows(draw):
    k = draw(st.integers(1, 10))
    ids = draw(st.lists(st.integers(0, 9_999_999), min_size=k, max_size=k, unique=True))
    return pd.DataFrame([{'lesion_id': f'HAM_{draw(st.integers(0, 20)):07d}', 'image_id': f'ISIC_{i:07d}' + draw(st.sampled_from(['', '.jpg'])),
                          'dx': draw(st.sampled_from(HAM10000_DX)), 'dx_type': draw(st.sampled_from(HAM10000_DX_TYPE)),
                          'age': draw(AGES), 'sex': draw(st.sampled_from(HAM10000_SEX)),
                          'localization': draw(st.sampled_from(HAM10000_LOCALIZATION))} for i in ids], columns=HAM10000_COLUMNS)

@SETTINGS
@given(ham_rows())
def test_valid_ham10000_rows_parse(df):
    meta, problems = parse_ham10000_metadata(to_csv(df))
    assert problems == {} and meta.image_id.tolist() == [v.removesuffix('.jpg') for v in df.image_id]
    assert [None if math.isnan(a) else a for a in meta.age] == [float(a) if a else None for a in df.age]
    for c in ['lesion_id', 'dx', 'dx_type', 'sex', 'localization']: assert meta[c].tolist() == df[c].tolist()


HAM_VOCAB = {'dx': HAM10000_DX, 'dx_type': HAM10000_DX_TYPE, 'sex': HAM10000_SEX, 'localization': HAM10000_LOCALIZATION}

def _valid_age(s):
    if s == '': return True
    try: v = float(s)
    except (ValueError, OverflowError): return False
    return math.isfinite(v) and 0 <= v <= 120

@SETTINGS
@given(ham_rows(), st.data())
def test_invalid_ham10000_value_names_field_row_and_value(df, data):
    col = data.draw(st.sampled_from([*HAM_VOCAB, 'age']))
    row = data.draw(st.integers(0, len(df) - 1))
    ok = (lambda v: _valid_age(v.strip())) if col == 'age' else (lambda v: v.strip() in HAM_VOCAB[col])
    bad = data.draw(TEXT.filter(lambda v: not ok(v)))
    df.loc[row, col] = bad
    with pytest.raises(DataError) as e: parse_ham10000_metadata(to_csv(df), file='HAM10000_metadata.csv')
    assert (e.value.field, e.value.row, e.value.value) == (col, row, bad.strip())
    meta, problems = parse_ham10000_metadata(to_csv(df), strict=False)
    assert list(problems) == [row] and len(meta) == len(df) - 1


# --- ISIC 2017 Part 3 ----------------------------------------------------------------------------------------------------------
FLAGS = st.sampled_from([('0.0', '0.0'), ('1.0', '0.0'), ('0.0', '1.0'), ('0', '1'), ('1', '0'), ('0', '0')])

@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 9_999_999), FLAGS), min_size=1, max_size=10, unique_by=lambda t: t[0]))
def test_valid_part3_rows_parse(rows):
    df = pd.DataFrame([{'image_id': f'ISIC_{i:07d}', 'melanoma': m, 'seborrheic_keratosis': s} for i, (m, s) in rows])
    out, problems = parse_isic2017_part3(to_csv(df))
    assert problems == {}
    assert out.diagnosis.tolist() == ['melanoma' if float(m) else 'seborrheic_keratosis' if float(s) else 'nevus' for _, (m, s) in rows]

@SETTINGS
@given(st.data())
def test_invalid_part3_value_is_named(data):
    col = data.draw(st.sampled_from(['melanoma', 'seborrheic_keratosis']))
    def ok(v):
        try: return float(v) in (0.0, 1.0)
        except (ValueError, OverflowError): return False
    bad = data.draw(TEXT.filter(lambda v: not ok(v.strip())))
    df = pd.DataFrame([{'image_id': 'ISIC_0000000', 'melanoma': '0.0', 'seborrheic_keratosis': '0.0'}] * 2).assign(image_id=['ISIC_0000000', 'ISIC_0000001'])
    df.loc[1, col] = bad
    with pytest.raises(DataError) as e: parse_isic2017_part3(to_csv(df))
    assert (e.value.field, e.value.row, e.value.value) == (col, 1, bad.strip())


# --- ISIC 2018 Task 3 --------------------------------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 9_999_999), st.sampled_from(ISIC2018_TASK3_CLASSES), st.booleans()), min_size=1, max_size=10,
                unique_by=lambda t: t[0]), st.data())
def test_task3_rows(rows, data):
    df = pd.DataFrame([{'image': f'ISIC_{i:07d}', **{c: ('1' if short else '1.0') if c == d else ('0' if short else '0.0')
                                                     for c in ISIC2018_TASK3_CLASSES}} for i, d, short in rows])
    out, problems = parse_isic2018_task3(to_csv(df))
    assert problems == {} and out.diagnosis.tolist() == [d.lower() for _, d, _ in rows]
    row, col = data.draw(st.integers(0, len(df) - 1)), data.draw(st.sampled_from(ISIC2018_TASK3_CLASSES))
    def ok(v):
        try: return float(v) in (0.0, 1.0)
        except (ValueError, OverflowError): return False
    bad = data.draw(TEXT.filter(lambda v: not ok(v.strip())))
    df.loc[row, col] = bad
    with pytest.raises(DataError) as e: parse_isic2018_task3(to_csv(df))
    assert (e.value.field, e.value.row, e.value.value) == (col, row, bad.strip())
    out, problems = parse_isic2018_task3(to_csv(df), strict=False)
    assert list(problems) == [row] and len(out) == len(df) - 1


# --- ISIC 2017 Part 2 features --------------------------------------------------------------------------------------------------
UNIT = st.floats(0, 1, allow_nan=False) | st.integers(0, 1)

@SETTINGS
@given(st.integers(1, 30), st.data())
def test_features_json(n, data):
    obj = {a: data.draw(st.lists(UNIT, min_size=n, max_size=n + 3)) for a in ISIC2017_ATTRIBUTES}
    out = parse_isic2017_features(json.dumps(obj), n)
    assert all(np.allclose(out[a], obj[a]) for a in ISIC2017_ATTRIBUTES)
    a = data.draw(st.sampled_from(ISIC2017_ATTRIBUTES))
    k = data.draw(st.integers(0, n - 1))
    bad = data.draw(st.one_of(st.floats(1.0001, 1e6), st.floats(-1e6, -1e-6), st.just(None), st.booleans(), TEXT, st.just([0.5])))
    obj[a][k] = bad
    with pytest.raises(DataError) as e: parse_isic2017_features(obj, n, file='ISIC_0000000_features.json')
    assert e.value.field == a and 'ISIC_0000000_features.json' in str(e.value)
    with pytest.raises(DataError, match='fewer values than superpixels'): parse_isic2017_features({**obj, a: [0.0] * (n - 1)}, n)


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | TEXT,
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from([*ISIC2017_ATTRIBUTES, 'x']), kids, max_size=5),
                    max_leaves=12)

@SETTINGS
@given(JSON, st.integers(1, 5))
def test_any_json_gives_features_or_a_data_error(obj, n):
    "Whatever the JSON, a DataError; and what does parse is exactly the object's four lists, values in [0, 1]."
    try: out = parse_isic2017_features(json.dumps(obj), n)
    except DataError: return
    assert sorted(out) == sorted(ISIC2017_ATTRIBUTES)
    for a, v in out.items():
        assert v.dtype == np.float64 and len(v) >= n and ((0 <= v) & (v <= 1)).all()
        assert v.tolist() == [float(x) for x in obj[a]]


# --- nothing but DataError ---------------------------------------------------------------------------------------------------------
PARSERS = [parse_derm7pt_meta, parse_ham10000_metadata, parse_isic2017_part3, lambda s: parse_index_file(s, 5), parse_isic2018_task3]
HEADERS = [','.join(DERM7PT_COLUMNS), ','.join(HAM10000_COLUMNS), 'image_id,melanoma,seborrheic_keratosis', 'indexes',
           'image,' + ','.join(ISIC2018_TASK3_CLASSES)]

# what a successful (strict) parse promises, per parser: every value in its vocabulary, one output row per input row
VALUES = [{'diagnosis': DERM7PT_DIAGNOSES, **CRITERIA, 'location': DERM7PT_LOCATIONS, **DERM7PT_OTHER},
          {'dx': HAM10000_DX, 'dx_type': HAM10000_DX_TYPE, 'sex': HAM10000_SEX, 'localization': HAM10000_LOCALIZATION},
          {'diagnosis': ISIC2017_DIAGNOSES}, None, {'diagnosis': [c.lower() for c in ISIC2018_TASK3_CLASSES]}]

def _check_parsed(k, out, n_rows):
    parsed, problems = out
    assert problems == {}                                           # strict: a problem raises, never comes back
    if VALUES[k] is None:                                           # index file: row positions, each once, in range
        assert len(parsed) == n_rows == len(set(parsed.tolist())) and all(0 <= i < 5 for i in parsed)
        return
    assert len(parsed) == n_rows and parsed.row.tolist() == list(range(n_rows))
    for col, allowed in VALUES[k].items(): assert set(parsed[col]) <= set(allowed), col
    if k == 0: assert (parsed.seven_point_score == seven_point_score(parsed[list(CRITERIA)])).all()

@SETTINGS
@given(st.integers(0, 4), st.booleans(), st.text(max_size=200), st.binary(max_size=200))
def test_random_files_raise_only_data_errors(k, with_header, text, blob):
    "Random text and bytes, with or without the right header: a DataError, or a parse that keeps its promises."
    for raw in (((HEADERS[k] + '\n' if with_header else '') + text).encode('utf-8', 'surrogatepass'), blob,
                HEADERS[k].encode() + b'\n' + blob):
        try: out = PARSERS[k](io.BytesIO(raw))
        except DataError: continue
        _check_parsed(k, out, len(pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding='utf-8-sig')))
