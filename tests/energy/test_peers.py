"""Two peers, the same models and inputs: spikingjelly 2.0's op counters and NeuroBench 2.3.

Each peer's counting rules are a convention applied to snnas's per-op records
(``energy.conventions``: ``spikingjelly``, ``neurobench``), so the peer's totals must come out
exactly; snnas's own exact counts differ from them only where the rules differ (README,
"Against peers"):

* spikingjelly counts an input that is not exactly binary (ternary, multi-level) as real (MACs),
  charges BatchNorm's affine elements as MACs, and counts a binary x multi-level matmul as
  non-zeros of the binary side x the other dimension (snnas: level-weighted coincidences).
* NeuroBench counts conv / linear layers only (no functional matmuls), effective ops (zero
  weights and bias excluded), and AC only for binary or ternary inputs.
"""

import pytest
import torch
from spikingjelly.activation_based.functional import reset_net
from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter
from torch import nn

from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.operands import BINARY, TERNARY
from snnas.energy.profile import load_profile
from snnas.nas.models import build_model
from tests.conftest import tiny_arch
from tests.energy.formats import awake
from tests.energy.test_formats import SJ

MODELS = {name: SJ[name] for name in ("spike_driven_transformer", "spikformer", "ms_resnet", "qkformer")}
MODELS.update({f"snnas-{a}": (lambda a=a: build_model(tiny_arch(attention=(a, a))), (2, 3, 16, 16), 0)
               for a in ("ssa", "a2os2a", "dssa")})


def _model_and_input(name):
    from snnas.nas.models.attention.dssa import calibrate_rates

    make, shape, batch_dim = MODELS[name]
    torch.manual_seed(0)
    model, x = awake(make()), torch.rand(*shape)
    calibrate_rates(model, x)  # DSSA's scales fixed, as after training: the same network on any batch
    return model, x, batch_dim


def spikingjelly_counts(model, x) -> tuple[float, dict[str, float]]:
    """spikingjelly 2.0's own count of one forward pass: (synaptic ops, MACs by aten op)."""
    synops, macs = SynOpCounter(), MACCounter()
    reset_net(model)
    with torch.no_grad(), DispatchCounterMode([synops, macs]):
        model(x)
    reset_net(model)
    return synops.get_total(), {str(op): value for op, value in macs.get_counts()["Global"].items()}


@pytest.mark.parametrize("name", MODELS)
def test_spikingjellys_synop_and_mac_counters_agree_under_their_rules(name):
    model, x, batch_dim = _model_and_input(name)
    their_synops, their_macs = spikingjelly_counts(model, x)
    counts = count_ops(model, x, batch_dim=batch_dim)
    batch = x.shape[batch_dim]
    priced = estimate(counts, load_profile("45nm-fp32"), convention="spikingjelly").by_term_mj
    assert priced["ac_pj"] / 0.9e-9 * batch == pytest.approx(their_synops, rel=1e-9)
    assert priced["mac_pj"] / 4.6e-9 * batch == pytest.approx(sum(their_macs.values()), rel=1e-9)
    assert counts.total("bn") * batch == their_macs["aten.native_batch_norm.default"]  # folded by snnas
    assert their_synops > 0  # the comparison is not vacuous


def _neurobench_layers(model, x):
    layers_mod = pytest.importorskip("neurobench.metrics.utils.layers", reason="neurobench not installed (.ci/run)")
    inputs: dict[str, list[torch.Tensor]] = {}
    names = {m: n for n, m in model.named_modules()}

    def grab(module, args, output):
        inputs.setdefault(names[module], []).append(args[0].detach())

    from neurobench.blocks.layer import STATELESS_LAYERS  # the layers NeuroBench counts

    handles = [m.register_forward_hook(grab) for m in model.modules() if isinstance(m, STATELESS_LAYERS)]
    reset_net(model)
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    reset_net(model)
    modules = dict(model.named_modules())
    return {n: [layers_mod.single_layer_MACs(i, modules[n]) for i in seen] for n, seen in inputs.items()}


@pytest.mark.parametrize("name", MODELS)
def test_neurobench_effective_ops_and_ac_mac_split_agree(name):
    model, x, batch_dim = _model_and_input(name)
    theirs = _neurobench_layers(model, x)
    counts = count_ops(model, x, batch_dim=batch_dim, effective=True)
    ours = {layer.name: [r for r in layer.records if r.op in ("conv", "linear")] for layer in counts.layers}
    batch = x.shape[batch_dim]
    assert theirs and sum(float(ops) for calls in theirs.values() for ops, _ in calls) > 0
    for layer, calls in theirs.items():
        assert len(ours[layer]) == len(calls), layer
        for rec, (ops, spiking) in zip(ours[layer], calls):
            assert rec.effective * batch == pytest.approx(float(ops), rel=1e-9), layer
            assert (rec.kinds[0] in (BINARY, TERNARY)) == bool(spiking), layer
    result = estimate(counts, load_profile("45nm-fp32"), convention="neurobench")
    their_ac = sum(float(o) for calls in theirs.values() for o, s in calls if s) / batch
    assert result.by_term_mj.get("ac_pj", 0.0) == pytest.approx(their_ac * 0.9e-9, rel=1e-9)


@pytest.mark.parametrize("scale", [1.0, 2.0])  # ternary input (AC for both), or multi-level (MAC for NeuroBench)
def test_neurobench_classes_ternary_as_ac_and_multilevel_as_mac(scale):
    from spikingjelly.activation_based import neuron

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), neuron.LIFNode(step_mode="s"),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 5), neuron.LIFNode(step_mode="s"), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        net[0].weight[0, 0, 1, 1] = 0.0  # a zero weight: NeuroBench skips it
        net[1].running_var.fill_(0.01)  # make the first LIF fire
    x = (torch.rand(3, 2, 6, 6) < 0.3).float()
    x[:, 1] *= -1
    x = x * scale
    theirs = _neurobench_layers(net, x)
    counts = count_ops(net, x, effective=True)
    ours = {layer.name: layer.records[0] for layer in counts.layers if layer.records}
    assert set(ours) == set(theirs)
    for name, ((ops, spiking),) in theirs.items():
        assert ours[name].effective * 3 == pytest.approx(float(ops))
        assert (ours[name].kinds[0] in (BINARY, TERNARY)) == bool(spiking), name
