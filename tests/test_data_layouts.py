"""Real-data loaders end to end: SynthDerm written in each layout and read back (round trips), what real downloads
contain (tolerated and reported), fault injection per loader (strict errors naming file / row / column / value,
strict=False reports), and the `dermxai synth --layout` / `dermxai data check` commands."""
import json, os, shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import dermxai
from dermxai.core import DataError
from dermxai.data import check_data, list_formats, open_source, write_layout
from dermxai.datasets import ClassificationDataset, LesionLocationDataset, SegmentationDataset, SevenPointDataset
from dermxai.formats_derm7pt import Derm7ptSource
from dermxai.formats_ham10000 import HAM10000_DX_MAP, HAM10000_LOCALIZATION_MAP, HAM10000Source, ISIC2018Task3Source
from dermxai.formats_isic import (ISIC2017_ATTRIBUTES, ISIC2017_DIAGNOSIS_MAP, PART2_THRESHOLD, ISIC2017Source, ISIC2018Source,
                                  superpixel_fractions, superpixel_ids)
from dermxai.sources import SynthSource, group_split
from dermxai.synth import synthderm
from dermxai.vocab import CRITERIA, ISIC_ATTRIBUTES, TASK_CRITERION, group_label, seven_point_score

N, SIZE, SEED = 32, 48, 11
JPEG_TOL = 4.0      # mean absolute difference (of 255) a quality-95 JPEG may add


@pytest.fixture(scope='module')
def synth():
    return SynthSource(synthderm(n=N, size=SIZE, seed=SEED, progress=False))


@pytest.fixture(scope='module')
def layouts(synth, tmp_path_factory):
    "Every layout written once: {layout: (root, manifest)}. Tests that damage files work on copies."
    base = tmp_path_factory.mktemp('layouts')
    return {l: (base/l, write_layout(synth.ds, base/l, l, seed=SEED)) for l in list_formats()}


@pytest.fixture
def copy_of(layouts, tmp_path):
    def make(layout):
        dst = tmp_path/layout
        shutil.copytree(layouts[layout][0], dst)
        return dst
    return make


def _close(a, b):
    assert a.shape == b.shape
    return np.abs(a.astype(float) - b.astype(float)).mean() < JPEG_TOL


def _raises(fn, *parts):
    "The DataError `fn` raises; its message must contain every part."
    with pytest.raises(DataError) as e: fn()
    for p in parts: assert p in str(e.value), (p, str(e.value))
    return e.value


# --- round trips ----------------------------------------------------------------------------------------------------
def test_every_layout_is_detected(layouts):
    expected = {'isic2018': ISIC2018Source, 'isic2017': ISIC2017Source, 'ham10000': HAM10000Source,
                'isic2018_task3': ISIC2018Task3Source, 'derm7pt': Derm7ptSource}
    for layout, (root, _) in layouts.items():
        assert type(open_source(root)) is expected[layout]
    _raises(lambda: open_source(layouts['derm7pt'][0], fmt='isic2018'), 'no ISIC 2018 Task 1-2 input folder')


def test_isic2018_round_trip(synth, layouts):
    root, man = layouts['isic2018']
    src = ISIC2018Source(root)
    assert len(src) == N and src.report.ok and src.report.notes == []       # ATTRIBUTION / LICENSE skipped silently
    case = man.set_index('id').case
    names = ['lesion', *ISIC_ATTRIBUTES]
    for i, cid in enumerate(src.labels.id):
        c = int(case[cid])
        assert src.labels.split[i] == synth.labels.split[c]
        assert (src.masks(i, names) == synth.masks(c, names)).all(), cid
        assert _close(src.image(i), synth.image(c)), cid
    src.validate()
    rows = [int(case[c]) for c in src.labels.id]
    for a in ISIC_ATTRIBUTES:
        assert src.labels[f'attr_{a}'].tolist() == synth.labels[f'attr_{a}'][rows].tolist()
    assert src.size == SIZE


def test_isic2017_round_trip(synth, layouts):
    root, man = layouts['isic2017']
    src = ISIC2017Source(root)
    assert len(src) == N and src.parts == [1, 2, 3] and src.report.ok
    assert any('metadata CSV' in n for n in src.report.notes)               # the challenge's metadata file: ignored, noted
    names = ['lesion', *ISIC2017_ATTRIBUTES]
    jaccard = []
    for i, cid in enumerate(src.labels.id):
        c = int(man.set_index('id').case[cid])
        assert src.labels.diagnosis[i] == ISIC2017_DIAGNOSIS_MAP[synth.labels.diagnosis[c]]
        assert src.labels.split[i] == synth.labels.split[c]
        ids = superpixel_ids(np.asarray(Image.open(src.labels.superpixels_path[i])))
        drawn = synth.masks(c, names)
        expect = np.stack([drawn[0]] + [(superpixel_fractions(ids, m) >= PART2_THRESHOLD)[ids] for m in drawn[1:]])
        got = src.masks(i, names)
        assert (got == expect).all(), cid
        jaccard.append(((got[1:] & drawn[1:]).sum(), (got[1:] | drawn[1:]).sum()))
        assert _close(src.image(i), synth.image(c))
    inter, union = np.sum(jaccard, 0)
    assert inter / union > 0.5                                               # superpixels approximate the drawn masks


def test_ham10000_round_trip(synth, layouts):
    root, man = layouts['ham10000']
    src = HAM10000Source(root)
    assert len(src) == len(man) > N and src.report.ok                      # some lesions have several images
    m = man.set_index('id')
    for i, r in src.labels.iterrows():
        c, v = int(m.case[r.id]), int(m.view[r.id])
        assert r.lesion_id == f'HAM_{c:07d}'
        assert r.diagnosis == HAM10000_DX_MAP[synth.labels.diagnosis_raw[c]]
        assert r.location == HAM10000_LOCALIZATION_MAP[synth.labels.location[c]]
        back = np.rot90(src.image(i), -v).astype(float) / (1 - 0.06 * v)
        assert np.abs(back - synth.image(c)).mean() < JPEG_TOL, (r.id, v)
    assert (src.labels.groupby('lesion_id').split.nunique() == 1).all()
    assert set(src.labels.split) == {'train', 'valid', 'test'}
    assert (HAM10000Source(root).labels.split == src.labels.split).all()   # deterministic
    assert (HAM10000Source(root, seed=1).labels.split != src.labels.split).any()


def test_isic2018_task3_round_trip(synth, layouts):
    root, man = layouts['isic2018_task3']
    src = ISIC2018Task3Source(root)
    assert len(src) == N and src.report.ok and src.report.notes == []
    for i, r in src.labels.iterrows():
        c = int(man.set_index('id').case[r.id])
        assert (r.diagnosis, r.split) == (HAM10000_DX_MAP[synth.labels.diagnosis_raw[c]], synth.labels.split[c])
        assert r.lesion_id == (f'HAM_{c:07d}' if r.split == 'train' else r.id)
        assert _close(src.image(i), synth.image(c))
    assert ClassificationDataset(src, 'train', task='mel', size=32).classes == ['rest', 'mel']


def test_derm7pt_round_trip(synth, layouts):
    root, man = layouts['derm7pt']
    src = Derm7ptSource(root)
    assert len(src) == N and src.report.ok
    for i, r in src.labels.iterrows():
        c = r.case_num - 1
        assert r.diagnosis == r.diagnosis_raw == synth.labels.diagnosis_raw[c]
        assert r.diagnosis_grouped == synth.labels.diagnosis[c]
        for k in ['location', 'split', 'seven_point_score', *CRITERIA]: assert r[k] == synth.labels[k][c], k
        for t, k in TASK_CRITERION.items(): assert r[t] == group_label(t, r[k])
        assert _close(src.image(i), synth.image(c))
        assert src.clinical_image(i).shape == (SIZE, SIZE, 3)
    # the 7-point score recomputed from the criteria equals the seven_point_score column on every row
    meta = pd.read_csv(root/'meta'/'meta.csv', dtype=str, keep_default_na=False)
    assert (seven_point_score(meta).astype(int) == meta.seven_point_score.astype(int).values).all()
    framed = Derm7ptSource(root, crop=0)
    assert framed.image(0).shape == (SIZE + 50, SIZE + 50, 3) and framed.image(0)[:20].max() < 40   # the black frame
    grouped = Derm7ptSource(root, diagnosis='grouped', image='clinic')
    assert grouped.binary_classes == {'mel': ['MEL'], 'sk': ['SK']} and set(grouped.labels.diagnosis) <= {'BCC', 'NEV', 'MEL', 'MISC', 'SK'}
    assert set(src.binary_classes['mel']) == {d for d in src.vocab['diagnosis'] if d.startswith('melanoma')}


def test_task_datasets_train_on_every_loader(layouts):
    s18, s17 = ISIC2018Source(layouts['isic2018'][0]), ISIC2017Source(layouts['isic2017'][0])
    ham, d7 = HAM10000Source(layouts['ham10000'][0]), Derm7ptSource(layouts['derm7pt'][0])
    assert SegmentationDataset(s18, 'train', targets=['lesion', 'union'], size=32)[0]['mask'].shape == (2, 32, 32)
    assert SegmentationDataset(s17, 'valid', targets=ISIC2017_ATTRIBUTES, size=32)[0]['mask'].shape == (4, 32, 32)
    cls = ClassificationDataset(s17, 'train', task='mel', roi='lesion', size=32)
    assert cls.classes == ['rest', 'melanoma'] and cls[0]['roi'].shape == (1, 32, 32)
    assert ClassificationDataset(ham, 'test', task='multiclass', size=32).classes == ['nv', 'mel', 'bkl', 'bcc', 'akiec', 'vasc', 'df']
    ll = LesionLocationDataset(ham, 'train', lesion='diagnosis', size=32)
    assert ll.location_classes[ll[0]['location']] == ham.labels.location[ll[0]['index']]
    sp = SevenPointDataset(d7, 'train', size=32)
    item = sp[0]
    assert item['image'].shape == (3, 32, 32)
    assert sp.tasks['DIAG'][item['labels']['DIAG']] == d7.labels.diagnosis_grouped[item['index']]
    assert ClassificationDataset(d7, 'train', task='sk', size=32).y.sum() == (d7.labels.split.eq('train') & d7.labels.diagnosis.eq('seborrheic keratosis')).sum()
    _raises(lambda: ClassificationDataset(s18, 'train', task='mel'), 'has no diagnosis labels')
    _raises(lambda: ClassificationDataset(ham, 'train', task='sk'), "'sk'")


# --- what real downloads contain ---------------------------------------------------------------------------------------
def test_extension_case_differs_from_the_listing(copy_of):
    root = copy_of('derm7pt')
    derm = Derm7ptSource(root).labels.derm[0]                                  # listed as .jpg
    (root/'images'/derm).rename(root/'images'/derm.replace('.jpg', '.JPG'))
    src = Derm7ptSource(root)
    assert src.labels.derm_path[0].endswith('.JPG') and src.report.ok
    assert any('another extension case' in n and derm in n for n in src.report.notes)
    ham = copy_of('ham10000')
    img = next((ham/'HAM10000_images_part_1').glob('*.jpg'))
    img.rename(img.with_suffix('.JPG'))
    assert any('another extension case' in n for n in HAM10000Source(ham).report.notes)


def test_doubly_nested_folders_and_stray_files(copy_of, synth):
    root = copy_of('isic2018')
    for d in list(root.iterdir()):
        inner = root/'tmp'; d.rename(inner); d.mkdir(); inner.rename(d/d.name)    # X/X/
    (root/'__MACOSX').mkdir(); (root/'__MACOSX'/'._ISIC_0000000.jpg').write_bytes(b'\0')
    stray = next(root.glob('*Input'))/next(root.glob('*Input')).name/'notes.docx'
    stray.write_text('x')
    src = ISIC2018Source(root)
    assert len(src) == N and src.report.ok
    notes = '\n'.join(src.report.notes)
    assert 'nested twice' in notes and 'notes.docx' in notes and 'ATTRIBUTION' not in notes


def test_mask_modes_and_value_ranges(copy_of):
    root = copy_of('isic2018')
    src = ISIC2018Source(root)
    i = int(np.argmax([src.masks(k, ['lesion'])[0].sum() for k in range(len(src))]))
    truth = src.masks(i, ['lesion'])[0]
    path = src.labels.lesion_path[i]
    for arr, mode in [(truth, '1'), (truth.astype(np.uint8), 'L'), (truth.astype(np.uint8) * 255, 'L'),
                      (np.repeat(truth[..., None].astype(np.uint8) * 255, 3, -1), 'RGB'),
                      (np.repeat(truth[..., None].astype(np.uint8), 3, -1), 'RGB')]:
        Image.fromarray(arr).convert(mode).save(path)
        assert (ISIC2018Source(root).masks(i, ['lesion'])[0] == truth).all(), mode
    Image.fromarray(truth.astype(np.uint8)).convert('P').save(path)         # a palette mask valued {0, 1}
    assert (ISIC2018Source(root).masks(i, ['lesion'])[0] == truth).all()


def test_photo_modes(copy_of):
    root = copy_of('isic2018')
    src = ISIC2018Source(root)
    rgb = src.image(0)
    path = src.labels.image_path[0]
    Image.fromarray(rgb).convert('L').save(path, 'JPEG', quality=95)
    assert ISIC2018Source(root).image(0).shape == rgb.shape
    Image.fromarray(rgb).convert('RGBA').save(path, 'PNG')                   # PNG content behind a .jpg name
    assert (ISIC2018Source(root).image(0) == rgb).all()
    Image.fromarray(rgb).convert('CMYK').save(path, 'JPEG', quality=95)
    assert _close(ISIC2018Source(root).image(0), rgb)


def test_image_ids_with_extension_and_max_side(copy_of, layouts):
    root = copy_of('ham10000')
    meta = root/'HAM10000_metadata.csv'
    df = pd.read_csv(meta, dtype=str, keep_default_na=False)
    df.loc[::2, 'image_id'] += '.jpg'
    df.to_csv(meta, index=False)
    src = HAM10000Source(root)
    assert len(src) == len(df) and any('extension (stripped)' in n for n in src.report.notes)
    small = ISIC2018Source(layouts['isic2018'][0], max_side=24)
    assert small.image(0).shape == (24, 24, 3) and small.masks(0, ['lesion', 'union']).shape == (2, 24, 24) and small.size == 24


def test_missing_official_splits_are_made_from_training(copy_of):
    root = copy_of('isic2018')
    for d in list(root.glob('*Validation*')) + list(root.glob('*Test*')): shutil.rmtree(d)
    src = ISIC2018Source(root, seed=3)
    assert set(src.labels.split) == {'train', 'valid', 'test'}
    assert any('made from the training cases' in n for n in src.report.notes)
    assert (ISIC2018Source(root, seed=3).labels.split == src.labels.split).all()


def test_group_split_never_splits_a_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 200, 1000)
    strata = groups % 7
    split = group_split(groups, strata, seed=4)
    assert pd.DataFrame({'g': groups, 's': split}).groupby('g').s.nunique().max() == 1
    assert abs((split == 'train').mean() - 0.7) < 0.05


# --- fault injection: ISIC 2018 ----------------------------------------------------------------------------------------
def test_isic2018_faults(copy_of):
    root = copy_of('isic2018')
    ok = ISIC2018Source(root)
    a, b, c, d, e = ok.labels.id[:5]
    attr = next(root.glob('ISIC2018_Task2_Training*'))/f'{a}_attribute_streaks.png'
    attr.unlink()                                                             # a missing mask
    err = _raises(lambda: ISIC2018Source(root), 'missing mask', f'{a}_attribute_streaks.png', f"field 'streaks'; found '{a}'")
    assert (err.field, err.value, err.file) == ('streaks', a, attr)
    (next(root.glob('ISIC2018_Task1-2_Training_Input'))/f'{b}.jpg').unlink()  # masks without their image
    seg = next(root.glob('ISIC2018_Task1_Training*'))/f'{c}_segmentation.png'
    Image.fromarray(np.zeros((SIZE, SIZE + 3), np.uint8)).save(seg)         # a mask of another size
    img = next(root.glob('ISIC2018_Task1-2_Training_Input'))/f'{d}.jpg'
    img.write_bytes(img.read_bytes()[:400])                                   # a truncated image
    shutil.copy(attr.parent/f'{e}_attribute_globules.png', attr.parent/f'{e}_attribute_dots.png')   # unknown attribute
    _raises(lambda: ISIC2018Source(root), 'mask without its image', f'{b}_segmentation.png')
    lenient = ISIC2018Source(root, strict=False)
    assert set(lenient.report.skipped) == {a, b, e} and not {a, b, e} & set(lenient.labels.id)
    frame = lenient.report.to_frame()
    assert frame.set_index('case').loc[e, 'value'] == 'dots'
    assert all('mask without its image' in m for m in frame.message[frame.case == b])
    assert len(frame[frame.case == b]) == 6                                  # its lesion mask and its 5 attribute masks
    k = lenient.labels.id.tolist().index(c)
    _raises(lambda: lenient.masks(k, ['lesion']), f'{c}_segmentation.png', f"found '{SIZE + 3}x{SIZE}'", f'expected {SIZE}x{SIZE}')
    k = lenient.labels.id.tolist().index(d)
    _raises(lambda: lenient.image(k), f'{d}.jpg', 'truncated')
    n = len(lenient)
    lenient.validate()                                                        # decoding finds the other two
    assert len(lenient) == n - 2 and set(lenient.report.skipped) == {a, b, c, d, e}


def test_isic2018_strict_validate_names_the_truncated_file(copy_of):
    root = copy_of('isic2018')
    img = sorted(next(root.glob('ISIC2018_Task1-2_Validation_Input')).glob('*.jpg'))[0]
    img.write_bytes(img.read_bytes()[:500])
    src = ISIC2018Source(root)                                                # opening reads no pixels
    _raises(lambda: src.validate(), img.name, 'truncated')
    _raises(lambda: ISIC2018Source(root, verify=True), img.name)


def test_isic2018_missing_ground_truth_folder(copy_of):
    root = copy_of('isic2018')
    n_valid = int((ISIC2018Source(root).labels.split == 'valid').sum())
    shutil.rmtree(next(root.glob('ISIC2018_Task1_Validation_GroundTruth')))
    _raises(lambda: ISIC2018Source(root), 'ISIC2018_Task1_Validation_GroundTruth', 'Validation split has no Task 1 ground truth')
    lenient = ISIC2018Source(root, strict=False)
    assert len(lenient.report.skipped) == n_valid > 0 and 'valid' not in set(lenient.labels.split)
    assert len(lenient) == N - n_valid


# --- fault injection: ISIC 2017 ----------------------------------------------------------------------------------------
def test_isic2017_part3_faults(copy_of):
    root = copy_of('isic2017')
    csv = root/'ISIC-2017_Training_Part3_GroundTruth.csv'
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    bad_value, both, ghost = df.image_id[0], df.image_id[1], 'ISIC_9999999'
    df.loc[0, 'melanoma'] = 'yes'
    df.loc[1, ['melanoma', 'seborrheic_keratosis']] = '1.0'
    unlisted = df.image_id[2]
    df = pd.concat([df.drop(index=2), pd.DataFrame([{'image_id': ghost, 'melanoma': '0.0', 'seborrheic_keratosis': '0.0'}])])
    df.to_csv(csv, index=False)
    err = _raises(lambda: ISIC2017Source(root), 'Part3_GroundTruth.csv', "row 0, column 'melanoma'; found 'yes'", 'expected 0.0 or 1.0')
    assert (err.row, err.field, err.value) == (0, 'melanoma', 'yes')
    lenient = ISIC2017Source(root, strict=False)
    assert {bad_value, both, ghost, unlisted} <= set(lenient.report.skipped)
    msgs = lenient.report.to_frame().set_index('case').message
    assert 'two diagnoses' in msgs[both] and 'missing image' in msgs[ghost] and 'without a label row' in msgs[unlisted]
    assert len(lenient) == N - 3


def test_isic2017_part2_faults(copy_of):
    root = copy_of('isic2017')
    src = ISIC2017Source(root)
    a, b = src.labels.id[0], src.labels.id[1]
    feats = src.labels.features_path[0]
    obj = json.loads(open(feats).read()); obj['streaks'] = obj['streaks'][:-3]
    open(feats, 'w').write(json.dumps(obj))
    _raises(lambda: ISIC2017Source(root).masks(0, ['streaks']), f'{a}_features.json', "key 'streaks'", 'fewer values than superpixels')
    open(feats, 'w').write('{"pigment_network": [0, 1')
    _raises(lambda: ISIC2017Source(root).masks(0, ['lesion', 'union']), f'{a}_features.json', 'not valid JSON')
    os.remove(src.labels.superpixels_path[1])
    _raises(lambda: ISIC2017Source(root), f'{b}_superpixels.png', 'missing superpixels')
    lenient = ISIC2017Source(root, strict=False)
    assert lenient.report.skipped == [b]
    lenient.validate()
    assert a in lenient.report.skipped and len(lenient) == N - 2


# --- fault injection: HAM10000 ----------------------------------------------------------------------------------------
def test_ham10000_faults(copy_of):
    root = copy_of('ham10000')
    meta = root/'HAM10000_metadata.csv'
    df = pd.read_csv(meta, dtype=str, keep_default_na=False)
    df.loc[0, 'dx'] = 'melanoma'
    df.loc[1, 'age'] = 'forty'
    df.loc[2, 'localization'] = 'left arm'
    missing = df.image_id[3]
    dup = df.iloc[[4]].assign(lesion_id='HAM_X')
    df = pd.concat([df, dup], ignore_index=True)
    df.to_csv(meta, index=False)
    (next(root.glob('HAM10000_images_part_*'))/f'{missing}.jpg').unlink(missing_ok=True)
    for p in root.glob(f'HAM10000_images_part_*/{missing}.jpg'): p.unlink()
    err = _raises(lambda: HAM10000Source(root), "row 0, column 'dx'; found 'melanoma'", "expected one of ['nv', 'mel'")
    assert err.file == meta
    lenient = HAM10000Source(root, strict=False)
    frame = lenient.report.to_frame()
    assert frame.field.tolist()[:3] == ['dx', 'age', 'localization'] and frame.row.tolist()[:3] == [0, 1, 2]
    assert 'missing image' in ' '.join(frame.message) and missing in lenient.report.skipped
    assert frame[frame.message.str.contains('listed twice')].row.tolist() == [len(df) - 1]
    assert len(lenient) == len(df) - 6          # rows 0-3, and both rows of the image listed twice (which is right?)
    _raises(lambda: HAM10000Source(root, fractions=(0.5, -1, 0.5)), 'bad split fractions')


def test_ham10000_missing_column_cannot_be_skipped(copy_of):
    root = copy_of('ham10000')
    meta = root/'HAM10000_metadata.csv'
    pd.read_csv(meta, dtype=str).drop(columns='localization').to_csv(meta, index=False)
    for strict in (True, False):
        _raises(lambda: HAM10000Source(root, strict=strict), 'HAM10000_metadata.csv', "column 'localization'", 'missing column')
    assert check_data(root).status == 2


# --- fault injection: ISIC 2018 Task 3 ------------------------------------------------------------------------------------
def test_isic2018_task3_faults(copy_of):
    root = copy_of('isic2018_task3')
    csv = root/'ISIC2018_Task3_Training_GroundTruth'/'ISIC2018_Task3_Training_GroundTruth.csv'
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    two, none = df.image[0], df.image[1]
    df.loc[0, 'VASC' if df.VASC[0] == '0.0' else 'DF'] = '1.0'
    df.loc[1, ['MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC']] = '0.0'
    df.to_csv(csv, index=False)
    err = _raises(lambda: ISIC2018Task3Source(root), 'ISIC2018_Task3_Training_GroundTruth.csv', 'row 0', 'more than one diagnosis')
    assert err.row == 0 and err.value == '1.0'
    lenient = ISIC2018Task3Source(root, strict=False)
    assert lenient.report.skipped == [two, none] and 'no diagnosis' in str(lenient.report.problems[1][1])
    csv.unlink()
    _raises(lambda: ISIC2018Task3Source(root), 'ISIC2018_Task3_Training_GroundTruth.csv', 'Training split has no Task 3 ground truth CSV')


# --- fault injection: Derm7pt -----------------------------------------------------------------------------------------
def test_derm7pt_faults(copy_of):
    root = copy_of('derm7pt')
    meta = root/'meta'/'meta.csv'
    df = pd.read_csv(meta, dtype=str, keep_default_na=False)
    df.loc[0, 'streaks'] = 'irregular streaks'
    score = int(df.seven_point_score[1]); df.loc[1, 'seven_point_score'] = str((score + 1) % 11)
    missing = df.derm[2]
    (root/'images'/missing).unlink()
    df.to_csv(meta, index=False)
    err = _raises(lambda: Derm7ptSource(root), "meta.csv, row 0, column 'streaks'; found 'irregular streaks'")
    assert err.expected.startswith("one of ['absent', 'regular', 'irregular']")
    lenient = Derm7ptSource(root, strict=False)
    frame = lenient.report.to_frame()
    assert frame.field.tolist() == ['streaks', 'seven_point_score', 'derm']
    assert frame.value.tolist()[1:] == [(score + 1) % 11, missing] and frame.expected[1].startswith(str(score))
    assert lenient.report.skipped == ['1', '2', '3'] and len(lenient) == N - 3


def test_derm7pt_split_faults(copy_of):
    root = copy_of('derm7pt')
    train = pd.read_csv(root/'meta'/'train_indexes.csv')
    test = pd.read_csv(root/'meta'/'test_indexes.csv')
    pd.concat([test, train.iloc[:1]]).to_csv(root/'meta'/'test_indexes.csv', index=False)   # overlapping splits
    err = _raises(lambda: Derm7ptSource(root), 'test_indexes.csv', 'overlapping splits', 'train_indexes.csv')
    assert err.value == int(train.indexes[0])
    lenient = Derm7ptSource(root, strict=False)
    assert lenient.report.skipped == [str(int(train.indexes[0]) + 1)] and len(lenient) == N - 1
    pd.DataFrame({'indexes': [0, N + 5]}).to_csv(root/'meta'/'valid_indexes.csv', index=False)
    _raises(lambda: Derm7ptSource(root), 'valid_indexes.csv', f"found '{N + 5}'", f'from 0 to {N - 1}')
    (root/'meta'/'valid_indexes.csv').unlink()
    _raises(lambda: Derm7ptSource(root, strict=False), 'valid_indexes.csv', 'missing index file')


# --- command line --------------------------------------------------------------------------------------------------------
def test_cli_synth_layout_and_data_check(tmp_path, capsys):
    from dermxai.cli import main
    out = tmp_path/'d7'
    assert main(['synth', '--n', '20', '--size', '32', '--seed', '2', '--layout', 'derm7pt', '--out', str(out), '--no-progress']) == 0
    assert 'derm7pt layout' in capsys.readouterr().out and sorted(p.name for p in out.iterdir()) == ['images', 'meta']
    assert main(['data', 'check', str(out), '--format', 'derm7pt', '--no-progress']) == 0
    text = capsys.readouterr().out
    for word in ['Derm7pt (derm7pt), 20 usable cases', 'diagnosis:', 'location:', 'pigment_network:', 'split:', 'status: OK']:
        assert word in text, word
    meta = out/'meta'/'meta.csv'
    meta.write_text(meta.read_text().replace(',absent,', ',none,', 1))
    img = sorted((out/'images').rglob('*.jpg'))[0]
    img.write_bytes(img.read_bytes()[:200])
    res = dermxai('data', 'check', out, '--no-progress')                    # the real command and its exit status
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    assert "found 'none'" in res.stdout and img.name in res.stdout and 'truncated' in res.stdout and 'status: PROBLEMS' in res.stdout
    assert main(['data', 'check', str(tmp_path/'nothing'), '--no-progress']) == 2
    assert 'no such folder' in capsys.readouterr().out
    assert main(['data', 'check', str(out), '--format', 'isic2018', '--no-progress']) == 2
    assert 'no ISIC 2018 Task 1-2 input folder' in capsys.readouterr().out


def test_cli_trains_on_a_layout(tmp_path, capsys):
    from dermxai.cli import main
    data = tmp_path/'isic17'
    assert main(['synth', '--n', '40', '--size', '32', '--layout', 'isic2017', '--out', str(data), '--no-progress']) == 0
    assert main(['data', 'check', str(data), '--no-progress']) == 0
    capsys.readouterr()
    assert main(['train', 'resnet14', '--data', str(data), '--out', str(tmp_path/'run'), '--task', 'sk', '--size', '32',
                 '--epochs', '1', '--batch-size', '16', '--no-progress']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['epochs_run'] == 1 and 0 <= out['test']['auc'] <= 1
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['options']['classes'] == ['rest', 'seborrheic_keratosis']
    assert cfg['data'] == '../isic17' and cfg['data_absolute'] == str(data)      # relative to the run, absolute beside it
