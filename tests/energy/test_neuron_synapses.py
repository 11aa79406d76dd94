"""Synapses inside a neuron module are counted: snnTorch's RLeaky holds its recurrent Linear inside
the neuron, whose update alone was counted (its recurrent work vanished)."""

import pytest
import torch
from torch import nn

import snnas

snn = pytest.importorskip("snntorch")


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 20)
        self.lif = snn.RLeaky(beta=0.9, linear_features=20)

    def forward(self, x):  # [T, B, 10]
        spk, mem = self.lif.init_rleaky()
        out = []
        for step in x:
            spk, mem = self.lif(self.fc(step), spk, mem)
            out.append(spk)
        return torch.stack(out)


def test_an_rleaky_counts_its_recurrent_synapses_on_the_previous_spikes():
    model = _Recurrent()
    spikes_seen = []
    model.lif.recurrent.register_forward_hook(lambda m, args, out: spikes_seen.append(args[0].clone()))
    x = torch.rand(6, 1, 10) * 3
    counts = snnas.count(model, inputs=x, batch_dim=1)
    layers = {layer.name: layer for layer in counts.layers}
    expected = sum(float((s != 0).sum()) for s in spikes_seen[-6:]) * 20  # each spike reaches 20 neurons
    assert layers["lif.recurrent"].total("acs") == expected > 0
    assert layers["lif"].extras["neuron_updates"] == 6 * 20 and counts.complete
