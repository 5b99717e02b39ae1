"""Hostile input, as an attacker and a clumsy user would give it: every bad value of the command line, every damaged
run directory and every broken data set below ends in a `DermxaiError` naming the field (or file) at fault, one line
on stderr and the documented exit status (1 bad data, 2 a command used wrongly; `data check` reports 1 problems,
2 unusable), never a traceback. A hypothesis test feeds the parser random argument vectors with the same promise.

Each case runs twice: once with `--debug`, which lets the exception through so that its class and field are checked,
and once as a user runs it, checking the exit status and the one-line message."""
import json, os, pickle, shutil, subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import dermxai
from dermxai.cli import main
from dermxai.core import DataError, UsageError
from dermxai.data import open_source, write_layout
from dermxai.synth import synthderm
from dermxai.trainer import NonFiniteLossError
from dermxai.weights import CheckpointError

N, SIZE = 24, 32
RUN_ARGS = ['--n', '40', '--size', '32', '--batch-size', '16']


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "Written once: a trained run (resnet14, one epoch) and SynthDerm in four layouts; the cases damage copies."
    base = tmp_path_factory.mktemp('hostile')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('DERMXAI_HOME', str(tmp_path_factory.getbasetemp()/'dermxai_home'))
        mp.setenv('DERMXAI_DEVICE', 'cpu')
        assert main(['train', 'resnet14', '--out', str(base/'run'), *RUN_ARGS, '--epochs', '1', '--no-progress']) == 0
        ds = synthderm(n=N, size=SIZE, seed=5, progress=False)
        for fmt in ('isic2018', 'isic2017', 'ham10000', 'derm7pt'): write_layout(ds, base/fmt, fmt, seed=5)
    return base


@dataclass
class Ctx:
    world: Path
    tmp: Path

    def run(self, drop=('checkpoint.safetensors',)) -> Path:
        "A copy of the trained run (without its checkpoint, which no reader needs)."
        dst = self.tmp/'run'
        shutil.copytree(self.world/'run', dst, ignore=shutil.ignore_patterns(*drop, 'best-epoch*'))
        return dst

    def config(self, **changes) -> Path:
        run = self.run()
        cfg = json.loads((run/'config.json').read_text())
        for k, v in changes.items():
            if k.startswith('opt_'): cfg['options'][k[4:]] = v
            else: cfg[k] = v
        (run/'config.json').write_text(json.dumps(cfg))
        return run

    def weights(self, change: Callable) -> Path:
        run = self.run()
        sd = load_file(run/'model.safetensors')
        save_file(change(dict(sd)), run/'model.safetensors')
        return run

    def layout(self, fmt: str) -> Path:
        dst = self.tmp/fmt
        shutil.copytree(self.world/fmt, dst, symlinks=True)
        return dst

    def a_file(self) -> Path:
        p = self.tmp/'a_file.txt'
        p.write_text('not a folder')
        return p


@dataclass
class Case:
    "One bad input: `make(ctx)` builds it and returns the argv (for 'cli') or the data-set root (for 'data')."
    id: str
    make: Callable
    error: type                  # the exception class (SystemExit: refused by the argument parser)
    status: int                  # the exit status
    names: tuple = ()            # what the message must name (the flag, the field, the file)
    field_name: str | None = None   # the error's field
    kind: str = 'cli'
    kw: dict = field(default_factory=dict)   # for 'data': options of open_source


def _train(*extra, out='r'):
    return lambda c: ['train', 'resnet14', '--out', str(c.tmp/out), *RUN_ARGS, '--epochs', '1', '--no-progress', *extra]


def _evaluate(make_run):
    return lambda c: ['evaluate', str(make_run(c)), '--no-progress']


def _explain(*extra):
    return lambda c: ['explain', str(c.run()), '--no-progress', '--methods', 'saliency', *extra]


def _arg(id, argv, flag, status=2):
    "A value the argument parser refuses: exit status 2, the message names the flag."
    return Case(id, argv if callable(argv) else (lambda c, a=argv: list(a)), SystemExit, status, (flag,))


def _write(path: Path, text: str) -> Path:
    "Write `text` to `path`; the run directory holding it."
    path.write_text(text)
    return path.parent


def _deep_json(c):
    return _write(c.run()/'config.json', '[' * 100_000 + ']' * 100_000)


def _pickle_weights(c):
    run = c.run()
    (run/'model.safetensors').write_bytes(pickle.dumps({'fc.weight': torch.zeros(2)}))
    return run


def _fifo(path: Path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _edit_csv(path: Path, edit: Callable, encoding='utf-8'):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = edit(df)
    df.to_csv(path, index=False, encoding=encoding)


def _derm7pt(edit):
    def make(c):
        root = c.layout('derm7pt')
        _edit_csv(root/'meta'/'meta.csv', edit)
        return root
    return make


def _set(col, value, row=0):
    def edit(df):
        df.loc[row, col] = value
        return df
    return edit


def _isic_mask(c, values):
    root = c.layout('isic2018')
    mask = sorted(root.glob('ISIC2018_Task1_Training_GroundTruth/*_segmentation.png'))[0]
    arr = np.asarray(Image.open(mask))
    Image.fromarray(np.where(arr > 0, values[1], values[0]).astype(np.uint8)).save(mask)
    return root


def _first(root, pattern):
    return sorted(root.glob(pattern))[0]


def _link_image_outside(c):
    root = c.layout('isic2018')
    img = _first(root, 'ISIC2018_Task1-2_Training_Input/*.jpg')
    outside = c.tmp/'elsewhere.jpg'
    shutil.copy(img, outside)
    img.unlink(); img.symlink_to(outside)
    return root


def _link_folder_outside(c):
    root = c.layout('isic2018')
    folder = root/'ISIC2018_Task1-2_Validation_Input'
    shutil.move(folder, c.tmp/folder.name)
    folder.symlink_to(c.tmp/folder.name)
    return root


def _derm7pt_link_outside(c):
    root = c.layout('derm7pt')
    meta = pd.read_csv(root/'meta'/'meta.csv', dtype=str, keep_default_na=False)
    img = root/'images'/meta.derm[0]
    shutil.copy(img, c.tmp/'x.jpg')
    img.unlink(); img.symlink_to(c.tmp/'x.jpg')
    return root


def _loop_image(c):
    root = c.layout('isic2018')
    img = _first(root, 'ISIC2018_Task1-2_Training_Input/*.jpg')
    img.unlink(); img.symlink_to(img.name)                             # a link to itself
    (root/'ISIC2018_Task1-2_Training_Input'/'loop').symlink_to('..')  # and a folder loop, which the walk must end
    return root


def _fifo_mask(c):
    root = c.layout('isic2018')
    _fifo(_first(root, 'ISIC2018_Task1_Training_GroundTruth/*_segmentation.png'))
    return root


def _fifo_metadata(c):
    root = c.layout('ham10000')
    _fifo(root/'HAM10000_metadata.csv')
    return root


def _truncated(c):
    root = c.layout('ham10000')
    img = _first(root, 'HAM10000_images_part_1/*.jpg')
    img.write_bytes(img.read_bytes()[:300])
    return root


def _bomb(c):
    root = c.layout('ham10000')
    img = _first(root, 'HAM10000_images_part_1/*.jpg')
    Image.new('1', (20_000, 20_000)).save(img, 'PNG')           # 400 megapixels in a few kilobytes
    return root


def _garbage_csv(c):
    root = c.layout('derm7pt')
    (root/'meta'/'meta.csv').write_bytes(os.urandom(4096))
    return root


def _ham(edit, encoding='utf-8'):
    def make(c):
        root = c.layout('ham10000')
        _edit_csv(root/'HAM10000_metadata.csv', edit, encoding)
        return root
    return make


def _no_split(c):
    root = c.layout('derm7pt')
    (root/'meta'/'valid_indexes.csv').write_text('indexes\n0\nzero\n')
    return root


def _isic2017_value(c):
    root = c.layout('isic2017')
    _edit_csv(root/'ISIC-2017_Training_Part3_GroundTruth.csv', _set('melanoma', '2.0'))
    return root


CASES = [
    # --- the command line: refused by the parser, naming the flag -------------------------------------------------------
    _arg('train-epochs-0', _train('--epochs', '0'), '--epochs'),
    _arg('train-batch-size-0', _train('--batch-size', '0'), '--batch-size'),
    _arg('train-workers-negative', _train('--workers', '-1'), '--workers'),
    _arg('train-lr-negative', _train('--lr', '-1'), '--lr'),
    _arg('train-lr-nan', _train('--lr', 'nan'), '--lr'),
    _arg('train-lr-inf', _train('--lr', 'inf'), '--lr'),
    _arg('train-lr-huge', _train('--lr', '1e12'), '--lr'),
    _arg('train-n-1', _train('--n', '1'), '--n'),
    _arg('train-n-1e12', _train('--n', '1e12'), '--n'),
    _arg('train-size-huge', _train('--size', '100000'), '--size'),
    _arg('train-size-tiny', _train('--size', '8'), '--size'),
    _arg('train-steps-0', _train('--steps-per-epoch', '0'), '--steps-per-epoch'),
    _arg('train-patience-0', _train('--patience', '0'), '--patience'),
    _arg('train-seed-float', _train('--seed', '1.5'), '--seed'),
    _arg('train-nproc-0', _train('--nproc', '0'), '--nproc'),
    _arg('train-out-empty', lambda c: ['train', 'resnet14', '--out', '', '--no-progress'], '--out'),
    _arg('train-out-a-file', lambda c: ['train', 'resnet14', '--out', str(c.a_file())], '--out'),
    _arg('train-option-range', _train('--focal-gamma', '-1'), '--focal-gamma'),
    _arg('train-option-nan', lambda c: ['train', 'arl14', '--out', str(c.tmp/'r'), '--alpha', 'nan'], '--alpha'),
    _arg('train-option-choice', _train('--task', 'nevus'), '--task'),
    _arg('train-unknown-system', ['train', 'resnet15', '--out', 'x'], 'resnet15'),
    _arg('explain-n-0', _explain('--n', '0'), '--n'),
    _arg('explain-n-negative', _explain('--n', '-3'), '--n'),
    _arg('explain-ig-steps-0', _explain('--ig-steps', '0'), '--ig-steps'),
    _arg('explain-cases-negative', _explain('--cases', '-1'), '--cases'),
    _arg('explain-batch-0', _explain('--batch-size', '0'), '--batch-size'),
    _arg('explain-split', _explain('--split', 'training'), '--split'),
    _arg('explain-out-empty', _explain('--out', ''), '--out'),
    _arg('synth-n-0', ['synth', '--n', '0', '--out', 'x'], '--n'),
    _arg('synth-size-huge', ['synth', '--size', '100000', '--out', 'x'], '--size'),
    _arg('synth-difficulty', ['synth', '--difficulty', '2', '--out', 'x'], '--difficulty'),
    _arg('synth-workers-0', ['synth', '--workers', '0', '--out', 'x'], '--workers'),
    _arg('synth-out-a-file', lambda c: ['synth', '--out', str(c.a_file())], '--out'),
    _arg('tour-runs', ['tour', '--runs', 'resnet99'], '--runs'),
    _arg('tour-profile', ['tour', '--profile', 'huge'], '--profile'),
    _arg('teach-port', ['teach', '--port', '0'], '--port'),
    _arg('teach-n', ['teach', '--n', '0'], '--n'),
    _arg('ablation-epochs', ['tatl-ablation', '--out', 'x', '--epochs', '0'], '--epochs'),
    _arg('data-format', ['data', 'check', '.', '--format', 'isic2099'], '--format'),
    _arg('evaluate-split', ['evaluate', '.', '--split', 'all'], '--split'),
    # --- the command line: refused once parsed, before any work ---------------------------------------------------------
    Case('synth-beyond-memory', lambda c: ['synth', '--n', '10000000', '--size', '4096', '--out', str(c.tmp/'s')],
         UsageError, 2, ('GB of memory',), 'n'),
    Case('train-device-unknown', _train('--device', 'banana'), UsageError, 2, ("'banana'",), 'device'),
    Case('train-device-absent', _train('--device', 'mps'), UsageError, 2, ('MPS is not available',)),
    Case('train-out-unwritable', lambda c: _train(out=str(c.a_file()/'run'))(c), UsageError, 2, ('cannot write into',)),
    Case('train-over-a-finished-run', lambda c: ['train', 'resnet14', '--out', str(c.run()), *RUN_ARGS, '--no-progress'],
         UsageError, 2, ('--resume',)),
    Case('explain-case-out-of-range', _explain('--cases', '99999'), DataError, 2, ('99999',), 'cases'),
    Case('explain-method-unknown', lambda c: ['explain', str(c.run()), '--methods', 'shap'], UsageError, 2,
         ("'shap'",), 'methods'),
    Case('explain-head-unknown', _explain('--head', 'location'), DataError, 2, ("'location'",), 'head'),
    Case('explain-target-unknown', _explain('--target', 'BCC'), DataError, 2, ("'BCC'",), 'target'),
    # --- run directories: bad data, status 1 --------------------------------------------------------------------------
    Case('run-missing', lambda c: ['evaluate', str(c.tmp/'nowhere')], DataError, 1, ('not a run directory',)),
    Case('run-config-not-json', _evaluate(lambda c: _write(c.run()/'config.json', '{epochs: 3')), DataError, 1,
         ('config.json', 'not valid JSON')),
    Case('run-config-deeply-nested', _evaluate(_deep_json), DataError, 1, ('nested too deeply',)),
    Case('run-config-a-folder', _evaluate(lambda c: ((c.run()/'config.json').unlink(), (c.tmp/'run'/'config.json').mkdir(),
                                                     c.tmp/'run')[-1]), DataError, 1, ('not a regular file',)),
    Case('run-config-unknown-key', _evaluate(lambda c: c.config(epoch=3)), DataError, 1, ("key 'epoch'",), 'epoch'),
    Case('run-config-wrong-type', _evaluate(lambda c: c.config(epochs='three')), DataError, 1, ("key 'epochs'",), 'epochs'),
    Case('run-config-unknown-system', _evaluate(lambda c: c.config(system='resnet99')), DataError, 1, ("'resnet99'",), 'system'),
    Case('run-config-size-huge', _evaluate(lambda c: c.config(size=10**9)), DataError, 1, ("key 'size'",), 'size'),
    Case('run-config-batch-0', _evaluate(lambda c: c.config(batch_size=0)), DataError, 1, ("key 'batch_size'",), 'batch_size'),
    Case('run-config-n-negative', _evaluate(lambda c: c.config(n=-5)), DataError, 1, ("key 'n'",), 'n'),
    Case('run-config-lr-nan', _evaluate(lambda c: c.config(lr=float('nan'))), DataError, 1, ('not a finite number',), 'lr'),
    Case('run-config-unknown-option', _evaluate(lambda c: c.config(opt_depth=3)), DataError, 1, ("'depth'",), 'depth'),
    Case('run-config-bad-option', _evaluate(lambda c: c.config(opt_task='nevus')), DataError, 1, ("'nevus'",), 'task'),
    Case('run-classes-do-not-fit-the-head', _evaluate(lambda c: c.config(opt_classes=['a', 'b', 'c'])), DataError, 1,
         ('model.safetensors', 'another shape')),
    Case('run-weights-of-another-system', _evaluate(lambda c: c.config(system='arl14')), DataError, 1,
         ('model.safetensors', 'missing')),
    Case('run-weights-extra-key', _evaluate(lambda c: c.weights(lambda sd: {**sd, 'extra.weight': torch.zeros(3)})),
         DataError, 1, ("key 'extra.weight'", 'unexpected'), 'extra.weight'),
    Case('run-weights-missing-key', _evaluate(lambda c: c.weights(lambda sd: {k: v for k, v in sd.items() if k != sorted(sd)[-1]})),
         DataError, 1, ('missing',)),
    Case('run-weights-wrong-shape', _evaluate(lambda c: c.weights(lambda sd: {**sd, sorted(sd)[-1]: torch.zeros(7, 7)})),
         DataError, 1, ('(7, 7)',)),
    Case('run-weights-nan', _evaluate(lambda c: c.weights(lambda sd: {k: torch.full_like(v, float('nan')) if v.is_floating_point() else v
                                                                      for k, v in sd.items()})),
         DataError, 1, ('NaN or infinite',)),
    Case('run-weights-a-pickle', _evaluate(_pickle_weights), DataError, 1, ('cannot read safetensors',)),
    Case('run-weights-absent', _evaluate(lambda c: ((c.run()/'model.safetensors').unlink(), c.tmp/'run')[-1]), DataError, 1,
         ('no final weights',)),
    Case('run-damaged-checkpoint', lambda c: (c.run(drop=()), (c.tmp/'run'/'metrics.json').unlink(),
                                              (c.tmp/'run'/'checkpoint.safetensors').write_bytes(b'\0' * 64),
                                              ['train', 'resnet14', '--out', str(c.tmp/'run'), *RUN_ARGS, '--epochs', '2',
                                               '--resume', '--no-progress'])[-1],
         CheckpointError, 1, ('checkpoint.safetensors', 'damaged')),
    Case('run-resume-with-another-config', lambda c: (c.run(drop=()), (c.tmp/'run'/'metrics.json').unlink(),
                                                      ['train', 'resnet14', '--out', str(c.tmp/'run'), *RUN_ARGS, '--epochs', '2',
                                                       '--lr', '0.5', '--resume', '--no-progress'])[-1],
         DataError, 1, ("key 'lr'",), 'lr'),
    Case('train-exploding-loss', _train('--lr', '100', '--epochs', '2'), NonFiniteLossError, 1, ('not finite', 'grad_clip')),
    Case('train-data-missing', lambda c: _train('--data', str(c.tmp/'nowhere'))(c), DataError, 1, ('no such file or folder',)),
    Case('train-data-damaged-nc', lambda c: ((c.tmp/'b.nc').write_bytes(b'CDF\x01' + b'\0' * 64),
                                             _train('--data', str(c.tmp/'b.nc'))(c))[-1], DataError, 1, ('b.nc',)),
    # --- data sets: the strict loader raises, `data check` reports ------------------------------------------------------
    Case('derm7pt-absolute-path', _derm7pt(_set('derm', '/etc/hostname')), DataError, 1, ("column 'derm'", 'leaves the images/'),
         'derm', 'data'),
    Case('derm7pt-dotdot-path', _derm7pt(_set('clinic', '../../../../etc/hostname')), DataError, 1, ("column 'clinic'",),
         'clinic', 'data'),
    Case('derm7pt-drive-path', _derm7pt(_set('derm', 'C:\\images\\x.jpg')), DataError, 1, ('leaves the images/',), 'derm', 'data'),
    Case('derm7pt-image-links-outside', _derm7pt_link_outside, DataError, 1, ('leads outside the data set',), 'path', 'data'),
    Case('derm7pt-unknown-label', _derm7pt(_set('streaks', 'many')), DataError, 1, ("column 'streaks'", "'many'"), 'streaks', 'data'),
    Case('derm7pt-bad-score', _derm7pt(_set('seven_point_score', '11')), DataError, 1, ("column 'seven_point_score'",),
         'seven_point_score', 'data'),
    Case('derm7pt-garbage-csv', _garbage_csv, DataError, 2, ('meta.csv',), None, 'data'),
    Case('derm7pt-bad-index', _no_split, DataError, 1, ('valid_indexes.csv',), 'indexes', 'data'),
    Case('isic2018-image-links-outside', _link_image_outside, DataError, 1, ('leads outside the data set',), 'path', 'data'),
    Case('isic2018-folder-links-outside', _link_folder_outside, DataError, 2, ('leads outside the data set',), 'path', 'data'),
    Case('isic2018-link-loop', _loop_image, DataError, 1, ('symbolic link loop',), None, 'data'),
    Case('isic2018-fifo-mask', _fifo_mask, DataError, 1, ('FIFO',), None, 'data'),
    Case('isic2018-mask-0-100', lambda c: _isic_mask(c, (0, 100)), DataError, 1, ("'{0, 100}'",), None, 'data'),
    Case('isic2018-mask-one-grey', lambda c: _isic_mask(c, (7, 7)), DataError, 1, ("'{7}'",), None, 'data'),
    Case('isic2017-label-out-of-range', _isic2017_value, DataError, 1, ("column 'melanoma'",), 'melanoma', 'data'),
    Case('ham10000-unknown-dx', _ham(_set('dx', 'naevus')), DataError, 1, ("column 'dx'", "'naevus'"), 'dx', 'data'),
    Case('ham10000-missing-column', _ham(lambda df: df.drop(columns='localization')), DataError, 2, ("'localization'",),
         'localization', 'data'),
    Case('ham10000-duplicate-image', _ham(lambda df: pd.concat([df, df.iloc[:1]])), DataError, 1, ('ISIC_',), None, 'data'),
    Case('ham10000-latin1', _ham(_set('localization', 'épaule'), 'latin-1'), DataError, 2, ('not UTF-8 text',), None, 'data'),
    Case('ham10000-empty-metadata', lambda c: (c.layout('ham10000'), (c.tmp/'ham10000'/'HAM10000_metadata.csv').write_text(''),
                                               c.tmp/'ham10000')[-1], DataError, 2, ('empty file',), None, 'data'),
    Case('ham10000-fifo-metadata', _fifo_metadata, DataError, 2, ('ham10000',), None, 'data', {'fmt': 'ham10000'}),
    Case('ham10000-truncated-image', _truncated, DataError, 1, ('truncated',), None, 'data'),
    Case('ham10000-decompression-bomb', _bomb, DataError, 1, ('DecompressionBomb',), None, 'data'),
    Case('data-a-file', lambda c: c.a_file(), DataError, 2, ('no such folder',), None, 'data', {'fmt': 'ham10000'}),
]


def test_the_table_is_large_and_covers_every_kind():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.status for c in CASES} == {1, 2} and {c.kind for c in CASES} == {'cli', 'data'}


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(world, tmp_path)
    made = case.make(ctx)
    if case.kind == 'data':
        with pytest.raises(case.error) as info:
            src = open_source(made, **case.kw)
            src.validate()
        argv = ['data', 'check', str(made), '--no-progress'] + (['--format', case.kw['fmt']] if 'fmt' in case.kw else [])
    elif case.error is SystemExit:
        argv, info = made, None
    else:
        argv = made
        with pytest.raises(case.error) as info: main([*argv, '--debug'])
        capsys.readouterr()
        (tmp_path/'again').mkdir()
        argv = case.make(Ctx(world, tmp_path/'again'))          # the same input afresh (the first try may have written)
    if info is not None and case.field_name is not None: assert info.value.field == case.field_name, str(info.value)
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == case.status, (status, out[-2000:], err[-2000:])
    assert 'Traceback' not in out + err
    text = out if case.kind == 'data' else err
    for name in case.names: assert name in text, (name, text[-2000:])
    if case.kind == 'cli' and case.error is not SystemExit:
        assert len(err.strip().splitlines()) == 1, err                       # one line, naming what to fix


def test_a_damaged_history_does_not_stop_an_evaluation(world, tmp_path, capsys):
    run = Ctx(world, tmp_path).run()
    (run/'history.nc').write_bytes(b'CDF\x01 half a file')
    (run/'metrics.json').write_text('{"test": {"auc": NaN}')                 # nor do damaged metrics: neither is read
    assert main(['evaluate', str(run), '--no-progress']) == 0
    scores = json.loads(capsys.readouterr().out, parse_constant=_not_json)    # strict JSON: no NaN, no Infinity
    assert 0 <= scores['auc'] <= 1


def _not_json(word):
    raise AssertionError(f'{word} is not JSON')


def test_grey_level_masks_are_thresholded_and_reported(world, tmp_path, capsys):
    root = shutil.copytree(world/'isic2018', tmp_path/'isic2018')
    mask = sorted(root.glob('ISIC2018_Task1_Training_GroundTruth/*_segmentation.png'))[0]
    arr = np.asarray(Image.open(mask)).astype(float)
    soft = np.clip(arr * 0.7 + np.linspace(0, 60, arr.shape[1])[None], 0, 255).astype(np.uint8)   # anti-aliased, shaded
    Image.fromarray(soft).save(mask)
    assert main(['data', 'check', str(root), '--no-progress']) == 0
    assert 'masks with grey levels (thresholded' in capsys.readouterr().out


def test_a_name_that_is_not_utf8_prints_under_a_strict_stdout(world, tmp_path):
    root = shutil.copytree(world/'ham10000', tmp_path/'ham10000')
    stray = os.path.join(os.fsencode(root/'HAM10000_images_part_1'), b'caf\xe9.jpg')
    with open(stray, 'wb') as f: f.write(b'x')
    res = dermxai('data', 'check', root, '--no-progress', env={'PYTHONIOENCODING': 'ascii:strict', 'LC_ALL': 'C'})
    assert res.returncode in (0, 1) and 'Traceback' not in res.stderr, res.stderr[-2000:]
    assert 'caf\\udce9.jpg' in res.stdout or 'caf\\xe9.jpg' in res.stdout


def test_the_real_command_exits_with_the_status_and_no_traceback(tmp_path):
    usage = dermxai('train', 'resnet14', '--out', tmp_path/'r', '--epochs', '0')
    data = dermxai('evaluate', tmp_path/'nowhere')
    assert (usage.returncode, data.returncode) == (2, 1)
    assert 'Traceback' not in usage.stderr + data.stderr and 'not a run directory' in data.stderr


# --- random argument vectors ----------------------------------------------------------------------------------------------
class _Reached(BaseException):
    "Raised by the stubs below: the command got past its checks to the real work (no `except Exception` catches it)."


def _flags():
    "Every option string of every command (and of each system), read from the parser: what a user could type."
    from dermxai.cli import build_parser
    ap = build_parser()
    out = {}
    def walk(p, path):
        subs = [a for a in p._actions if a.__class__.__name__ == '_SubParsersAction']
        own = [s for a in p._actions for s in a.option_strings if s not in ('-h', '--help')]
        if not subs: out[tuple(path)] = own
        for a in subs:
            for name, sp in a.choices.items(): walk(sp, [*path, name])
    walk(ap, [])
    return out


FLAGS = _flags()
COMMANDS = sorted(FLAGS)
VALUES = ['0', '1', '-1', '2', '16', '64', '1e12', 'nan', 'inf', '-inf', '1.5', '', ' ', 'x', '..', '/', '/etc/passwd',
          '../../etc', 'synth', 'test', 'valid', 'mel', 'resnet14', 'caf\udce9', '\x00', '--', '-', '99999', '4097', '0.0001']


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(COMMANDS))
    flags = FLAGS[command]
    words = draw(st.lists(st.one_of(st.sampled_from(flags) if flags else st.nothing(), st.sampled_from(VALUES)), max_size=8))
    return [*command, *words]


@settings(max_examples=int(os.environ.get("DERMXAI_FUZZ_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs())
def test_random_argument_vectors_never_end_in_a_traceback(argv, monkeypatch, tmp_path, capsys):
    """Random argument vectors, with the real work stubbed out (the stub raises `_Reached`): every vector is either
    refused with status 1 or 2 and a message, or gets through its checks to the work."""
    import dermxai.cli as cli, dermxai.data, dermxai.explain, dermxai.synth, dermxai.tatl_ablation, dermxai.tour, dermxai.train

    def reached(*a, **k): raise _Reached()
    for mod, name in [(dermxai.train, 'fit'), (dermxai.train, 'evaluate_run'), (dermxai.train, 'load_run'),
                      (dermxai.synth, 'synthderm'), (dermxai.tour, 'run_tour'), (dermxai.tatl_ablation, 'tatl_ablation'),
                      (dermxai.data, 'check_data'), (dermxai.explain, 'get_method'), (cli, '_launch_torchrun'),
                      (subprocess, 'call')]:
        monkeypatch.setattr(mod, name, reached)
    monkeypatch.chdir(tmp_path)
    try: status = main(argv)
    except _Reached: return
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    assert status in (0, 1, 2), (argv, status, err)
    if status: assert 'error' in err, (argv, err)
