"""Fused neurons compute what spikingjelly's reference computes, bit for bit, forward and backward."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron, surrogate

import snnas.nas.models.neurons as neurons
from snnas.nas.models import build_model
from snnas.nas.models.fused import fused_lif
from tests.conftest import tiny_arch

SURROGATES = [surrogate.Sigmoid(), surrogate.ATan(), surrogate.Sigmoid(alpha=2.0), surrogate.PiecewiseQuadratic()]


def _twice(fn, x):
    """Two calls in a row (the second starts from the state the first left), gradients of both."""
    x = x.detach().clone().requires_grad_()
    first = fn(x)
    second = fn(x * 0.5)
    g = torch.linspace(-1, 1, first.numel()).reshape(first.shape)
    ((first * g).sum() + (second * g.flip(0)).sum()).backward()
    return first, second, x.grad


def _node(cls, options, sur):
    extra = {"tau": 2.0} if cls is neuron.LIFNode else {"init_tau": 2.0}
    return cls(v_threshold=options[1], v_reset=options[2], decay_input=options[0], surrogate_function=sur,
               detach_reset=True, step_mode="m", **extra)


@pytest.mark.parametrize("cls", [neuron.LIFNode, neuron.ParametricLIFNode])
@pytest.mark.parametrize("options", list(itertools.product([True, False], [1.0, 0.5], [0.0, -0.2])))
@pytest.mark.parametrize("sur", SURROGATES, ids=lambda s: f"{type(s).__name__}{s.alpha}")
def test_fused_lif_and_plif_equal_spikingjelly_bit_for_bit(cls, options, sur):
    torch.manual_seed(0)
    x = torch.randn(5, 3, 40) * 2
    reference, ours = _node(cls, options, sur), _node(cls, options, sur)
    learnable = cls is neuron.ParametricLIFNode
    want = _twice(reference, x)
    got = _twice(lambda inp: fused_lif(ours, inp, learnable=learnable), x)
    for a, b in zip(want, got):
        assert torch.equal(a, b)
    assert torch.equal(reference.v, ours.v)
    if learnable:
        assert torch.equal(reference.w.grad, ours.w.grad)


@pytest.mark.parametrize("sur", ["sigmoid", "atan"])
@pytest.mark.parametrize("variant, tau", [("a2os2a", 2.0), ("a2os2a", 10.0), ("ternary_spike", 2.0), ("lif", 1.25)])
def test_fused_ternary_equals_its_step_by_step_autograd(sur, variant, tau, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(5, 3, 40) * 2
    got = _twice(neurons.TernaryLIF(surrogate=sur, variant=variant, tau=tau), x)
    monkeypatch.setattr(neurons, "fused_ternary", lambda *a, **k: None)
    want = _twice(neurons.TernaryLIF(surrogate=sur, variant=variant, tau=tau), x)
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_options_the_fused_neuron_does_not_cover_use_spikingjellys_path():
    soft = neuron.LIFNode(v_reset=None, detach_reset=True, step_mode="m")
    attached = neuron.LIFNode(detach_reset=False, step_mode="m")
    x = torch.randn(3, 4)
    assert fused_lif(soft, x) is None and fused_lif(attached, x) is None
    with torch.no_grad():  # evaluation: spikingjelly's kernels
        assert fused_lif(neuron.LIFNode(detach_reset=True, step_mode="m"), x) is None


@pytest.mark.parametrize("kind", ["lif", "plif", "ternary"])
def test_a_model_trains_along_the_same_trajectory_fused_or_not(kind, monkeypatch):
    arch = tiny_arch(neuron=kind, attention=("ssa", "dssa"))
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 4, (4,))

    def losses():
        torch.manual_seed(0)
        model = build_model(arch)
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
        out = []
        for _ in range(3):
            functional.reset_net(model)
            loss = F.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            out.append(loss.item())
        return out

    fused = losses()
    monkeypatch.setattr(neurons, "fused_lif", lambda *a, **k: None)
    monkeypatch.setattr(neurons, "fused_ternary", lambda *a, **k: None)
    assert losses() == fused
