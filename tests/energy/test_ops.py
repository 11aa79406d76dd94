"""Every op family the counter handles, against hand-computed answers; data movement is free and silent."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnas.energy.counting import count_ops


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _one(model, *inputs, **options):
    counts = count_ops(model, inputs, batch_dim=None, **options)
    assert counts.unsupported == {}, counts.unsupported
    return counts


def test_transposed_conv_counts_the_taps_that_land_in_the_output():
    conv = nn.ConvTranspose2d(1, 2, 3, stride=2, padding=1, bias=False)
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0  # reaches output rows / cols {-1, 0, 1} of which {0, 1} exist: 4 positions
    counts = _one(conv, x)
    assert counts.total("ac") == 4 * 2 and counts.total("dense") == 4 * 2 * 9


def test_conv3d_and_conv1d_on_spikes_are_border_exact():
    x3 = torch.zeros(1, 1, 3, 3, 3)
    x3[0, 0, 0, 0, 0] = 1.0  # a corner spike reaches 2 x 2 x 2 outputs
    counts = _one(nn.Conv3d(1, 2, 3, padding=1, bias=False), x3)
    assert counts.total("ac") == 8 * 2 and counts.total("dense") == 27 * 27 * 2
    x1 = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]])  # reaches outputs 0, 1, 2 of 4
    assert _one(nn.Conv1d(1, 3, 3, padding=1, bias=False), x1).total("ac") == 3 * 3


QUERY = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]])  # [1, 1, L=2, E=3], binary
VALUE = torch.tensor([[[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]])  # [1, 1, S=3, 2], binary


@pytest.mark.parametrize("causal, qk, av, pairs", [(False, (2 + 1) * 3, 2 * (1 + 2 + 0), 6),
                                                   (True, 2 * 1 + 1 * 2, 1 + (1 + 2), 3)])
def test_scaled_dot_product_attention_counts_both_products_over_the_computed_pairs(causal, qk, av, pairs):
    key = torch.rand(1, 1, 3, 3) + 0.1  # real
    attention = Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    counts = _one(attention, QUERY, key, VALUE)
    first, second = counts.layers[0].records
    assert first.total("ac") == qk and first.dense == 2 * 3 * 3
    assert second.total("ac") == av and second.dense == 2 * 3 * 2
    assert counts.total("nonlinear") == pairs  # softmax


def test_a_boolean_attention_mask_removes_pairs():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    attention = Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    counts = _one(attention, QUERY, torch.rand(1, 1, 3, 3) + 0.1, VALUE)
    first, second = counts.layers[0].records
    assert first.total("ac") == 2 * 2 + 1 * 1  # query 0 sees keys 0 and 2, query 1 sees key 2
    assert second.total("ac") == (1 + 0) + 0


def test_multi_head_attention_counts_projections_products_and_softmax():
    mha = nn.MultiheadAttention(4, 2, batch_first=True).eval()
    x = torch.rand(1, 3, 4) + 0.1
    counts = count_ops(Fn(lambda q: mha(q, q, q, need_weights=False)[0]), x)
    projections, products, output = 3 * (3 * 4 * 4), 2 * (2 * 3 * 3 * 2), 3 * 4 * 4
    assert counts.total("macs") == counts.total("dense") == projections + products + output
    assert counts.total("nonlinear") == 2 * 3 * 3
    assert counts.unsupported == {}


def test_vector_products_are_linear_layers_when_one_side_is_a_weight():
    weight = nn.Parameter(torch.rand(3, 4))
    spikes = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert _one(Fn(lambda x: torch.mv(weight, x)), spikes).total("ac") == 3 * 3
    assert _one(Fn(lambda x: torch.dot(x, weight[0])), spikes).total("ac") == 3
    bias = nn.Parameter(torch.rand(3))
    counts = _one(Fn(lambda x: torch.addmv(bias, weight, x)), spikes)
    assert counts.total("ac") == 9 and counts.total("bias") == 3 and counts.layers[0].records[0].op == "linear"


def test_batched_products_and_einsum_count_each_event_once_per_output_column():
    a = (torch.rand(2, 3, 4) < 0.5).float()
    b = torch.rand(2, 4, 5) + 0.1
    expected = float(a.sum()) * 5
    assert _one(Fn(lambda x, y: torch.baddbmm(torch.zeros(2, 3, 5), x, y)), a, b).total("ac") == expected
    assert _one(Fn(lambda x, y: torch.einsum("bij,bjk->bik", x, y)), a, b).total("ac") == expected
    assert _one(Fn(lambda x, y: torch.addbmm(torch.zeros(3, 5), x, y)), a, b).total("ac") == expected


def test_pools_count_one_operation_per_window_element():
    assert _one(nn.MaxPool3d(2), torch.rand(1, 1, 4, 4, 4)).total("pool") == 8 * 8
    assert _one(nn.AvgPool3d(2), torch.rand(1, 1, 4, 4, 4)).total("pool") == 8 * 8
    assert _one(nn.AdaptiveAvgPool2d(3), torch.rand(1, 2, 5, 5)).total("pool") == 2 * 25
    assert _one(nn.AdaptiveMaxPool2d(2), torch.rand(1, 2, 4, 4)).total("pool") == 2 * 16
    assert _one(nn.MaxPool1d(2), torch.rand(1, 2, 4)).total("pool") == 4 * 2


def test_data_movement_is_free_and_silent():
    moves = nn.Sequential(nn.ReflectionPad2d(1), nn.ReplicationPad2d(1), nn.ZeroPad2d(1), nn.PixelShuffle(2),
                          nn.Upsample(scale_factor=2), nn.Flatten(), nn.Dropout(0.5))
    counts = _one(moves, torch.rand(1, 4, 3, 3))
    assert all(not layer.records and not any(layer.extras.values()) for layer in counts.layers)


def test_normalisation_and_transcendental_functions_are_counted_per_element():
    counts = _one(nn.LayerNorm(4), torch.rand(2, 4))
    assert counts.total("norm") == 8
    assert _one(nn.GroupNorm(2, 4), torch.rand(2, 4, 3)).total("norm") == 24
    assert _one(nn.InstanceNorm2d(2), torch.rand(1, 2, 3, 3)).total("norm") == 18  # statistics of the input
    assert _one(nn.Softmax(-1), torch.rand(2, 4)).total("nonlinear") == 8
    assert _one(nn.GELU(), torch.rand(5)).total("nonlinear") == 5
    assert _one(nn.ReLU(), torch.rand(5)).total("activations") == 5
    assert _one(nn.Upsample(scale_factor=2, mode="bilinear"), torch.rand(1, 1, 2, 2)).total("products") == 16 * 4


def test_products_of_two_data_tensors_are_masks_with_a_spike_operand_and_products_otherwise():
    spikes, real = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.31, 0.52, 0.73])
    assert _one(Fn(lambda s, r: s * r), spikes, real).total("masks") == 3
    assert _one(Fn(lambda a, b: a * b), real, real + 1).total("products") == 3
    assert _one(Fn(lambda a: a * 0.5 + 1.0), real).total("scalings") == 6  # by constants: folded
