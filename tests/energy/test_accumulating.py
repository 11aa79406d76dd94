"""Writes that add (index_put with accumulate, scatter with reduce, scatter_add, index_add, F.fold) are
counted; the same writes without accumulation move data and cost nothing; recurrent cells (which
split their gates with unsafe_split) are complete."""

import torch
import torch.nn.functional as F
from torch import nn

import snnas


class _Write(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):  # x [B, 12]
        target = torch.zeros(x.shape[0], 4)
        index = torch.tensor([0, 1, 2, 3] * 3).expand(x.shape[0], 12)
        if self.how == "scatter_add":
            return target.scatter_add(1, index, x)
        if self.how == "scatter_reduce":
            return target.scatter(1, index, x, reduce="add")
        if self.how == "scatter":
            return target.scatter(1, index[:, :4], x[:, :4])
        if self.how == "index_put_acc":
            return target.index_put((torch.arange(x.shape[0])[:, None], index), x, accumulate=True)
        if self.how == "index_put":
            return target.index_put((torch.arange(x.shape[0])[:, None], index[:, :4]), x[:, :4])
        if self.how == "index_add":
            return target.index_add(1, index[0], x)
        return F.fold(x.reshape(x.shape[0], 4, 3), output_size=(2, 4), kernel_size=(2, 2))  # 3 columns -> 2x4


def _reductions(how):
    counts = snnas.count(_Write(how), inputs=torch.rand(2, 12))
    assert counts.complete, counts.unsupported
    return counts.total("reductions")


def test_accumulating_writes_count_one_addition_per_value_added():
    for how in ("scatter_add", "scatter_reduce", "index_put_acc", "index_add", "fold"):
        assert _reductions(how) == 12, how  # 12 values per sample, each added in


def test_plain_writes_move_data_for_free():
    for how in ("scatter", "index_put"):
        assert _reductions(how) == 0, how


def test_recurrent_cells_are_counted_completely():
    for cell, gates in ((nn.GRUCell(8, 16), 3), (nn.LSTMCell(8, 16), 4)):
        state = torch.rand(2, 16) + 0.1
        counts = snnas.count(cell, inputs=(torch.rand(2, 8), state if gates == 3 else (state, state)))
        assert counts.complete, counts.unsupported
        assert counts.total("macs") == gates * 16 * (8 + 16)  # input and hidden projections of every gate


def test_recurrent_layers_count_every_step_of_both_projections():
    for layer, gates in ((nn.RNN(8, 16, batch_first=True), 1), (nn.GRU(8, 16, batch_first=True), 3),
                         (nn.LSTM(8, 16, batch_first=True), 4)):
        state = torch.rand(1, 2, 16) + 0.1
        counts = snnas.count(layer, inputs=(torch.rand(2, 5, 8), state if gates != 4 else (state, state)),
                             per_sample=False)
        assert counts.complete, counts.unsupported
        assert counts.total("macs") == 5 * gates * 16 * (8 + 16), layer  # per sample: 5 steps, both projections
