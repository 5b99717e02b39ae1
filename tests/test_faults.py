"Fault injection: bad inputs and damaged files give one clear line naming the file, field and value; nothing is lost."
import json

import numpy as np

from conftest import TINY, dermxai


def _err(res):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert 'Traceback' not in res.stderr
    return res.stderr


def test_missing_data_path(tmp_path):
    err = _err(dermxai('train', 'resnet14', '--data', tmp_path/'nowhere', '--out', tmp_path/'r', *TINY))
    assert 'nowhere' in err and 'no such file or folder' in err


def test_damaged_synthderm_file(tmp_path):
    bad = tmp_path/'broken.nc'
    bad.write_bytes(b'CDF\x01' + b'\x00' * 64)
    err = _err(dermxai('train', 'resnet14', '--data', bad, '--out', tmp_path/'r', *TINY))
    assert 'broken.nc' in err


def test_damaged_checkpoint(tmp_path):
    run = tmp_path/'run'
    dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '1', check=True)
    (run/'metrics.json').unlink()
    data = (run/'checkpoint.safetensors').read_bytes()
    (run/'checkpoint.safetensors').write_bytes(data[: len(data) // 3])        # truncated, as by a full disk
    err = _err(dermxai('train', 'resnet14', '--out', run, *TINY, '--resume'))
    assert 'checkpoint.safetensors' in err and 'damaged' in err


def test_damaged_weights_on_evaluate(tmp_path):
    run = tmp_path/'run'
    dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '1', check=True)
    (run/'model.safetensors').write_bytes(b'{"not": "weights"}')
    err = _err(dermxai('evaluate', run, '--no-progress'))
    assert 'model.safetensors' in err


def test_hand_edited_config_with_a_typo(tmp_path):
    run = tmp_path/'run'
    dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '1', check=True)
    cfg = json.loads((run/'config.json').read_text())
    cfg['epoch'] = cfg.pop('epochs')
    (run/'config.json').write_text(json.dumps(cfg))
    err = _err(dermxai('evaluate', run, '--no-progress'))
    assert "column 'epoch'" in err and 'config.json' in err


def test_resume_with_another_configuration_is_refused(tmp_path):
    run = tmp_path/'run'
    dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '1', check=True)
    err = _err(dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '2', '--lr', '0.5', '--resume'))
    assert "column 'lr'" in err


def test_exploding_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path/'run'
    err = _err(dermxai('train', 'resnet14', '--out', run, *TINY, '--epochs', '3', '--lr', '1e12'))
    assert 'loss became' in err and ('nan' in err or 'inf' in err)
    assert 'grad_clip' in err


def test_bad_option_value(tmp_path):
    err = _err(dermxai('train', 'resnet14', '--out', tmp_path/'r', *TINY, '--task', 'nevus'))
    assert "'nevus'" in err and 'multiclass' in err
