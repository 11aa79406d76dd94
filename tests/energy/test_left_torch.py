"""A forward that leaves torch for a moment (a NumPy encoder, ``.tolist()``) hides the work after it
from the counter: the counts are then marked incomplete, never silently low."""

import numpy as np
import pytest
import torch
from torch import nn

import snnas
from snnas.energy.counting import LEFT_TORCH


class _Encoded(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.fc = nn.Linear(16, 8)

    def forward(self, x):
        if self.how == "numpy":  # a Poisson encoder written with NumPy
            spikes = torch.from_numpy((np.random.default_rng(0).random(x.shape) < x.numpy()).astype(np.float32))
        elif self.how == "tolist":
            spikes = torch.tensor((x > 0.5).float().tolist())
        else:
            spikes = (x > 0.5).float()
        return self.fc(spikes)


@pytest.mark.parametrize("how", ["numpy", "tolist"])
def test_a_forward_that_leaves_torch_is_marked_incomplete(how):
    counts = snnas.count(_Encoded(how), inputs=torch.rand(2, 16))
    assert not counts.complete and LEFT_TORCH in counts.unsupported
    assert not snnas.price(counts).complete


def test_the_same_encoder_in_torch_is_complete():
    counts = snnas.count(_Encoded("torch"), inputs=torch.rand(2, 16))
    assert counts.complete and counts.total("acs") > 0
