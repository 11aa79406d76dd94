import pytest
import torch
from spikingjelly.activation_based import functional

from snnas.nas.models.neurons import NEURONS, make_neuron


def test_lif_follows_the_papers_dynamics_with_hard_reset():
    lif = make_neuron("lif")
    x = torch.full((4, 1), 1.5)
    # H1 = 0 + (1.5 - 0)/2 = 0.75 (no spike); H2 = 0.75 + (1.5 - 0.75)/2 = 1.125 -> spike, reset to 0;
    # H3 = 0.75; H4 = 1.125 -> spike
    assert lif(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_ternary_lif_fires_signed_spikes_and_resets_on_either_sign():
    ternary = make_neuron("ternary")
    x = torch.tensor([1.5, -1.2, 0.4, 0.4, 0.9]).unsqueeze(1)
    # U1 = 1.5 -> +1, H = 0;  U2 = -1.2 -> -1, H = 0;  U3 = 0.4 -> 0, H = 0.2;
    # U4 = 0.2 + 0.4 = 0.6 -> 0, H = 0.3;  U5 = 0.3 + 0.9 = 1.2 -> +1
    assert ternary(x).flatten().tolist() == [1.0, -1.0, 0.0, 0.0, 1.0]


def test_ternary_lif_passes_surrogate_gradients_of_both_signs():
    x = torch.tensor([[0.9], [-0.9]], requires_grad=True)  # [T=2, 1]: U1 = 0.9, U2 = 0.45 - 0.9
    make_neuron("ternary")(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad != 0)


@pytest.mark.parametrize("name", NEURONS.names())
def test_every_neuron_emits_what_it_declares_and_resets(name):
    neuron = make_neuron(name)
    x = torch.randn(6, 3, 5) * 2
    first = neuron(x)
    allowed = {"binary": {0.0, 1.0}, "ternary": {-1.0, 0.0, 1.0}}.get(type(neuron).OUTPUT_KIND)
    if allowed is not None:
        assert set(first.unique().tolist()) <= allowed
    else:
        assert (first >= 0).all()
    functional.reset_net(neuron)
    assert torch.equal(neuron(x), first)


def test_neuron_threshold_is_configurable():
    x = torch.full((1, 1), 0.3)  # IF integrates without leak: H1 = 0.3
    assert make_neuron("if", v_threshold=0.1)(x).item() == 1.0
    assert make_neuron("if", v_threshold=0.5)(x).item() == 0.0
