"""Counts are exact whole numbers whatever the model's dtype: they are computed in float32 or wider and
summed in float64 (a float16 ones-kernel check overflowed to inf; bfloat16 rounded)."""

import pytest
import torch
from torch import nn

import snnas


def _spikes(shape, seed=0):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_convolution_on_given_spikes_counts_the_same_acs_in_every_dtype(dtype):
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.Flatten(), nn.Linear(64 * 24 * 24, 10))
    x = _spikes((2, 64, 24, 24))
    reference = snnas.count(conv, inputs=x)
    counted = snnas.count(conv.to(dtype), inputs=x.to(dtype))
    assert counted.total("acs") == reference.total("acs") > 60_000  # a float16 sum would overflow (65,504)
    assert counted.complete


def test_a_half_precision_model_takes_float32_inputs():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).to(torch.float16)
    counts = snnas.count(model, inputs=torch.rand(1, 3, 8, 8))
    assert counts.total("macs") == 8 * 3 * 9 * 6 * 6
