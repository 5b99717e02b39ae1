"ARL-CNN and AttnMel-CNN: the properties the papers' equations promise, weights, and `dermxai train` for every name."
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
import xarray as xr
from hypothesis import given, settings, strategies as st
from torchvision.models.resnet import Bottleneck

from conftest import dermxai
from dermxai.models import get_system
from dermxai.models_resnet import ResNetClassifier, load_resnet_weights
from dermxai.models_arl import ARLBottleneck, ARLClassifier, attention_mask
from dermxai.models_attnmel import AttnMelNet, attention_jaccard, attention_regularisation, attnmel_transforms
from dermxai.datasets import ARL_PATCH_SCALES, CentralPatch, eval_transforms
from torchvision import tv_tensors

TINY = ['--n', '64', '--size', '32', '--epochs', '1', '--batch-size', '16', '--steps-per-epoch', '1', '--no-progress']


@pytest.mark.parametrize('stride', [1, 2])
def test_arl_block_with_alpha_zero_is_the_residual_block(stride):
    torch.manual_seed(stride)
    inplanes, planes = 64, 32
    down = None if stride == 1 and inplanes == planes * 4 else nn.Sequential(
        nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
    res = Bottleneck(inplanes, planes, stride, down)
    arl = ARLBottleneck(inplanes, planes, stride, down, alpha=0.0)
    arl.load_state_dict({**res.state_dict(), 'alpha': torch.tensor(0.0)})
    x = torch.randn(3, inplanes, 12, 12)
    with torch.no_grad():
        for mode in (True, False):
            res.train(mode); arl.train(mode)
            assert torch.equal(arl(x), res(x))
        arl.alpha.fill_(0.1)
        assert not torch.equal(arl(x), res(x))


def test_arl_network_with_alpha_zero_is_its_resnet():
    torch.manual_seed(0)
    arl, res = ARLClassifier(14, 3, alpha=0.0).eval(), ResNetClassifier(14, 3).eval()
    res.load_state_dict({k: v for k, v in arl.state_dict().items() if not k.endswith('alpha')})
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad(): assert torch.equal(arl(x), res(x))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9), scale=st.floats(0.1, 30))
def test_spatial_softmax_sums_to_one_over_space_per_channel(n, c, h, w, scale):
    f = torch.randn(n, c, h, w) * scale
    m = attention_mask(f, 'spatial')
    assert torch.allclose(m.sum((2, 3)), torch.ones(n, c), atol=1e-5)
    assert (m >= 0).all()


@pytest.mark.parametrize('size', [(64, 64), (72, 96)])
def test_attention_maps_and_cams_have_the_input_size(size):
    from dermxai.systems import model_cam
    x = torch.rand(2, 3, *size)
    arl = ARLClassifier(14, 2).eval()
    attn = AttnMelNet(2, 'attnmel').eval()
    with torch.no_grad():
        maps = {**get_system('arl14').native_maps(arl, x), **get_system('attnmel').native_maps(attn, x)}
        assert set(maps) == {'layer1.0', 'layer2.0', 'layer3.0', 'layer4.0', 'A3', 'A4'}
        for name, m in maps.items(): assert tuple(m.shape) == (2, *size), name
        for model in (arl, attn, AttnMelNet(2, 'vgg16gap').eval()):
            assert tuple(model_cam(model, x).shape) == (2, 2, *size)


def test_regularisation_is_zero_for_a_perfect_map_and_safe_for_empty_rois():
    roi = torch.zeros(2, 1, 32, 32); roi[0, :, :16, :16] = 1; roi[1, :, 8:24, 16:32] = 1
    perfect = torch.nn.functional.adaptive_avg_pool2d(roi, (4, 4))
    assert set(perfect.unique().tolist()) == {0.0, 1.0}
    assert attention_regularisation(perfect, roi).item() == 0.0
    assert attention_regularisation(perfect * 0.5, roi).item() > 0.3
    a = torch.rand(2, 1, 4, 4, requires_grad=True)
    loss = attention_regularisation(a, torch.zeros(2, 32, 32))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(a.grad).all()
    # one image with an empty ROI in a batch with a non-empty one: a finite Dice over the whole batch
    mixed = roi.clone(); mixed[1] = 0
    assert 0 < attention_regularisation(torch.full((2, 1, 4, 4), 0.5), mixed).item() < 1


def test_jaccard_of_binarised_maps():
    masks = np.zeros((2, 8, 8), bool); masks[:, 2:6, 2:6] = True
    maps = np.zeros((2, 8, 8)); maps[0, 2:6, 2:6] = 3; maps[1, 0:4, 0:4] = 1
    np.testing.assert_allclose(attention_jaccard(maps, masks), [1.0, 4 / 28])


def test_arl50_loads_a_torchvision_resnet50_state_dict(tmp_path):
    tv = torchvision.models.resnet50(weights=None)
    torch.save(tv.state_dict(), tmp_path/'resnet50.pth')
    system = get_system('arl50')
    cfg = system.config(options={'weights': str(tmp_path/'resnet50.pth')})
    assert cfg.lr == 1e-4                                    # fine-tuning learning rate of the paper
    model = system.build_model(cfg.replace(options={**cfg.options, 'classes': ['rest', 'MEL']}))
    sd = model.net.state_dict()
    for k, v in tv.state_dict().items():
        if not k.startswith('fc.'): assert torch.equal(sd[k], v), k
    assert np.allclose(model.scale_gates().values, 0.001)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path/'resnet18.pth')
    with pytest.raises(Exception, match='do not fit'):
        load_resnet_weights(ARLClassifier(50, 2), tmp_path/'resnet18.pth')


def test_arl_patches_are_drawn_at_the_papers_scales_around_the_centre():
    torch.manual_seed(0)
    img = torch.zeros(3, 120, 160)
    params = [CentralPatch().make_params([img]) for _ in range(400)]
    assert {p['scale'] for p in params} == set(ARL_PATCH_SCALES) and min(ARL_PATCH_SCALES) == 0.2 and max(ARL_PATCH_SCALES) == 0.8
    for p in params:
        assert p['height'] == round(p['scale'] * 120) and p['width'] == round(p['scale'] * 160)
        assert 0 <= p['top'] <= 60 <= p['top'] + p['height'] <= 120
        assert 0 <= p['left'] <= 80 <= p['left'] + p['width'] and p['left'] + p['width'] <= 160


@pytest.mark.parametrize('transform', [eval_transforms(48), attnmel_transforms(48, train=False)])
def test_evaluation_does_not_squash_a_3_by_2_image(transform):
    yy, xx = np.mgrid[:120, :180]
    disc = torch.from_numpy((((yy - 60) ** 2 + (xx - 90) ** 2) < 30 ** 2).astype(np.uint8))
    img, mask = transform(tv_tensors.Image(torch.stack([disc * 255] * 3)), tv_tensors.Mask(disc[None]))
    assert img.shape == (3, 48, 48) and mask.shape == (1, 48, 48)
    assert mask[0].any(0).sum() == mask[0].any(1).sum()          # still round
    assert ((img[0] > 127) == mask[0].bool()).float().mean() > 0.97


def test_the_papers_recipes_are_the_defaults():
    arl, attn = get_system('arl14'), get_system('attnmel')
    full = arl.config('full')
    assert (full.options['sampling'], full.options['patches_per_image'], full.options['test_crops']) == ('shuffle', 60, 9)
    assert (full.epochs, full.step_size, full.gamma) == (100, 30, 0.5) and arl.sampler(full, None) is None
    assert all(attn.monitor(attn.config(p)) == ('valid_auc', 'max') for p in ('quick', 'full'))
    assert attn.config('full').epochs == 50


@pytest.mark.parametrize('name,extra', [('arl14', []), ('arl50', []), ('resnet14', ['--patches-per-image', '2']),
                                        ('resnet50', ['--test-crops', '1']), ('attnmel', ['--roi', 'lesion']), ('vgg16gap', []),
                                        ('vgg16', []), ('melcnn', ['--task', 'multiclass'])])
def test_cli_trains_every_attention_system(tmp_path, name, extra):
    run = tmp_path/name
    out = json.loads(dermxai('train', name, '--data', 'synth', '--out', run, *TINY, *extra, check=True).stdout)
    assert out['epochs_run'] == 1
    with xr.open_dataset(run/'history.nc') as h:
        if name.startswith('arl'):
            assert h.scale_gate.dims == ('epoch', 'block')
            blocks = h.block.values.tolist()
            assert len(blocks) == (4 if name == 'arl14' else 16)
            assert blocks[0] == 'layer1.0' and blocks[-1] == ('layer4.0' if name == 'arl14' else 'layer4.2')
        if name == 'attnmel': assert {'train_reg_a3', 'train_reg_a4', 'valid_focal'} <= set(h.data_vars)
    if name in ('arl14', 'attnmel'):   # CAM and native maps as `dermxai explain`, the tour and the widgets compute them
        from dermxai.explain import explain_run
        ex = explain_run(run, n=2, methods=('cam', 'native'))
        native = ['layer1.0', 'layer2.0', 'layer3.0', 'layer4.0'] if name == 'arl14' else ['A3', 'A4']
        assert ex.method.values.tolist() == ['cam'] + [f'native:{b}' for b in native]
        assert ex.sizes['y'] == ex.sizes['x'] == 32 and np.isfinite(ex.values).all()
        tab = get_system(name).paper_table(run)
        assert tab.index.tolist() == (['ARL-CNN14'] if name == 'arl14' else ['AttnMel-CNN-Lesion'])
        from dermxai.systems import side_by_side
        both = side_by_side(tab).columns.get_level_values(0).unique().tolist()
        assert both[0].startswith('published (real data: ISIC 2017') and both[1].startswith('dermxai (SynthDerm, 64 cases')
        auc = tab.iloc[0][('Melanoma', 'AUC') if name == 'arl14' else 'AUC']
        assert auc == pytest.approx(out['test']['auc'])
    cfg = json.loads((run/'config.json').read_text())
    if name == 'melcnn': assert cfg['options']['classes'] == ['BCC', 'NEV', 'MEL', 'MISC', 'SK']
    if name == 'resnet14':   # evaluation goes through the nine crops too and reproduces the test scores
        ev = json.loads(dermxai('evaluate', run, '--no-progress', check=True).stdout)
        assert ev['accuracy'] == pytest.approx(out['test']['accuracy'])


def test_cli_refuses_bad_attention_options(tmp_path, capsys):
    # in process (the command's own exit path is exercised by the training tests above)
    from dermxai.cli import main
    assert main(['train', 'vgg16gap', '--out', str(tmp_path/'a'), *TINY, '--roi', 'lesion']) == 2
    assert 'no attention maps' in capsys.readouterr().err
    assert main(['train', 'arl14', '--out', str(tmp_path/'b'), *TINY, '--attention', 'softmax2d']) == 2
    assert "invalid choice: 'softmax2d' (choose from 'spatial', 'channel', 'sigmoid')" in capsys.readouterr().err
    for name, flag in [('attnmel', '--roi'), ('arl14', '--alpha')]:
        assert main(['train', name, '--help']) == 0 and flag in capsys.readouterr().out
    assert not (tmp_path/'a').exists() and not (tmp_path/'b').exists()
