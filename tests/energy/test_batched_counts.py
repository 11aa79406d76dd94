"""Per-sample counts from one batched forward equal the per-sample loop's (one forward per sample),
number for number: every record (classes, dense, non-zeros, exact charges, effective ops) and every
element-wise count of every layer. Where the batched pass would mix samples, the loop runs and
``OpCounts.per_sample_loop`` says why."""

import pytest
import torch
from torch import nn

from snnas.energy.counting import count_ops
from snnas.nas.models import build_model
from snnas.nas.models.registries import ATTENTION
from tests.conftest import tiny_arch
from tests.energy.formats import awake


def _table(counts):
    layers = [(layer.name, layer.type, [(r.op, r.kinds, r.dense, r.bias, r.nnz, r.numel, sorted(r.exact.items()),
                                         r.out_numel, r.effective) for r in layer.records],
               sorted(layer.extras.items())) for layer in counts.layers]
    return layers, counts.unsupported, counts.per_sample, counts.batch_size


def _same_as_loop(model, x, **options):
    batched = count_ops(model, x, effective=True, **options)
    loop = count_ops(model, x, effective=True, per_sample_loop=True, **options)
    assert loop.per_sample_loop
    assert _table(batched) == _table(loop)
    return batched


@pytest.mark.parametrize("neuron", ["lif", "ternary"])
@pytest.mark.parametrize("attention", ATTENTION.names())
def test_every_attention_kind_counts_the_same_in_one_batched_pass(attention, neuron):
    from snnas.nas.data import sample_digits
    from snnas.nas.models.attention.dssa import calibrate_rates

    x = sample_digits(4, channels=3, size=16)
    model = awake(build_model(tiny_arch(neuron=neuron, attention=(attention, attention))))
    calibrate_rates(model, x)
    assert _same_as_loop(model, x).per_sample_loop == ""


def test_a_spikingjelly_multi_step_model_with_time_first():
    from spikingjelly.activation_based import functional, layer, neuron

    model = nn.Sequential(layer.Conv2d(2, 8, 3, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(),
                          layer.MaxPool2d(2), layer.Flatten(), layer.Linear(8 * 4 * 4, 10), neuron.IFNode())
    functional.set_step_mode(model, "m")
    awake(model)
    x = (torch.rand(3, 5, 2, 8, 8) < 0.3).float()  # [T, B, C, H, W]
    assert _same_as_loop(model, x, batch_dim=1).per_sample_loop == ""


def test_a_plain_cnn():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    assert _same_as_loop(awake(model), torch.rand(6, 3, 12, 12)).per_sample_loop == ""


class _Mixer(nn.Module):
    """A conv, a linear layer, an event x data product and an element-wise product, on inputs whose
    samples differ in class."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(1), nn.Linear(6, 6)

    def forward(self, x):
        folded = self.conv(self.bn(x))  # BatchNorm folded for the samples whose input is events
        flat = x.flatten(1).view(x.shape[0], 6, 6)
        return folded.sum((1,)), self.fc(flat) @ flat.transpose(1, 2), flat * flat


def test_samples_of_different_classes_are_each_counted_as_their_own():
    binary = (torch.rand(6, 6) < 0.4).float()
    samples = [binary, binary - (torch.rand(6, 6) < 0.2).float(), binary * 3, torch.rand(6, 6),
               binary / 8, binary * torch.tensor(2 / 8), torch.zeros(6, 6), (binary * 2).round() / 9]
    x = torch.stack(samples).unsqueeze(1)  # [8, 1, 6, 6]: binary, ternary, counts, real, two quanta, none
    counts = _same_as_loop(awake(_Mixer()), x)
    assert counts.per_sample_loop == ""
    kinds = {r.kinds[0] for layer in counts.layers for r in layer.records}
    assert kinds == {"real"}  # the worst class over the samples, as the loop merges them
    charged = {k for layer in counts.layers for r in layer.records for k, v in r.exact.items() if v}
    assert {"ac", "ac_signed", "ac_multi", "mac"} <= charged


class _BatchMean(nn.Module):
    def forward(self, x):
        return x - x.mean(0)  # every sample's output depends on the others


@pytest.mark.parametrize("model", [nn.Sequential(_BatchMean(), nn.Linear(3, 3)),
                                   nn.Sequential(nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(3, 3))],
                         ids=["mean over the batch", "batch statistics"])
def test_a_pass_that_mixes_samples_runs_sample_by_sample_and_says_why(model):
    x = torch.rand(5, 4, 3)
    x[0] = (x[0] < 0.5).float()
    counts = _same_as_loop(model, x)
    assert "mixes the samples" in counts.per_sample_loop


def test_an_input_without_the_batch_axis_runs_sample_by_sample():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, shared):
            return self.fc(x) + self.fc(shared)

    counts = count_ops(Two(), (torch.rand(3, 4), torch.rand(4)))
    assert counts.per_sample_loop and counts.per_sample
