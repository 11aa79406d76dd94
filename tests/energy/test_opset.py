"""Every op of torch's Core ATen opset (what torch.export decomposes to) is classified: counted by a
handler, free because it does no arithmetic, or a backward op no forward pass runs."""

import pytest
import torch
from torch import nn

import snnas
from snnas.energy.handlers import BACKWARD_OPS, FREE_OPS, HANDLERS


def _core_ops() -> set[str]:
    names = set()
    for name in dir(torch.ops.aten):
        packet = getattr(torch.ops.aten, name, None)
        for overload in getattr(packet, "overloads", lambda: [])():
            if torch.Tag.core in getattr(packet, overload).tags:
                names.add(name)
    return names


def test_every_core_aten_op_is_classified():
    core = _core_ops()
    assert len(core) > 150  # torch 2.13: 160
    unknown = sorted(n for n in core if n not in HANDLERS and n not in FREE_OPS and n not in BACKWARD_OPS)
    assert unknown == []


class _Ops(nn.Module):
    def forward(self, x):  # x [B, 8, 8]
        values = torch.sort(x, dim=-1).values + torch.topk(x, 3, dim=-1).values.sum(-1, keepdim=True)
        spectrum = torch.fft.irfft(torch.fft.rfft(values, dim=-1), n=8, dim=-1)
        distances = torch.cdist(spectrum, x)
        sampled = nn.functional.grid_sample(x[:, None], torch.zeros(x.shape[0], 4, 4, 2), align_corners=False)
        return distances.sum() + torch.remainder(x, 0.3).sum() + sampled.sum() + torch.pdist(x[0]).sum()


def test_the_newly_counted_ops_are_counted_and_complete():
    counts = snnas.count(_Ops(), inputs=torch.rand(2, 8, 8))
    assert counts.complete, counts.unsupported
    layer = counts.layers[0]
    assert layer.total("activations") >= 8 * 8 * 3  # sort and topk comparisons
    assert counts.total("macs") == 8 * 8 * 8  # cdist: 8 x 8 pairs of 8 features


@pytest.mark.parametrize("name", sorted(BACKWARD_OPS))
def test_backward_ops_are_not_free(name):
    assert name not in FREE_OPS and name not in HANDLERS
