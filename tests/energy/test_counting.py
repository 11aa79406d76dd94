"""Counts checked against hand-computed answers on tiny modules."""

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn

from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.operands import BINARY, MULTILEVEL, REAL, TERNARY, classify
from snnas.energy.profile import load_profile
from snnas.nas.models import ATTENTION, build_model
from tests.conftest import tiny_arch


class MatMul(nn.Module):
    def forward(self, a, b):
        return a @ b


def _linear(weight, bias=False):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


@pytest.mark.parametrize("values, kind, levels", [
    ([0.0, 1.0, 1.0], BINARY, [0, 1, 1]), ([0.0, 0.0], BINARY, [0, 0]), ([1.0, -1.0, 0.0], TERNARY, [1, 1, 0]),
    ([2.0, 0.0, 1.0], MULTILEVEL, [2, 0, 1]), ([0.0, 2.0, 3.0], MULTILEVEL, [0, 2, 3]),  # no 1: still counts
    ([0.5, 0.0, 0.5], MULTILEVEL, [1, 0, 1]), ([0.125, 0.25], MULTILEVEL, [1, 2]),  # scaled spikes
    ([1 / 9, 2 / 9, 0.0], MULTILEVEL, [1, 2, 0]),  # spikes averaged over a 3 x 3 window
    ([1.5, 3.0, 0.0], MULTILEVEL, [1, 2, 0]),  # spikes of amplitude 1.5
    ([0.75, 0.0, 1.0], MULTILEVEL, [3, 0, 4]),  # spike counts averaged over 4 positions
    ([0.0, 1.3071, -1.0], REAL, None), ([0.2, 0.30001], REAL, None), ([float("nan"), 1.0], REAL, None),
    ([1 / 255, 200 / 255], REAL, None),  # 8-bit pixels: more than 64 levels
])
def test_operands_are_classified_by_their_values(values, kind, levels):
    operand = classify(torch.tensor(values))
    assert operand.kind == kind
    assert (operand.levels is None) if levels is None else operand.levels.tolist() == levels


def test_an_integer_events_level_does_not_depend_on_the_rest_of_its_tensor():
    alone, together = classify(torch.tensor([0.0, 2.0, 2.0])), classify(torch.tensor([0.0, 2.0, 2.0, 1.0]))
    assert alone.levels.tolist() == [0, 2, 2] and together.levels.tolist()[:3] == [0, 2, 2]


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
    counts = count_ops(MatMul(), (a, b), batch_dim=None)
    assert counts.total("ac_coincidence") == 5  # (0,0,0) (0,0,1) (0,2,0) (1,1,1) (1,2,0)
    assert counts.total("dense") == 12 and counts.total("macs") == 0


def test_spike_real_matmul_counts_non_zeros_times_the_other_dimension():
    a = torch.tensor([[1.0, 0.0, 1.0]])
    b = torch.randn(3, 4)
    assert count_ops(MatMul(), (a, b), batch_dim=None).total("ac") == 2 * 4


def test_ternary_input_is_a_signed_ac_in_snnas_and_an_ac_in_neurobench():
    layer = _linear(torch.ones(3, 4))
    counts = count_ops(layer, torch.tensor([[1.0, -1.0, 0.0, 1.0]]), effective=True)
    assert counts.total("ac_signed") == 3 * 3 and counts.total("ac") == 0
    rec = counts.layers[0].records[0]
    assert rec.effective == 9 and rec.kinds[0] == TERNARY


def test_neurobench_effective_ops_skip_zero_inputs_and_zero_weights():
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0], [4.0, 5.0, 6.0]])
    counts = count_ops(_linear(weight), torch.tensor([[0.0, 1.3071, -1.0]]), effective=True)
    rec = counts.layers[0].records[0]
    assert rec.dense == 9 and rec.effective == 4
    assert counts.total("macs") == 9  # real input: snnas charges the dense product


def test_multilevel_inputs_cost_one_accumulate_per_level():
    layer = _linear(torch.ones(2, 3))
    assert count_ops(layer, torch.tensor([[2.0, 0.0, 1.0]])).total("ac_multi") == (2 + 1) * 2
    assert count_ops(layer, torch.tensor([[0.0, 2.0, 3.0]])).total("ac_multi") == (2 + 3) * 2  # no level 1
    assert count_ops(layer, torch.tensor([[0.5, 0.0, 0.5]])).total("ac_multi") == 2 * 2  # scaled spikes {0, s}


def test_a_samples_class_and_counts_do_not_depend_on_its_batch():
    layer = _linear(torch.ones(2, 3))
    binary, real = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[0.3137, 0.7529, 0.1098]])  # pixels k / 255
    alone = count_ops(layer, binary)
    together = count_ops(layer, torch.cat([binary, real]))
    assert alone.total("ac") == 4 and alone.total("macs") == 0
    assert together.total("ac") == 4 / 2 and together.total("macs") == 6 / 2  # per sample: (4 + 0) / 2, (0 + 6) / 2
    assert together.per_sample


def test_bias_is_kept_apart_from_dense_counts():
    counts = count_ops(nn.Linear(4, 3), torch.ones(2, 4))
    assert counts.total("dense") == 12 and counts.total("bias") == 3  # per sample


def test_counts_are_per_sample():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    one, four = count_ops(conv, torch.ones(1, 1, 2, 2)), count_ops(conv, torch.ones(4, 1, 2, 2))
    assert one.total("ac") == four.total("ac") == 4
    batched = count_ops(conv, torch.ones(4, 1, 2, 2), per_sample=False)
    assert batched.total("ac") == 4 and not batched.per_sample


def test_neuron_internals_are_one_update_per_neuron_and_step():
    model = build_model(tiny_arch())
    counts = count_ops(model, torch.rand(2, 3, 16, 16))
    neurons = [c for c in counts.layers if c.total("neuron_updates")]
    assert neurons and all(not c.records for c in neurons)
    stem_lif = next(c for c in counts.layers if c.name == "stem.convs.0.neuron")
    assert stem_lif.total("neuron_updates") == 2 * 2 * 16 * 16  # T * C(16/8) * H * W per sample


def test_the_counters_own_bookkeeping_is_not_counted_as_model_work():
    lif = sj_neuron.LIFNode(step_mode="m")
    counts = count_ops(lif, torch.rand(2, 1, 8) * 3, batch_dim=1)
    (row,) = counts.layers
    assert row.total("neuron_updates") == 2 * 8
    assert {k for k, v in row.extras.items() if v} <= {"neuron_updates", "spikes"}  # no reductions


def test_stateful_layers_that_are_not_neurons_keep_their_synapses():
    net = nn.Sequential(sj_layer.DropConnectLinear(4, 3), sj_neuron.LIFNode(), sj_layer.Dropout(0.5),
                        nn.Linear(3, 2))
    counts = count_ops(net, torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    rows = {layer.name: layer for layer in counts.layers}
    assert rows["0"].total("ac") >= 3 * 3  # in eval it also propagates a variance: one more product
    assert rows["1"].total("neuron_updates") == 3 and not rows["1"].records
    assert rows["3"].total("dense") == 6


def test_snntorch_neurons_returning_spikes_and_membrane_keep_their_spikes():
    snn = pytest.importorskip("snntorch", reason="snntorch not installed (see .ci/run)")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif, self.out = nn.Linear(4, 3), snn.Leaky(beta=0.5), nn.Linear(3, 2)
            with torch.no_grad():
                self.fc.weight.fill_(1.0)
                self.fc.bias.zero_()

        def forward(self, x):  # [T, B, 4]
            mem, total = self.lif.init_leaky(), 0
            for step in x:
                spk, mem = self.lif(self.fc(step), mem)
                total = total + self.out(spk)
            return total

    counts = count_ops(Net(), torch.ones(3, 1, 4), batch_dim=1)
    rows = {layer.name: layer for layer in counts.layers}
    assert rows["lif"].total("neuron_updates") == 3 * 3 and rows["lif"].total("spikes") == 3 * 3
    assert rows["out"].total("ac") == 3 * 3 * 2 and rows["out"].total("macs") == 0


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


def test_work_on_weights_alone_is_folded_not_counted():
    class Standardised(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4))

        def forward(self, x):
            w = (self.weight - self.weight.mean()) / self.weight.std()  # weight-only: done once at deployment
            return x @ w.t()

    counts = count_ops(Standardised(), torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    (row,) = counts.layers
    assert row.total("ac") == 2 * 3 and row.records[0].op == "linear"
    assert not any(row.total(k) for k in ("reductions", "products", "nonlinear", "residual_adds"))


def test_an_uncounted_op_makes_every_estimate_incomplete():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.zeta(x + 2.0, torch.tensor(2.0))

    counts = count_ops(Odd(), torch.rand(3))
    assert "aten.special_zeta" in counts.unsupported and not counts.complete
    result = estimate(counts, load_profile("45nm-fp32"))
    assert not result.complete and "op aten.special_zeta" in result.missing
    assert count_ops(build_model(tiny_arch()), torch.rand(1, 3, 16, 16)).unsupported == {}


def test_batchnorm_of_spikes_before_a_conv_is_folded_into_it_or_priced():
    net = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 2, 3, padding=1, bias=False)).eval()
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[0].bias.fill_(0.5)
        net[0].running_mean.fill_(0.13)
        net[0].running_var.fill_(0.7)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 0] = 1.0
    folded, priced = count_ops(net, x), count_ops(net, x, bn_folded=False)
    assert folded.total("ac") == 4 * 2 and folded.total("macs") == 0  # the conv sees the spike
    assert priced.total("macs") == 9 * 9 * 2 and priced.total("ac") == 0  # the conv sees BN's real output
    fp32 = load_profile("45nm-fp32")
    assert "bn_pj" not in estimate(folded, fp32).by_term_mj
    assert estimate(priced, fp32).by_term_mj["bn_pj"] == pytest.approx(9 * 4.6e-9)


def test_counting_leaves_the_model_in_its_mode_and_its_neurons_reset():
    model = build_model(tiny_arch()).train()
    count_ops(model, torch.rand(2, 3, 16, 16))
    assert model.training
    first = count_ops(model, torch.rand(2, 3, 16, 16) * 5)
    again = count_ops(model, torch.rand(2, 3, 16, 16) * 5)
    assert first.total("dense") == again.total("dense")


@pytest.mark.slow
@pytest.mark.parametrize("name", __import__("snnas.nas.models.zoo", fromlist=["ZOO"]).ZOO)
def test_every_zoo_model_is_counted_with_no_unsupported_op(name):
    from snnas.nas.models.zoo import get

    arch = get(name).arch.replace(time_steps=1)
    counts = count_ops(build_model(arch), torch.rand(1, arch.in_channels, arch.img_size, arch.img_size))
    assert counts.unsupported == {}
    assert counts.total("macs") > 0 and counts.total("dense") > counts.total("macs")


@pytest.mark.parametrize("neuron", ["lif", "ternary"])
def test_the_searchs_batched_count_agrees_with_per_sample_counts_on_real_digits(neuron):
    """The search counts its held-out digits in one batched pass (``per_sample=False``, 2-4x faster);
    with real images at the input only a fractional quantum can differ (a head fed by averaged spike
    counts), which moves the snnas energy by ~0.1%, and the paper conventions not at all."""
    from snnas.energy.conventions import CONVENTIONS
    from snnas.nas.data import sample_digits
    from snnas.nas.models.attention.dssa import calibrate_rates
    from tests.energy.formats import awake

    x = sample_digits(8, channels=3, size=16)
    fp32 = load_profile("45nm-fp32")
    for attention in ATTENTION.names():
        model = awake(build_model(tiny_arch(neuron=neuron, attention=(attention, attention))))
        calibrate_rates(model, x)
        one, batched = count_ops(model, x), count_ops(model, x, per_sample=False)
        for convention in set(CONVENTIONS) - {"neurobench"}:
            expected = estimate(one, fp32, convention=convention).total_mj
            tolerance = 0.005 if convention == "snnas" else 1e-9
            assert estimate(batched, fp32, convention=convention).total_mj == pytest.approx(expected, rel=tolerance)


def test_progress_is_reported_after_every_counted_sample():
    seen = []
    count_ops(nn.Sequential(nn.Linear(4, 3)), torch.rand(3, 4), per_sample_loop=True,
              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seen.clear()
    count_ops(nn.Sequential(nn.Linear(4, 3)), torch.rand(3, 4), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 3)]  # one batched pass counted the three samples
    seen.clear()
    count_ops(nn.Sequential(nn.Linear(4, 3)), torch.rand(3, 4), per_sample=False,
              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]
