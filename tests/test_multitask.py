"""The two multi-task systems: gated 7-point network (self-gates, sharing fractions, gates-off independence, checklist)
and lesion + location network (R, runs); every system name trains from the command line on a tiny set."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from conftest import dermxai
from dermxai.checklist import checklist_confusion, checklist_dataset, inferred_diagnosis, load_checklist
from dermxai.cli import main
from dermxai.correlation import correlation_from_predictions, lesion_location_correlation
from dermxai.models import get_system
from dermxai.models_gated import GatedMTLNet, extract_branch, seven_point_loss, sharing_fraction
from dermxai.models_location import mean_average_precision
from dermxai.vocab import TASKS, seven_point_score

GATED_TINY = ['--n', '64', '--size', '96', '--epochs', '2', '--steps-per-epoch', '2', '--batch-size', '24', '--k', '1',
              '--no-progress']
LOCATION_TINY = ['--n', '64', '--size', '32', '--epochs', '1', '--batch-size', '16', '--no-progress']


def _random_batch(n=12, size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'image': torch.rand(n, 3, size, size, generator=g),
            'labels': {t: torch.randint(0, len(c), (n,), generator=g) for t, c in TASKS.items()}}


# --- gated network ------------------------------------------------------------------------------------------------

def test_self_gates_stay_exactly_one_after_training_steps():
    system = get_system('gated')
    cfg = system.config()
    torch.manual_seed(0)
    model = system.build_model(cfg)
    opt = system.optimizer(cfg, model)
    assert any(g['lr'] == pytest.approx(100 * cfg.lr) for g in opt.param_groups)   # the gates' 100x learning rate
    loss_fn = system.loss(cfg)
    before = [g.alpha().detach().clone() for g in model.gates]
    for step in range(4):
        batch = _random_batch(seed=step)
        opt.zero_grad(); loss_fn(model(batch['image']), batch)['loss'].backward(); opt.step()
    for g, a0 in zip(model.gates, before):
        a = g.alpha().detach()
        assert torch.equal(a[g.own], torch.ones_like(a[g.own]))         # exactly 1
        assert (a[~g.own] - a0[~g.own]).abs().max() > 0.05                # the learned gates did move
    # no parameter stands for an own gate: raw values exist for the T(T-1)C foreign channels only
    T = len(TASKS)
    assert sum(g.raw.numel() for g in model.gates) == sum(T * (T - 1) * g.channels for g in model.gates)


def test_sharing_fraction_in_unit_interval_with_the_recorded_shape():
    model = GatedMTLNet()
    with torch.no_grad():
        for k, g in enumerate(model.gates): g.raw.copy_(torch.randn_like(g.raw) * 10 ** k)   # up to saturation
    sf = sharing_fraction(model)
    assert sf.dims == ('block', 'target_task', 'source_task') and sf.shape == (4, 8, 8)
    assert list(sf.block.values) == ['gate1', 'gate2', 'gate3', 'gate4']
    assert list(sf.target_task.values) == list(TASKS) == list(sf.source_task.values)
    assert float(sf.min()) >= 0 and float(sf.max()) <= 1 and float(sf.min()) < 0.05
    assert (np.diagonal(sf.values, axis1=1, axis2=2) == 1).all()
    # by hand, one block: SF^t_i is the mean over the source's channels of sigmoid(gamma_g * raw)
    g = model.gates[1]
    alpha = torch.sigmoid(3.0 * g.raw.detach())          # (target, other sources in order, channel)
    t = 2; others = [i for i in range(8) if i != t]
    assert sf.values[1, t, others] == pytest.approx(alpha[t].mean(-1).numpy(), abs=1e-6)


def test_gates_off_gives_exactly_the_independent_branches():
    torch.manual_seed(1)
    model = GatedMTLNet(gates='off', width=2.0)
    x = torch.rand(3, 3, 100, 100)
    model.train(); model(x)                       # non-trivial batch-norm statistics
    model.eval()
    with torch.no_grad(): full = model(x)
    for t in model.task_names:
        with torch.no_grad(): alone = extract_branch(model, t).eval()(x)[t]
        torch.testing.assert_close(full[t], alone, rtol=0, atol=1e-5)
    # changing every other branch's weights leaves a task's output bit for bit the same
    k = model.task_names.index('PN')
    with torch.no_grad():
        for b, (f, _, _) in enumerate(model.setup):
            w = model.blocks[b][0].weight
            w[:k * f].normal_(); w[(k + 1) * f:].normal_()
        changed = model(x)
    assert torch.equal(changed['PN'], full['PN'])
    assert not torch.equal(changed['DIAG'], full['DIAG'])


def test_learned_gates_do_share():
    "The control for the test above: with gates open, a task's output depends on the other branches."
    torch.manual_seed(1)
    model = GatedMTLNet().eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        full = model(x)['PN']
        model.blocks[0][0].weight[:2].normal_()       # DIAG's first filters only
        assert not torch.allclose(model(x)['PN'], full)


def test_training_loss_is_eq_10():
    "Eq. 10 on a hand-worked batch: (1/b) sum over tasks and cases of w_j FL, the weights of eq. 8, divided by b = 4."
    logits = {'BWV': torch.tensor([[0., 0.], [0., 0.], [0., 0.], [0., float(np.log(3))]]), 'DIAG': torch.zeros(4, 5)}
    batch = {'labels': {'BWV': torch.tensor([0, 0, 0, 1]), 'DIAG': torch.tensor([1, 1, 1, 2])}}
    # BWV counts (3, 1) -> w = (1, 3); p_t = 1/2 (ABS), 3/4 (PRS): FL = 0.1732868, 0.0179801
    # DIAG counts NEV 3, MEL 1 -> w = (1, 3); p_t = 1/5: FL = -(4/5)^2 ln(1/5) = 1.0300403
    expected = ((3 * 1 * 0.1732868 + 1 * 3 * 0.0179801) + (3 * 1 * 1.0300403 + 1 * 3 * 1.0300403)) / 4   # 1.6885106
    res = seven_point_loss(logits, batch, weighted=True)
    assert res['loss'].item() == pytest.approx(expected, abs=1e-6)
    assert res['loss_BWV'].item() == pytest.approx(0.1434502, abs=1e-6)       # not / sum of weights (0.0957)
    assert seven_point_loss(logits, batch)['loss'].item() == pytest.approx(expected, abs=1e-6)   # gradients on: training


def test_validation_loss_is_unweighted():
    "The Trainer's validation loss (under no_grad) is the plain focal loss, a mean over the cases: no eq. 8 weights."
    from dermxai.trainer import Trainer

    class Fixed(torch.nn.Module):      # BWV logits (0, image[0, 0, 0]): p(PRS) = 3/4 where the pixel is ln 3
        def __init__(self):
            super().__init__(); self.w = torch.nn.Parameter(torch.zeros(()))
        def forward(self, x): return {'BWV': torch.stack([torch.zeros(len(x)), x[:, 0, 0, 0] + self.w], 1)}
    ds = [{'image': torch.full((3, 4, 4), v), 'labels': {'BWV': y}} for v, y in [(0., 0), (0., 0), (0., 0), (float(np.log(3)), 1)]]
    system = get_system('gated')
    trainer = Trainer(Fixed(), ds, ds, loss_fn=system.loss(system.config()), batch_size=4, progress=False, device='cpu')
    got = trainer.evaluate()['loss']
    assert got == pytest.approx((3 * 0.1732868 + 0.0179801) / 4, abs=1e-6)              # unweighted: 0.1344601
    assert got != pytest.approx((3 * 0.1732868 + 3 * 0.0179801) / 4, abs=1e-4)          # the weighted value


# --- the 7-point checklist ----------------------------------------------------------------------------------------

HAND = [  # grouped criteria, score by hand
    ({'PN': 'TYP', 'BWV': 'ABS', 'VS': 'REG', 'PIG': 'REG', 'STR': 'REG', 'DaG': 'REG', 'RS': 'ABS'}, 0),
    ({'PN': 'ATP', 'BWV': 'ABS', 'VS': 'ABS', 'PIG': 'ABS', 'STR': 'ABS', 'DaG': 'ABS', 'RS': 'ABS'}, 2),
    ({'PN': 'ABS', 'BWV': 'ABS', 'VS': 'ABS', 'PIG': 'IR', 'STR': 'ABS', 'DaG': 'IR', 'RS': 'ABS'}, 2),
    ({'PN': 'TYP', 'BWV': 'PRS', 'VS': 'ABS', 'PIG': 'ABS', 'STR': 'IR', 'DaG': 'ABS', 'RS': 'ABS'}, 3),
    ({'PN': 'ABS', 'BWV': 'ABS', 'VS': 'IR', 'PIG': 'IR', 'STR': 'IR', 'DaG': 'IR', 'RS': 'PRS'}, 6),
    ({'PN': 'ATP', 'BWV': 'PRS', 'VS': 'IR', 'PIG': 'IR', 'STR': 'IR', 'DaG': 'IR', 'RS': 'PRS'}, 10)]


def test_checklist_rule_reproduces_hand_made_cases():
    crit = pd.DataFrame([c for c, _ in HAND])
    scores = seven_point_score(crit)
    assert scores.tolist() == [s for _, s in HAND]
    assert inferred_diagnosis(scores, 1).tolist() == [False, True, True, True, True, True]
    assert inferred_diagnosis(scores, 3).tolist() == [False, False, False, True, True, True]
    # the same cases in raw Derm7pt words
    raw = pd.DataFrame({'pigment_network': ['typical', 'atypical', 'absent', 'typical', 'absent', 'atypical'],
                        'blue_whitish_veil': ['absent', 'absent', 'absent', 'present', 'absent', 'present'],
                        'vascular_structures': ['comma', 'absent', 'absent', 'absent', 'dotted', 'linear irregular'],
                        'pigmentation': ['diffuse regular', 'absent', 'localized irregular', 'absent', 'diffuse irregular',
                                         'diffuse irregular'],
                        'streaks': ['regular', 'absent', 'absent', 'irregular', 'irregular', 'irregular'],
                        'dots_and_globules': ['regular', 'absent', 'irregular', 'absent', 'irregular', 'irregular'],
                        'regression_structures': ['absent', 'absent', 'absent', 'absent', 'blue areas', 'combinations']})
    assert seven_point_score(raw).tolist() == scores.tolist()


def test_checklist_confusion_matrices_for_any_tau():
    crit = pd.DataFrame([c for c, _ in HAND])
    truth = {t: crit[t].values for t in crit}
    # the network gets every criterion right except case 3's veil (sees none: 3 -> 1 point)
    pred = {t: crit[t].values.copy() for t in crit}; pred['BWV'][3] = 'ABS'
    probs = {t: np.eye(len(TASKS[t]))[[TASKS[t].index(v) for v in pred[t]]] for t in crit}
    diag_true = ['NEV', 'NEV', 'SK', 'MEL', 'MEL', 'MEL']
    diag_p = np.eye(5)[[TASKS['DIAG'].index(d) for d in ['NEV', 'MEL', 'SK', 'MEL', 'NEV', 'MEL']]]
    ck = checklist_dataset(np.arange(6), probs, truth, diag_p, diag_true)
    assert ck.score_pred.values.tolist() == [0, 2, 2, 1, 6, 10] and ck.score_true.values.tolist() == [0, 2, 2, 3, 6, 10]
    expected = {  # tau -> kind -> [[TN, FP], [FN, TP]]
        1: {'inferred': [[1, 2], [0, 3]], 'direct': [[2, 1], [1, 2]], 'rule_on_truth': [[1, 2], [0, 3]]},
        3: {'inferred': [[3, 0], [1, 2]], 'direct': [[2, 1], [1, 2]], 'rule_on_truth': [[3, 0], [0, 3]]},
        7: {'inferred': [[3, 0], [2, 1]], 'direct': [[2, 1], [1, 2]], 'rule_on_truth': [[3, 0], [2, 1]]}}
    for tau, kinds in expected.items():
        cm = checklist_confusion(ck, tau)
        for kind, m in kinds.items(): assert cm.sel(kind=kind).values.tolist() == m, (tau, kind)


# --- lesion-location correlation ------------------------------------------------------------------------------------

def test_R_rows_sum_to_one_and_match_counting():
    rng = np.random.default_rng(0)
    lesion = rng.random((200, 5)) < 0.3
    lesion[:, 4] = False                                   # a label no case has
    location = rng.integers(0, 6, 200)
    R = lesion_location_correlation(lesion, np.eye(6)[location])
    assert R.dims == ('lesion', 'location') and R.shape == (5, 6)
    np.testing.assert_allclose(R.sum('location').values[:4], 1.0)
    assert np.isnan(R.values[4]).all()
    i, j = 1, 3
    assert R.values[i, j] == pytest.approx((lesion[:, i] & (location == j)).sum() / lesion[:, i].sum())
    # hard predictions give the same table as the labels they threshold to
    Rp = correlation_from_predictions(lesion * 0.8 + 0.1, np.eye(6)[location] * 0.5 + 0.05)
    np.testing.assert_allclose(Rp.values[:4], R.values[:4])
    soft = correlation_from_predictions(rng.random((50, 3)), rng.dirichlet(np.ones(4), 50), soft=True)
    np.testing.assert_allclose(soft.sum('location').values, 1.0)


# --- every system name from the command line -------------------------------------------------------------------------

def test_cli_train_gated_writes_sharing_fractions_and_checklist(tmp_path, capsys):
    run = tmp_path/'gated'
    assert main(['train', 'gated', '--data', 'synth', '--out', str(run), *GATED_TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['epochs_run'] == 2 and 0 <= out['test']['criteria_accuracy'] <= 1
    with xr.open_dataset(run/'history.nc') as h:
        sf = h.sharing_fraction.load()
    assert sf.dims == ('epoch', 'block', 'target_task', 'source_task') and sf.shape == (2, 4, 8, 8)
    assert float(sf.min()) >= 0 and float(sf.max()) <= 1
    ck = load_checklist(run)
    metrics = json.loads((run/'metrics.json').read_text())
    assert list(ck.task.values) == [t for t in TASKS if t != 'DIAG'] and ck.sizes['case'] == metrics['cases']['test']
    assert metrics['test']['checklist']['tau3']['direct']['confusion'] == checklist_confusion(ck, 3).sel(kind='direct').values.tolist()
    ev = json.loads(dermxai('evaluate', run, '--no-progress', check=True).stdout)     # the installed command
    assert ev['criteria_accuracy'] == pytest.approx(metrics['test']['criteria_accuracy'], abs=1e-6)
    assert ev['checklist']['tau1'] == metrics['test']['checklist']['tau1']
    tab = get_system('gated').paper_table(run)                        # the tour report's Table 2
    assert list(tab.index) == [*TASKS, 'criteria average'] and list(tab.columns) == ['accuracy', 'recall', 'precision']
    assert tab.loc['STR', 'precision'] == metrics['test']['STR_precision'] and tab.attrs['caption'].startswith('Table 2')
    _widgets_read_the_gated_run(run, ck, sf)


def _widgets_read_the_gated_run(run, ck, sf):
    "The widgets built from the run show exactly what it saved; `case` is the row of the run's source."
    from dermxai.vocab import TASK_CRITERION, group_label
    from dermxai.widgets import CorrelationHeatmap, SharingFractionExplorer
    from dermxai.widgets_checklist import ChecklistExplorer, ChecklistQuiz
    ce = ChecklistExplorer.from_run(run)
    lab = ce.source.labels.iloc[ck.case.values]
    assert [d if d in TASKS['DIAG'] else group_label('DIAG', d) for d in lab.diagnosis] == ck.diag_true.values.tolist()
    for t, col in TASK_CRITERION.items():
        assert [group_label(t, v) for v in lab[col]] == ck.criteria_true.sel(task=t).values.tolist(), t
    for tau in (1, 3):
        ce.tau.value = tau
        fig = ce.static_figure()
        cm = checklist_confusion(ck, tau)
        for k, kind in enumerate(['inferred', 'direct', 'rule_on_truth']):     # the widget: rows/columns (MEL, other)
            assert np.asarray(fig.data[k].z).tolist() == cm.sel(kind=kind).values[::-1, ::-1].tolist(), (tau, kind)
    i = int(np.argmax(ck.criteria_pred.values[:, 0] != ck.criteria_true.values[:, 0])) if (ck.criteria_pred.values[:, 0] != ck.criteria_true.values[:, 0]).any() else 0
    html = ce.case_table(i)
    p = float(ck.criteria_probability.isel(case=i).sel(task='PN', label=str(ck.criteria_pred.isel(case=i).sel(task='PN').item())))
    assert f'({p:.2f})' in html and f'score {int(ck.score_pred[i])} (true {int(ck.score_true[i])})' in html
    ce.case.value = i
    assert ce.case_fig.data[0].type == 'image' and f'#{int(ck.case[i])}' in ce.case_fig.layout.title.text
    quiz = ChecklistQuiz.from_run(run, n=3)
    assert quiz.model_answer() == {t: str(ck.criteria_pred.isel(case=0).sel(task=t).item()) for t in ck.task.values} | {'_diag': str(ck.diag_pred[0].item())}
    se = SharingFractionExplorer.from_run(run)
    fig = se.static_figure()
    np.testing.assert_allclose(np.asarray(fig.data[0].z, float), sf.isel(epoch=-1).sel(block='gate1').values)
    se.block.value, se.epoch.value = 'gate4', 1
    np.testing.assert_allclose(np.asarray(se.static_figure().data[0].z, float), sf.sel(epoch=1, block='gate4').values)
    ch = CorrelationHeatmap.from_run(run)
    assert ch.dataset.value.endswith('diagnosis') and len(ch.static_figure().data) == 2


@pytest.mark.parametrize('name', ['gated-binary', 'gated-half', 'gated-double', 'gated-off'])
def test_cli_train_gated_variants(tmp_path, name):
    assert main(['train', name, '--out', str(tmp_path/name), *GATED_TINY]) == 0
    cfg = json.loads((tmp_path/name/'config.json').read_text())
    expected = {'gated-binary': ('binary', True), 'gated-half': ('width', 0.5), 'gated-double': ('width', 2.0),
                'gated-off': ('gates', 'off')}[name]
    assert cfg['options'][expected[0]] == expected[1]
    ck = load_checklist(tmp_path/name)
    assert set(np.unique(ck.diag_true.values)) <= ({'rest', 'MEL'} if name == 'gated-binary' else set(TASKS['DIAG']))
    if name == 'gated-off':
        with xr.open_dataset(tmp_path/name/'history.nc') as h:
            assert (h.sharing_fraction.values == np.eye(8)).all()       # gates off: no sharing, ever


def test_cli_gated_refuses_too_small_images(tmp_path, capsys):
    assert main(['train', 'gated', '--out', str(tmp_path/'g'), '--n', '32', '--size', '64', '--no-progress']) == 2
    assert '91 pixels' in capsys.readouterr().err


def test_cli_train_location_writes_correlation(tmp_path, capsys):
    run = tmp_path/'location'
    assert main(['train', 'location', '--out', str(run), *LOCATION_TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {'mAP_class', 'mAP_image', 'location_top1', 'location_top3'} <= set(out['test'])
    assert out['test']['location_top1'] <= out['test']['location_top3']
    tab = get_system('location').paper_table(run)                     # Table 1's layout: one column, the method
    assert list(tab.columns) == ['MTL'] and list(tab.index)[-4:] == ['mAP-class', 'mAP-image', 'top-1 location', 'top-3 location']
    assert tab['MTL'].iloc[-4:].tolist() == [out['test'][k] for k in ('mAP_class', 'mAP_image', 'location_top1', 'location_top3')]
    assert tab.attrs['paper'].loc['mAP-class', 'Ensemble'] == 0.761 and tab.attrs['paper_label'].startswith('published (real data:')
    with xr.open_dataset(run/'test_predictions.nc') as p:               # the 10-crop test probabilities behind the scores
        assert p.lesion_probability.dims == ('case', 'lesion')
        assert mean_average_precision(p.lesion_true.values, p.lesion_probability.values) == pytest.approx(out['test']['mAP_class'])
    with xr.open_dataset(run/'correlation.nc') as c:
        assert {'R_labels', 'R_predicted', 'R_planted'} <= set(c.data_vars)
        np.testing.assert_allclose(c.R_planted.sum('location').values, 1.0, atol=1e-6)
        planted = c.R_planted.load()
    # the heatmap widget on the run: its empirical panel is eq. 1 on the run's data, beside the planted table
    from dermxai.widgets import CorrelationHeatmap
    ch = CorrelationHeatmap.from_run(run)
    assert ch.dataset.value.endswith('morphology')                 # the run's lesion labels come first
    fig = ch.static_figure()
    lab, tags, sites = ch.labels[ch.dataset.value], list(fig.data[0].y), list(fig.data[0].x)
    counted = [[(lab[lab[f'morph_{t}'].astype(bool)].location == s).mean() for s in sites] for t in tags]   # by hand
    np.testing.assert_allclose(np.asarray(fig.data[0].z, float), counted)
    np.testing.assert_allclose(np.asarray(fig.data[1].z, float), planted.sel(lesion=tags, location=sites).values, atol=1e-6)


@pytest.mark.parametrize('head', ['lesion', 'location'])
def test_cli_train_single_task_baselines(tmp_path, head):
    # the heads' plumbing, not the trunk, is under test here: ResNet-18 keeps it quick (`location` above uses ResNet-50)
    assert main(['train', 'location-single', '--head', head, '--backbone', 'resnet18', '--out', str(tmp_path/head),
                 *LOCATION_TINY]) == 0
    metrics = json.loads((tmp_path/head/'metrics.json').read_text())
    keys = {'lesion': {'mAP_class', 'mAP_image'}, 'location': {'location_top1', 'location_top3'}}
    assert keys[head] <= set(metrics['test']) and not (keys[{'lesion': 'location', 'location': 'lesion'}[head]] & set(metrics['test']))
    assert not (tmp_path/head/'correlation.nc').exists()
    tab = get_system('location-single').paper_table(tmp_path/head)      # Table 1's layout, the other head's rows empty
    assert list(tab.columns) == [{'lesion': 'ResNet', 'location': 'ResNet (location)'}[head]]
    own = ['mAP-class', 'mAP-image'] if head == 'lesion' else ['top-1 location', 'top-3 location']
    other = ['top-1 location', 'top-3 location'] if head == 'lesion' else ['mAP-class', 'mAP-image']
    assert tab.loc[own].notna().all(axis=None) and tab.loc[other].isna().all(axis=None)


def test_train_help_lists_each_variants_own_options():
    from dermxai.cli import build_parser
    train = build_parser()._subparsers._group_actions[0].choices['train']._subparsers._group_actions[0].choices
    text = {name: train[name].format_help() for name in ['gated', 'gated-off', 'location', 'location-single']}
    assert all(f in text['gated'] for f in ['--gates', '--width', '--gate-lr', '--binary', '--k', '--gamma-g'])
    assert '--gates' not in text['gated-off'] and '--width' not in text['gated-off']    # fixed by the variant
    assert '--head {lesion,location,both}' in text['location-single'] and '--head {' not in text['location']
    assert '--lesion' in text['location'] and '--backbone' in text['location']
