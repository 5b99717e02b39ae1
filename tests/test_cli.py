"Command-line contract: every command has --help, runs write what they promise, errors name what to fix."
import json

import pytest
import xarray as xr

from conftest import TINY, dermxai


@pytest.mark.parametrize('args', [[], ['synth'], ['train'], ['train', 'resnet14'], ['train', 'resnet50'],
                                  ['evaluate'], ['tour']])
def test_help(args):
    res = dermxai(*args, '--help')
    assert res.returncode == 0, res.stderr
    assert 'usage: dermxai' in res.stdout


def test_systems_lists_the_baselines():
    res = dermxai('systems', check=True)
    assert 'resnet14' in res.stdout and 'resnet50' in res.stdout


def test_synth_writes_netcdf_and_galleries(tmp_path):
    dermxai('synth', '--n', '12', '--size', '48', '--seed', '3', '--out', tmp_path, '--no-progress', check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['gallery.png', 'gallery_masks.png', 'synthderm.nc']
    with xr.open_dataset(tmp_path/'synthderm.nc') as ds:
        assert ds.image.shape == (12, 48, 48, 3)
        assert ds.attrs['generator'] == 'dermxai.synth'


def test_train_then_evaluate(tmp_path):
    run = tmp_path/'run'
    res = dermxai('train', 'resnet14', '--data', 'synth', '--out', run, *TINY, check=True)
    out = json.loads(res.stdout)
    assert out['epochs_run'] == 2 and 0 <= out['test']['auc'] <= 1
    for f in ['config.json', 'model.safetensors', 'checkpoint.safetensors', 'history.nc', 'metrics.json']:
        assert (run/f).exists(), f
    with xr.open_dataset(run/'history.nc') as h:
        assert list(h.epoch.values) == [1, 2]
        assert {'train_loss', 'valid_loss', 'valid_auc', 'lr', 'data_time_share', 'images_per_s'} <= set(h.data_vars)
    metrics = json.loads((run/'metrics.json').read_text())
    ev = json.loads(dermxai('evaluate', run, '--no-progress', check=True).stdout)
    assert ev['auc'] == pytest.approx(metrics['test']['auc'], abs=1e-6)
    # a second train into the same folder refuses instead of overwriting, and says what to do
    again = dermxai('train', 'resnet14', '--out', run, *TINY)
    assert again.returncode == 2 and '--resume' in again.stderr
    # resuming a finished run with the same plan does nothing and succeeds
    assert dermxai('train', 'resnet14', '--out', run, *TINY, '--resume').returncode == 0


def test_training_on_a_saved_synthderm_file(tmp_path):
    dermxai('synth', '--n', '64', '--size', '32', '--out', tmp_path/'s', '--no-progress', check=True)
    dermxai('train', 'resnet14', '--data', tmp_path/'s'/'synthderm.nc', '--out', tmp_path/'r', *TINY, '--task', 'multiclass',
            check=True)
    cfg = json.loads((tmp_path/'r'/'config.json').read_text())
    assert cfg['options']['classes'] == ['BCC', 'NEV', 'MEL', 'MISC', 'SK']


def test_unknown_system_is_a_usage_error(tmp_path):
    res = dermxai('train', 'resnet15', '--out', tmp_path)
    assert res.returncode == 2 and 'resnet15' in res.stderr
