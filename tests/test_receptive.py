"""Aligned maps sit on their cells' receptive fields: for ResNet and VGG layers of stride 8, 16 and 32, the receptive-field
centre measured by `measure_geometry` equals the centre of the cell's exact receptive field (the support of its input
gradient in the geometry-only probe network, in double precision), and an aligned one-hot cell peaks there; for the
ResNets, bilinear upsampling does not."""
import numpy as np
import pytest
import torch

from dermxai.models_attnmel import AttnMelNet
from dermxai.models_resnet import ResNetClassifier
from dermxai.receptive import capture, linear_probe, measure_geometry, upsample

CASES = [('resnet14', 'net.layer2', 8), ('resnet14', 'net.layer3', 16), ('resnet14', 'net.layer4', 32),
         ('vgg16', 'features.23', 8), ('vgg16', 'features.33', 16), ('vgg16', 'features.43', 32)]
MODELS = {}


def model(name):
    if name not in MODELS: MODELS[name] = ResNetClassifier(14, 2).eval() if name == 'resnet14' else AttnMelNet().eval()
    return MODELS[name]


def support_centre(net, layer, probe, cell):
    "Centre (row, column) of the exact receptive field of `cell` (i, i): the span of pixels its gradient reaches."
    lin = linear_probe(net).double()
    x = torch.full((1, 3, probe, probe), 10.0, dtype=torch.float64, requires_grad=True)
    f = capture(lin, x, [layer], stop=True)[1][layer]
    g = torch.autograd.grad(f[0, :, cell, cell].sum(), x)[0][0].abs().sum(0)
    rows, cols = g.sum(1).nonzero()[:, 0], g.sum(0).nonzero()[:, 0]
    assert 0 < rows.min() and rows.max() < probe - 1, 'the receptive field is cut off by the border: use a larger probe'
    return (rows.min() + rows.max()).item() / 2, (cols.min() + cols.max()).item() / 2


@pytest.mark.parametrize('name,layer,stride', CASES)
def test_aligned_maps_peak_on_the_receptive_field(name, layer, stride):
    net = model(name)
    geo = measure_geometry(net, layer)
    assert geo.stride == stride
    assert support_centre(net, layer, 8 * stride, 4) == (stride * 4 + geo.offset,) * 2   # an input of 8 cells, the 5th
    one = torch.zeros(1, 4, 4); one[0, 1, 1] = 1
    peak = lambda m: np.argwhere(m[0].numpy() == m.max().item()).mean(0)
    assert list(peak(upsample(one, 4 * stride, geo))) == [stride + geo.offset] * 2
    if name == 'resnet14':   # padded stride-2 convolutions: the bilinear convention is half a cell off
        assert list(peak(upsample(one, 4 * stride))) == [stride + stride / 2 - 0.5] * 2 != [stride + geo.offset] * 2
