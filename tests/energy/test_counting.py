"""Counts checked against hand-computed answers on tiny modules."""

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from energy.counting import count_ops
from energy.operands import BINARY, MULTILEVEL, REAL, TERNARY, classify
from nas.models import ATTENTION, build_model
from tests.conftest import tiny_arch


class MatMul(nn.Module):
    def forward(self, a, b):
        return a @ b


def _linear(weight, bias=False):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


@pytest.mark.parametrize("values, kind", [
    ([0.0, 1.0, 1.0], BINARY), ([0.0, 0.0], BINARY), ([1.0, -1.0, 0.0], TERNARY),
    ([2.0, 0.0, 1.0], MULTILEVEL), ([0.5, 0.0, 0.5], MULTILEVEL), ([0.0, 1.3, -1.0], REAL),
])
def test_operands_are_classified_by_their_values(values, kind):
    assert classify(torch.tensor(values)).kind == kind


def test_padded_conv_counts_border_exact_acs_not_rate_times_dense():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 0] = 1.0  # a corner spike reaches only 4 of the 9 output positions
    layer = count_ops(conv, x).layers[0]
    assert layer.total("dense") == 9 * 9 * 2  # 162
    assert layer.total("ac") == 4 * 2  # 8 exact accumulates
    assert layer.total("rate_dense") == pytest.approx(162 / 9)  # the papers' estimate: 18
    assert layer.total("macs") == 0 and layer.in_rate == pytest.approx(1 / 9)


def test_strided_grouped_conv_counts_each_spike_once_per_reached_output():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, bias=False)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0, 1, 1] = 1.0  # group 0; rows/cols 1 reach outputs 0 and 1 on each axis -> 4 positions
    x[0, 1, 3, 3] = 1.0  # group 1; row/col 3 reaches output 1 only -> 1 position
    counts = count_ops(conv, x)
    assert counts.total("ac") == 4 * 2 + 1 * 2  # two output channels per group


def test_spike_spike_matmul_counts_exact_coincidences():
    a = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    counts = count_ops(MatMul(), (a, b), batch_size=1)
    assert counts.total("ac_coincidence") == 5  # (0,0,0) (0,0,1) (0,2,0) (1,1,1) (1,2,0)
    assert counts.total("dense") == 12 and counts.total("macs") == 0


def test_spike_real_matmul_counts_non_zeros_times_the_other_dimension():
    a = torch.tensor([[1.0, 0.0, 1.0]])
    b = torch.randn(3, 4)
    assert count_ops(MatMul(), (a, b), batch_size=1).total("ac") == 2 * 4


def test_ternary_input_is_a_signed_ac_in_snnas_and_an_ac_in_neurobench():
    layer = _linear(torch.ones(3, 4))
    counts = count_ops(layer, torch.tensor([[1.0, -1.0, 0.0, 1.0]]), effective=True)
    assert counts.total("ac_signed") == 3 * 3 and counts.total("ac") == 0
    rec = counts.layers[0].records[0]
    assert rec.effective == 9 and rec.kinds[0] == TERNARY


def test_neurobench_effective_ops_skip_zero_inputs_and_zero_weights():
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0], [4.0, 5.0, 6.0]])
    counts = count_ops(_linear(weight), torch.tensor([[0.0, 1.3, -1.0]]), effective=True)
    rec = counts.layers[0].records[0]
    assert rec.dense == 9 and rec.effective == 4
    assert counts.total("macs") == 9  # real input: snnas charges the dense product


def test_multilevel_inputs_cost_one_accumulate_per_level():
    layer = _linear(torch.ones(2, 3))
    assert count_ops(layer, torch.tensor([[2.0, 0.0, 1.0]])).total("ac_multi") == (2 + 1) * 2
    assert count_ops(layer, torch.tensor([[0.5, 0.0, 0.5]])).total("ac_multi") == 2 * 2  # scaled spikes {0, s}


def test_bias_is_kept_apart_from_dense_counts():
    counts = count_ops(nn.Linear(4, 3), torch.ones(2, 4))
    assert counts.total("dense") == 12 and counts.total("bias") == 3  # per sample


def test_counts_are_per_sample():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    one, four = count_ops(conv, torch.ones(1, 1, 2, 2)), count_ops(conv, torch.ones(4, 1, 2, 2))
    assert one.total("ac") == four.total("ac") == 4


def test_neuron_internals_are_one_update_per_neuron_and_step():
    model = build_model(tiny_arch())
    counts = count_ops(model, torch.rand(2, 3, 16, 16))
    neurons = [c for c in counts.layers if c.total("neuron_updates")]
    assert neurons and all(not c.records for c in neurons)
    stem_lif = next(c for c in counts.layers if c.name == "stem.convs.0.neuron")
    assert stem_lif.total("neuron_updates") == 2 * 2 * 16 * 16  # T * C(16/8) * H * W per sample


def test_residual_additions_are_counted_in_the_block():
    model = build_model(tiny_arch())
    counts = count_ops(model, torch.rand(2, 3, 16, 16))
    block = next(c for c in counts.layers if c.name == "stages.0.block0")
    assert block.total("residual_adds") == 2 * 2 * 16 * 8 * 8  # two shortcuts of [T, C, H, W]


@pytest.mark.parametrize("attention", ATTENTION.names())
def test_dense_totals_agree_with_fvcore(attention):
    model = build_model(tiny_arch(attention=(attention, attention))).eval()
    x = torch.rand(2, 3, 16, 16)
    counts = count_ops(model, x)
    flops = FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    fv = sum(by_op.get(k, 0) for k in ("conv", "matmul", "linear", "einsum", "bmm"))
    assert counts.total("dense") * 2 == fv  # fvcore counts the whole batch of 2


def test_in_place_additions_are_counted_like_out_of_place_ones():
    class InPlace(nn.Module):
        def forward(self, x, y):
            x = x.clone()
            x += y  # aten.add_.Tensor
            return x

    counts = count_ops(InPlace(), (torch.ones(2, 3), torch.ones(2, 3)))
    assert counts.total("residual_adds") == 3  # per sample
    assert counts.unsupported == {}


def test_nothing_is_silently_zero_unknown_ops_are_listed():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.erfinv(x * 0.5)

    counts = count_ops(Odd(), torch.rand(3))
    assert "aten.erfinv" in counts.unsupported
    assert count_ops(build_model(tiny_arch()), torch.rand(1, 3, 16, 16)).unsupported == {}


def test_counting_leaves_the_model_in_its_mode_and_its_neurons_reset():
    model = build_model(tiny_arch()).train()
    count_ops(model, torch.rand(2, 3, 16, 16))
    assert model.training
    first = count_ops(model, torch.rand(2, 3, 16, 16) * 5)
    again = count_ops(model, torch.rand(2, 3, 16, 16) * 5)
    assert first.total("dense") == again.total("dense")


@pytest.mark.slow
@pytest.mark.parametrize("name", __import__("nas.models.zoo", fromlist=["ZOO"]).ZOO)
def test_every_zoo_model_is_counted_with_no_unsupported_op(name):
    from nas.models.zoo import get

    arch = get(name).arch.replace(time_steps=1)
    counts = count_ops(build_model(arch), torch.rand(1, arch.in_channels, arch.img_size, arch.img_size))
    assert counts.unsupported == {}
    assert counts.total("macs") > 0 and counts.total("dense") > counts.total("macs")
