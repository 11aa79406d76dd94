"""A multi-step input is never split along time without a word: spikingjelly multi-step models take
their batch from axis 1, and any other 5-axis input says which axis it counted as the batch."""

import json

import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from tests.cli.test_cli import snnas


def _energy(*args):
    out = snnas("energy", *args, "--trust-code", "-f", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def test_a_spikingjelly_multi_step_model_counts_its_batch_on_axis_1(tmp_path):
    net = nn.Sequential(layer.Conv2d(2, 4, 3, padding=1), neuron.LIFNode(), layer.Flatten(), layer.Linear(256, 3))
    functional.set_step_mode(net, "m")
    torch.save(net, tmp_path / "m.pt")
    torch.save(torch.rand(4, 2, 2, 8, 8), tmp_path / "x.pt")  # [T=4, B=2, C, H, W]
    detected, note = _energy(str(tmp_path / "m.pt"), "--input", str(tmp_path / "x.pt"))
    explicit, _ = _energy(str(tmp_path / "m.pt"), "--input", str(tmp_path / "x.pt"), "--batch-dim", "1")
    assert "multi-step" in note and detected["totals"] == explicit["totals"]
    split, _ = _energy(str(tmp_path / "m.pt"), "--input", str(tmp_path / "x.pt"), "--batch-dim", "0")
    assert split["totals"]["macs"] < detected["totals"]["macs"]  # time taken as samples: a fraction of the work


def test_another_five_axis_input_says_which_axis_it_took_as_the_batch(tmp_path):
    torch.save(nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU()), tmp_path / "c.pt")
    torch.save(torch.rand(2, 2, 4, 8, 8), tmp_path / "x.pt")
    _, note = _energy(str(tmp_path / "c.pt"), "--input", str(tmp_path / "x.pt"))
    assert "axis 0 is taken as the batch" in note and "--batch-dim 1" in note
