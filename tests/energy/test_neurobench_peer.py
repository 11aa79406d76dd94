"""Side-by-side with NeuroBench's synaptic-operation counter on the same spikingjelly model.

NeuroBench is installed by .ci/run with --no-deps (it would otherwise pull another torch);
the test is skipped where it is absent.
"""

import pytest
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from energy.counting import count_ops
from energy.estimate import estimate
from energy.profile import load_profile

layers_mod = pytest.importorskip("neurobench.metrics.utils.layers", reason="neurobench not installed (see .ci/run)")


def _model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), neuron.LIFNode(step_mode="s"),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 5), neuron.LIFNode(step_mode="s"), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        net[0].weight[0, 0, 1, 1] = 0.0  # a zero weight: NeuroBench skips it
        net[1].running_var.fill_(0.01)  # make the first LIF fire
    return net


def _neurobench_ops(net, x):
    inputs = {}

    def grab(name):
        def hook(module, args, output):
            inputs[name] = args[0].detach()
        return hook

    handles = [m.register_forward_hook(grab(n)) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    functional.reset_net(net)
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    modules = dict(net.named_modules())
    return {n: layers_mod.single_layer_MACs(inp, modules[n]) for n, inp in inputs.items()}


@pytest.mark.parametrize("scale", [1.0, 2.0])  # ternary input (AC for both), or multi-level (MAC for NeuroBench)
def test_effective_ops_and_ac_mac_split_match_neurobench(scale):
    net = _model()
    x = (torch.rand(3, 2, 6, 6) < 0.3).float()
    x[:, 1] *= -1
    x = x * scale
    theirs = _neurobench_ops(net, x)
    counts = count_ops(net, x, effective=True)
    ours = {layer.name: layer.records[0] for layer in counts.layers if layer.records}
    assert set(ours) == set(theirs)
    for name, (ops, spiking) in theirs.items():
        rec = ours[name]
        assert rec.effective * 3 == pytest.approx(float(ops))  # per sample x batch of 3
        assert (rec.kinds[0] in ("binary", "ternary")) == bool(spiking), name
    assert sum(ops for ops, _ in theirs.values()) > 0
    result = estimate(counts, load_profile("45nm-fp32"), convention="neurobench")
    their_ac = sum(float(o) for o, s in theirs.values() if s) / 3
    assert result.by_term_mj.get("ac_pj", 0.0) == pytest.approx(their_ac * 0.9e-9)
