"""TATL: the paper's loss (eqs. 1-3), the union mask, the transfer from the union segmenter, TATL-Freeze, the
compute-matched baseline, crop -> predict -> map back, the scorer, the U+Link ensemble, the published Table 2 beside
ours, and the command line (train, evaluate, resume after a kill, the ablation) on tiny runs."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import xarray as xr
from safetensors.torch import load_file

from conftest import BIN, dermxai
from dermxai.core import TrainConfig
from dermxai.datasets import SegmentationDataset
from dermxai.sources import CaseSource, SynthSource
from dermxai.models import get_system
from dermxai.models_tatl import (LesionCropDataset, SegmentNet, TATLEnsemble, TATLModel, _Stage, box_pixels, lesion_box,
                                 paste_back, score_tatl, tatl_loss)
from dermxai.vocab import ISIC_ATTRIBUTES

TINY = ['--n', '48', '--size', '32', '--epochs', '1', '--batch-size', '8', '--no-progress']
STAGE_DIRS = ['stage1_lesion', 'stage2_union', *[f'stage3_{a}' for a in ISIC_ATTRIBUTES]]


@pytest.fixture(scope='module')
def src():
    return SynthSource.generate(n=48, size=64, seed=0, progress=False)


def test_union_mask_is_the_or_of_the_attribute_masks(src):
    for i in range(len(src)):
        m = src.masks(i, ['union', *ISIC_ATTRIBUTES])
        assert (m[0] == m[1:].any(0)).all(), i
    assert any(src.masks(i, ['union'])[0].any() for i in range(len(src)))      # not vacuous
    boxes = np.stack([lesion_box(src.masks(i, ['lesion'])[0]) for i in range(len(src))])
    crops = LesionCropDataset(src, 'train', targets=['union', *ISIC_ATTRIBUTES], boxes=boxes, size=64)
    for k in range(8):                                                         # and on the (augmented) crops
        m = crops[k]['mask'] > 0.5
        assert torch.equal(m[0], m[1:].any(0)), k


def test_loss_is_eqs_1_to_3_and_penalises_false_positives_on_empty_masks():
    "Per image 0.5 D + 0.5 J (eqs. 2, 3), mean over images; a batch without a true pixel still costs a false positive."
    g = torch.zeros(2, 1, 4, 4); g[0, :, :2, :2] = 1                         # image 0: 4 true pixels; image 1: empty
    z = torch.full((2, 1, 4, 4), -30.); z[0].view(-1)[:8] = 30.               # image 0: 8 predicted, 4 of them true
    out = tatl_loss()(z, {'mask': g})
    assert out['dice_loss'].item() == pytest.approx((4 / 12 + 0) / 2, abs=1e-5)
    assert out['jaccard_loss'].item() == pytest.approx((4 / 8 + 0) / 2, abs=1e-5)
    assert out['loss'].item() == pytest.approx(0.5 * (4 / 12 + 4 / 8) / 2, abs=1e-5)
    empty = torch.zeros(2, 1, 8, 8)
    fp = torch.full((2, 1, 8, 8), -30.); fp[:, 0, 3, 3] = 0.                  # one half-confident false positive each
    fp.requires_grad_()
    loss = tatl_loss()(fp, {'mask': empty})['loss']
    loss.backward()
    assert loss.item() > 0.99 and (fp.grad[:, 0, 3, 3] > 0).all()             # non-zero loss; descent lowers the false positive
    import segmentation_models_pytorch as smp                                  # what dermxai used before: nothing at all
    fp2 = fp.detach().clone().requires_grad_()
    smp.losses.DiceLoss('binary', from_logits=True)(fp2, empty).backward()
    assert fp2.grad.abs().sum() == 0


def test_plan_is_compute_matched_and_unaugmented(src, tmp_path):
    "Without stage 2 and with match_steps a target segmenter trains 2 x epochs; with it, union and target E each; no augmentation."
    system = get_system('tatl')
    for stages, match, want in [('3', True, [4]), ('3', False, [2]), ('2,3', True, [2, 2])]:
        cfg = system.config('quick', size=32, epochs=2, options={'stages': stages, 'match_steps': match, 'attributes': ['streaks']})
        plan = system.stages(cfg, src, tmp_path)
        st = next(plan)
        got = [st.cfg.epochs]
        if stages == '2,3': got.append(plan.send(SegmentNet()).cfg.epochs)
        assert got == want, (stages, match)
        assert system.dataset(st.cfg, src, 'train').augment is False
    assert system.config('full').epochs == 40 and system.config('full').patience == 10          # Section 5.2


def test_ensemble_averages_probabilities():
    class Const(nn.Module):
        def __init__(self, z): super().__init__(); self.z = z
        def forward(self, x): return torch.full((len(x), 1, *x.shape[-2:]), self.z)
    members = []
    for z in (2.0, -1.0, -0.5):
        m = TATLModel(stages='2,3', attributes=['streaks']); m.nets['streaks'] = Const(z); m.nets['union'] = Const(-z); members.append(m)
    out = TATLEnsemble(members)(torch.rand(2, 3, 8, 8))
    assert list(out) == ['union', 'streaks']
    z = torch.tensor([2.0, -1.0, -0.5])
    assert torch.allclose(torch.sigmoid(out['streaks']), torch.sigmoid(z).mean().expand(2, 1, 8, 8), atol=1e-6)
    assert torch.allclose(torch.sigmoid(out['union']), torch.sigmoid(-z).mean().expand(2, 1, 8, 8), atol=1e-6)
    assert not torch.allclose(torch.sigmoid(out['streaks']), torch.sigmoid(z.mean()))   # not the mean logit


def _tatl_cfg(**opts):
    return get_system('tatl').config('quick', size=32, batch_size=8, options=opts)


def _stage3_cfg(**opts):
    cfg = _tatl_cfg(**opts)
    return cfg.replace(options={**cfg.options, 'stage': 'stage3_streaks', 'target': 'streaks', 'boxes': None})


def test_target_segmenters_start_from_the_union_segmenter():
    torch.manual_seed(1)
    union = SegmentNet('unet', 'efficientnet-b0')
    with torch.no_grad():                       # make the batch-norm statistics differ from a fresh network's too
        for mod in union.modules():
            if isinstance(mod, nn.BatchNorm2d): mod.running_mean.uniform_(-1, 1)
    sd = union.state_dict()
    for freeze in (False, True):
        target = _Stage({k: v.clone() for k, v in sd.items()}).build_model(_stage3_cfg(freeze=freeze)).state_dict()
        assert sorted(target) == sorted(sd)
        assert all(torch.equal(target[k], sd[k]) for k in sd)
    fresh = _Stage().build_model(_stage3_cfg()).state_dict()                   # without stage 2: not a copy
    assert not all(torch.equal(fresh[k], sd[k]) for k in sd)


@pytest.mark.parametrize('freeze', [True, False])
def test_freeze_really_freezes_the_encoder(freeze):
    system, cfg = get_system('tatl'), _stage3_cfg(freeze=freeze)
    torch.manual_seed(0)
    init = SegmentNet('unet', 'efficientnet-b0').state_dict()
    net = _Stage(init).build_model(cfg)
    opt = system.optimizer(cfg, net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    batch = {'image': torch.rand(8, 3, 32, 32, generator=g), 'mask': (torch.rand(8, 1, 32, 32, generator=g) > 0.7).float()}
    net.train()
    for _ in range(2):
        loss = system.loss(cfg)(net(batch['image']), batch)['loss']
        opt.zero_grad(); loss.backward(); opt.step()
    after = net.state_dict()
    enc = [k for k in before if k.startswith('net.encoder.')]
    dec = [k for k in before if k.startswith('net.decoder.') and before[k].is_floating_point()]
    assert all(torch.equal(before[k], after[k]) for k in enc) == freeze       # weights and batch-norm statistics
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    handed = {id(p) for g in opt.param_groups for p in g['params']}
    assert any(id(p) in handed for p in net.encoder.parameters()) != freeze


def test_crop_predict_map_back_lands_in_the_original_frame(src):
    "SynthDerm rendered at 64 px, used at 32 px (like a large real image): crops come from the full-resolution image."
    size = 32
    boxes = np.stack([lesion_box(src.masks(i, ['lesion'])[0], 0.04) for i in range(len(src))])
    crops = LesionCropDataset(src, 'test', targets=['lesion'], boxes=boxes, size=size, augment=False)
    frame = SegmentationDataset(src, 'test', targets=['lesion'], size=size, augment=False)
    for k in range(len(crops)):
        c, f = crops[k], frame[k]
        assert c['index'] == f['index']
        assert c['mask'][0].float().mean() > 1.5 * f['mask'][0].mean()        # the crop zooms in on the lesion
        pred = c['mask'][None] * 40 - 20                                       # a network right on the crop...
        back = paste_back(pred, [boxes[c['index']]], size, size)[0, 0] > 0     # ...is right in the original frame
        truth = f['mask'][0] > 0.5
        iou = (back & truth).sum().item() / (back | truth).sum().item()
        assert iou > 0.85, (k, iou)
        x0, y0, x1, y1 = box_pixels(boxes[c['index']], size, size)
        outside = back.clone(); outside[y0:y1, x0:x1] = False
        assert not outside.any()


class _Square(nn.Module):
    "A Segment-Net that always finds the same lesion."
    def forward(self, x):
        out = torch.full((len(x), 1, *x.shape[-2:]), -20.0); out[..., 8:20, 10:22] = 20.0
        return out


def test_the_pipeline_agrees_with_the_dataset_route(src):
    "TATLModel cutting crops itself equals the scorer's route (crops from LesionCropDataset) at the same resolution."
    torch.manual_seed(0)
    model = TATLModel('linknet', 'efficientnet-b0', attributes=['streaks'], stages='1,3').eval()
    model.nets['lesion'] = _Square()
    src32 = SynthSource.generate(n=48, size=32, seed=0, progress=False)
    x = torch.stack([SegmentationDataset(src32, 'test', targets=['lesion'], augment=False)[k]['image'] for k in range(4)])
    with torch.no_grad():
        own = model(x)
        boxes = model.last_boxes
        assert (boxes[:, 2] - boxes[:, 0] < 0.7).all()                          # real crops, not the whole image
        rows = SegmentationDataset(src32, 'test', targets=['lesion']).indices[:4]
        table = np.tile([0., 0., 1., 1.], (len(src32), 1)); table[rows] = boxes
        cds = LesionCropDataset(src32, 'test', targets=['streaks'], boxes=table, size=32, augment=False)
        given = model(x, crops=torch.stack([cds[k]['image'] for k in range(4)]), boxes=boxes)
    assert torch.allclose(own['streaks'], given['streaks'], atol=1e-4)


class _TwoCases(CaseSource):
    name, mask_names = 'two cases', ['lesion', *ISIC_ATTRIBUTES]

    def __init__(self):
        self.labels = pd.DataFrame({'split': ['test', 'test']})
        self.img = np.zeros((2, 32, 32, 3), np.uint8)
        self.img[0, 8:12, 8:16, 0] = 255; self.img[1, 0:2, 0:4, 0] = 255   # predicted: 32 px, then 8 px
        self.m = np.zeros((2, 6, 32, 32), bool)
        self.m[0, 1, 8:10, 8:16] = True                                     # true globules: 16 px, all inside
        self.m[1, 1, 30:32, 30:32] = True                                   # 4 px, missed

    def image(self, i): return self.img[i]
    def _masks(self, i, names): return self.m[i, [self.mask_names.index(n) for n in names]]


class _RedChannel(nn.Module):
    def forward(self, x): return (x[:, :1] > 0.5).float() * 40 - 20


def test_scorer_matches_a_hand_computed_example():
    model = TATLModel(stages='3', attributes=['globules'])
    model.nets['globules'] = _RedChannel()
    sc = score_tatl(model, TrainConfig(size=32, batch_size=1, options={}), _TwoCases(), 'test', progress=False)
    # set level: intersections 16 + 0, unions 32 + (8 + 4), predicted 32 + 8, true 16 + 4
    assert sc['metrics']['jaccard_globules'] == pytest.approx(16 / 44)
    assert sc['metrics']['dice_globules'] == pytest.approx(2 * 16 / (40 + 20))
    assert sc['metrics']['jaccard'] == pytest.approx(16 / 44)
    pi = sc['per_image'].sel(mask='globules')
    assert pi.jaccard.values == pytest.approx([0.5, 0.0])
    assert list(pi.union.values) == [32, 12]


def test_train_help_lists_the_tatl_options():
    from dermxai.cli import build_parser
    train = build_parser()._subparsers._group_actions[0].choices['train']
    out = train._subparsers._group_actions[0].choices['tatl'].format_help()
    for opt in ['--arch', '--encoder', '--freeze', '--stages', '--offset', '--train-crops', '--weights', '--augment', '--match-steps']:
        assert opt in out, opt


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp('tatl')/'run'
    res = dermxai('train', 'tatl', '--data', 'synth', '--out', run, *TINY, '--freeze', check=True)
    return run, json.loads(res.stdout)


def test_cli_train_writes_seven_networks_and_metrics(tiny_run):
    run, out = tiny_run
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == sorted(STAGE_DIRS)
    for d in STAGE_DIRS:
        for f in ['model.safetensors', 'checkpoint.safetensors', 'history.nc', 'config.json', 'metrics.json']:
            assert (run/d/f).exists(), (d, f)
    for f in ['config.json', 'model.safetensors', 'metrics.json', 'history.nc', 'per_image.nc', 'predictions.nc']:
        assert (run/f).exists(), f
    m = json.loads((run/'metrics.json').read_text())
    o = json.loads((run/'config.json').read_text())['options']
    assert o['stages'] == '1,2,3' and o['freeze'] is True
    for a in ISIC_ATTRIBUTES:
        assert f'jaccard_{a}' in m['test'] and f'dice_{a}' in m['test'] and a in m['test']['attributes']
    finite = [m['test'][f'jaccard_{a}'] for a in ISIC_ATTRIBUTES if np.isfinite(m['test'][f'jaccard_{a}'])]
    assert m['test']['jaccard'] == pytest.approx(np.mean(finite))
    assert out['test'] == m['test']
    weights = load_file(run/'model.safetensors')
    assert {k.split('.')[1] for k in weights} == {'lesion', 'union', *ISIC_ATTRIBUTES}
    union = load_file(run/'stage2_union'/'model.safetensors')
    streaks = load_file(run/'stage3_streaks'/'model.safetensors')
    assert all(torch.equal(streaks[k], union[k]) for k in union if k.startswith('net.encoder.'))   # TATL-Freeze
    with xr.open_dataset(run/'per_image.nc') as pi:
        assert pi.jaccard.dims == ('case', 'mask') and set(ISIC_ATTRIBUTES) <= set(pi.mask.values.tolist())
        assert len(pi.case) == m['cases']['test']


def test_paper_table_has_table2_shape(tiny_run, tmp_path):
    "One run: one row (its stage combination); an ablation: a row per variant, mean over the seeds run; Table 2 beside it."
    run, _ = tiny_run
    m = json.loads((run/'metrics.json').read_text())['test']
    pt = get_system('tatl').paper_table(run)
    assert list(pt.index) == ['Stages 1,2,3'] and list(pt.columns) == [*ISIC_ATTRIBUTES, 'average']
    np.testing.assert_allclose(pt.iloc[0].values, [*(m[f'jaccard_{a}'] for a in ISIC_ATTRIBUTES), m['jaccard']])
    assert pt.attrs['caption'].startswith('Table 2 of Nguyen et al.') and 'TATL-Freeze' in pt.attrs['caption']
    paper = pt.attrs['paper']                                                                        # Table 2, exact
    assert list(paper.columns) == list(pt.columns) and paper.loc['Stages 1,2,3', 'average'] == 0.334
    assert paper.loc['ISIC 2018 1st (Koohbanani et al.)', 'average'] == 0.292
    assert get_system('tatl').paper_table(run, 'dice').attrs['paper'].loc['Stages 1,2,3', 'average'] == 0.482
    assert pt.attrs['paper_label'].startswith('published (real data: ISIC 2018') and pt.attrs['label'].startswith('dermxai (SynthDerm, 48 cases')
    J = np.arange(4 * 2 * 2, dtype=float).reshape(4, 2, 2); J[2:, 1] = np.nan                       # seed 1 not run there
    ds = xr.Dataset({'jaccard': (('variant', 'seed', 'attribute'), J), 'dice': (('variant', 'seed', 'attribute'), J),
                     'paper_jaccard': (('variant', 'attribute'), np.full((4, 2), np.nan)),
                     'train_image_share': ('attribute', [0.5, 0.1])},
                    coords={'variant': ['3', '2,3', '1,3', '1,2,3'], 'label': ('variant', ['a', 'b', 'c', 'd']),
                            'seed': [0, 1], 'attribute': ['globules', 'streaks']}, attrs={'freeze': 0})
    ds.to_netcdf(tmp_path/'ablation.nc')
    t = get_system('tatl').paper_table(tmp_path)
    assert list(t.index) == ['Stage 3', 'Stages 2,3', 'Stages 1,3', 'Stages 1,2,3'] and 'TATL-Non-Freeze' in t.attrs['caption']
    assert t.loc['Stage 3', 'streaks'] == (1 + 3) / 2 and t.loc['Stages 1,3', 'streaks'] == 9      # NaN seeds skipped
    assert t.loc['Stage 3', 'average'] == np.mean(J[0])


def test_cam_and_gradcam_explain_the_chosen_heads_network(tiny_run):
    "The explainer takes the CAM layer of the head it explains (each TATL head is its own network), default head included."
    from dermxai.explain import Explainer, case_images
    from dermxai.train import load_run
    run = load_run(tiny_run[0])
    x = case_images(run.source(progress=False), [0, 1], run.cfg.size)
    for head in [None, 'streaks']:
        ex = Explainer.from_run(run, head=head)
        assert ex.layer() is run.model.nets[ex.head].cam_layer()
        da = ex.explain(x, methods=('cam', 'gradcam'), target=0, progress=False)
        assert np.isfinite(da.values).all() and da.sizes['case'] == 2


def test_cli_evaluate_repeats_the_test_scores(tiny_run):
    run, _ = tiny_run
    m = json.loads((run/'metrics.json').read_text())['test']
    ev = json.loads(dermxai('evaluate', run, '--no-progress', check=True).stdout)
    for k, v in m.items():
        if not isinstance(v, float): continue
        assert (np.isnan(ev[k]) if np.isnan(v) else ev[k] == pytest.approx(v, abs=1e-9)), k
    from dermxai.train import evaluate_run
    st = evaluate_run(run/'stage3_streaks', progress=False)                                          # a stage alone
    assert 'jaccard_streaks' in st and 'loss' in st


def _completed_epochs(ckpt):
    from dermxai.weights import load_checkpoint
    try: return load_checkpoint(ckpt)[1]['epoch']
    except Exception: return 0


def test_a_killed_run_resumes_skipping_finished_stages(tmp_path):
    args = ['--n', '40', '--size', '32', '--epochs', '2', '--batch-size', '8', '--no-progress',
            '--attributes', 'milia_like_cyst']
    straight = tmp_path/'straight'
    dermxai('train', 'tatl', '--out', straight, *args, check=True)

    run = tmp_path/'killed'
    proc = subprocess.Popen([str(BIN/'dermxai'), 'train', 'tatl', '--out', str(run), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    ckpt = run/'stage3_milia_like_cyst'/'checkpoint.safetensors'
    deadline = time.time() + 400
    while _completed_epochs(ckpt) < 1 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    assert proc.poll() is None, 'training finished before it could be killed'
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert _completed_epochs(ckpt) == 1 and not (run/'metrics.json').exists()
    done = {d: (run/d/'model.safetensors').stat().st_mtime_ns for d in ['stage1_lesion', 'stage2_union']}
    boxes = (run/'stage1_lesion'/'boxes.nc').stat().st_mtime_ns

    again = dermxai('train', 'tatl', '--out', run, *args)
    assert again.returncode == 2 and '--resume' in again.stderr
    dermxai('train', 'tatl', '--out', run, *args, '--resume', check=True)
    assert {d: (run/d/'model.safetensors').stat().st_mtime_ns for d in done} == done     # finished stages skipped
    assert (run/'stage1_lesion'/'boxes.nc').stat().st_mtime_ns == boxes
    with xr.open_dataset(run/'stage3_milia_like_cyst'/'history.nc') as h:
        assert list(h.epoch.values) == [1, 2]
    a, b = load_file(straight/'model.safetensors'), load_file(run/'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'resumed run differs from the straight one'
    assert json.loads((run/'metrics.json').read_text())['test'] == json.loads((straight/'metrics.json').read_text())['test']


def test_ablation_command_writes_table(tmp_path):
    out = tmp_path/'abl'
    res = dermxai('tatl-ablation', '--out', out, '--n', '40', '--size', '32', '--epochs', '1', '--batch-size', '8',
                  '--variants', '3', '1,2,3', '--attributes', 'streaks', '--no-progress', check=True)
    assert 'Stages 1,2,3' in res.stdout
    with xr.open_dataset(out/'ablation.nc') as ds:
        assert ds.jaccard.dims == ('variant', 'seed', 'attribute')
        assert list(ds.variant.values) == ['3', '1,2,3'] and list(ds.attribute.values) == ['streaks']
        assert ds.paper_jaccard.sel(variant='1,2,3', attribute='streaks') == 0.254 and ds.paper_dice.sel(variant='3', attribute='streaks') == 0.241
        assert ds.target_epochs.sel(variant='3').item() == 2 and ds.target_epochs.sel(variant='1,2,3').item() == 2   # compute-matched
    table = pd.read_csv(out/'ablation.csv')
    assert list(table.attribute) == ['streaks', 'mean', 'streaks', 'mean']
    assert {'jaccard_mean', 'dice_mean', 'paper_jaccard', 'paper_dice', 'target_epochs', 'train_image_share'} <= set(table.columns)
    assert (out/'stages3'/'seed0'/'metrics.json').exists() and (out/'stages123'/'seed0'/'stage1_lesion').is_dir()


def test_attribute_shares_with_and_without_label_columns(src):
    "Rarity (share of training images showing an attribute) is the same read from SynthDerm's labels or its masks."
    from dermxai.models_tatl import _attribute_table
    direct = _attribute_table(src, ISIC_ATTRIBUTES, {})
    bare = SynthSource(src.ds)
    bare.labels = bare.labels.drop(columns=[c for c in bare.labels if c.startswith('attr_')])
    assert _attribute_table(bare, ISIC_ATTRIBUTES, {}) == direct
    assert 0 < min(v['train_image_share'] for v in direct.values()) < max(v['train_image_share'] for v in direct.values()) < 1


RESULTS = Path(__file__).resolve().parents[1]/'experiments'/'results'/'tatl_ablation.nc'


@pytest.mark.skipif(not RESULTS.exists(), reason='no committed ablation results')
def test_paper_table_prints_published_beside_ours_from_the_command_line():
    "The one-liner a reader types: our ablation and the paper's Table 2 side by side, each under its label."
    code = ("from dermxai.models import get_system; from dermxai.systems import side_by_side; "
            f"print(side_by_side(get_system('tatl').paper_table({str(RESULTS)!r})).round(3).to_string())")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert 'published (real data: ISIC 2018 Task 2' in out and 'dermxai (SynthDerm' in out
    assert 'Stages 1,2,3' in out and 'ISIC 2018 1st' in out and '0.334' in out
