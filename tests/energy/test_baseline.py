"""The fair baseline (energy/baseline.py): an SNN beside the same network as a ceil(log2(T+1))-bit
and an INT8 ANN (Yan et al., arXiv 2409.08290), checked against a model computed by hand."""

import json

import pytest
import torch
from torch import nn

from snnas.energy.baseline import (activation_bits, at_rate_scale, break_even_scale, fair_baseline, measured_rate,
                                   neuron_rate, twin_estimate, weight_bits)
from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.memory import ModelGeometry, Sizing, read_geometry
from snnas.energy.profile import load_profile

PJ = 1e-9  # millijoules per picojoule
INT8 = load_profile("45nm-int8")  # Horowitz 2014: int8 multiply 0.2 pJ, add 0.03 pJ; MAC 0.23, AC 0.03, LIF 0.26


class BaseNode(nn.Module):  # the name makes it a neuron for the counter, as spikingjelly's base class
    pass


class IFNode(BaseNode):
    """Integrate-and-fire over axis 0 (time), threshold 1, hard reset."""

    def forward(self, x):
        v, out = torch.zeros_like(x[0]), []
        for t in range(x.shape[0]):
            v = v + x[t]
            spike = (v >= 1.0).float()
            v = v * (1 - spike)
            out.append(spike)
        return torch.stack(out)


class Net(nn.Module):
    """fc1 (16 -> 2, weights 1), IF neurons, fc2 (2 -> 16); no biases."""

    def __init__(self):
        super().__init__()
        self.fc1, self.sn, self.fc2 = nn.Linear(16, 2, bias=False), IFNode(), nn.Linear(2, 16, bias=False)
        nn.init.constant_(self.fc1.weight, 1.0)

    def forward(self, x):
        return self.fc2(self.sn(self.fc1(x)))


def _spikes():
    """T = 4 steps of 16 inputs, 8 spikes a step: 32 of 64 (input rate 0.5). Each neuron then gets 8 >= 1 at
    every step and fires every step: 8 spikes of 8 updates (neuron rate 1). The synapses see 32 of 64 inputs
    spike (fc1) and 8 of 8 (fc2): a measured event-input rate of 40 / 72."""
    x = torch.zeros(4, 1, 16)
    x[0, 0, :8] = x[1, 0, 8:] = x[2, 0, ::2] = x[3, 0, 1::2] = 1
    return x


@pytest.fixture(scope="module")
def counts():
    return count_ops(Net(), _spikes(), batch_dim=1)


def test_activation_bits_hold_a_spike_count_of_t_steps():
    assert [activation_bits(t) for t in (1, 2, 3, 4, 5, 7, 8, 15, 16)] == [1, 2, 2, 3, 3, 3, 4, 4, 5]
    assert weight_bits(INT8) == 8 and weight_bits(load_profile("45nm-int32")) == 32
    assert weight_bits(load_profile("45nm-fp32")) is None and weight_bits(load_profile("loihi")) is None
    with pytest.raises(ValueError, match="at least 1"):
        activation_bits(0)


def test_the_hand_computed_model_on_int8(counts):
    # SNN (snnas convention, 45nm-int8): fc1 32 spikes x 2 = 64 AC, fc2 8 spikes x 16 = 128 AC -> 192 x 0.03
    # = 5.76 pJ; 8 neuron updates x 0.26 = 2.08 pJ; total 7.84 pJ. Rate-independent F = 2.08, per unit of
    # rate scale V = 5.76.
    snn = estimate(counts, INT8)
    assert snn.total_mj == pytest.approx(7.84 * PJ, rel=1e-12)
    base = fair_baseline(counts, snn, INT8, time_steps=4)
    assert base.measured_rate == pytest.approx(40 / 72) and base.neuron_rate == 1.0 and base.weight_bits == 8
    q, i8 = base.comparisons
    # 3-bit twin (T = 4): one pass, dense / T = 128 / 4 = 32 MACs per layer; a 3-bit x 8-bit multiply is
    # 0.2 x 3*8/64 = 0.075 pJ, + 0.03 accumulate = 0.105 pJ: 2 x 32 x 0.105 = 6.72; the 2 neurons become
    # quantisers (one multiply-add 0.23 + one clamp 0.03) = 0.52; total 7.24 pJ.
    assert q.twin.bits == 3 and q.twin.total_mj == pytest.approx(7.24 * PJ, rel=1e-12)
    assert q.ratio == pytest.approx(7.84 / 7.24, rel=1e-12)  # 1.0829: the SNN costs more at this rate
    # break-even: 2.08 + 5.76 s = 7.24 -> s = 5.16 / 5.76 = 0.8958; x the measured rate 40/72: 0.4977
    assert q.break_even_scale == pytest.approx(5.16 / 5.76, rel=1e-12)
    assert q.break_even_rate == pytest.approx(5.16 / 5.76 * 40 / 72, rel=1e-12)
    # INT8 twin: 2 x 32 x 0.23 + 0.52 = 15.24 pJ; ratio 0.514; 2.08 + 5.76 s = 15.24 -> s = 2.285, a rate of
    # 1.269 (above 1: the SNN wins at any rate its inputs can fire)
    assert i8.twin.total_mj == pytest.approx(15.24 * PJ, rel=1e-12)
    assert i8.ratio == pytest.approx(7.84 / 15.24, rel=1e-12)
    assert i8.break_even_rate == pytest.approx(13.16 / 5.76 * 40 / 72, rel=1e-12)
    assert base.complete and json.loads(json.dumps(base.to_dict()))["twins"][0]["bits"] == 3


def test_the_hand_computed_model_on_int32(counts):
    # 45nm-int32: MAC 3.2 (multiply 3.1), AC 0.1, add 0.1, LIF 3.3. SNN: 192 x 0.1 + 8 x 3.3 = 45.6 pJ.
    # 3-bit x 32-bit multiply: 3.1 x 3*32/1024 = 0.290625, MAC 0.390625 pJ; twin 64 x 0.390625 + 2 x 3.3 = 31.6.
    # INT8 activations x 32-bit weights: 3.1 x 8*32/1024 = 0.775, MAC 0.875: 64 x 0.875 + 6.6 = 62.6 pJ.
    int32 = load_profile("45nm-int32")
    snn = estimate(counts, int32)
    q, i8 = fair_baseline(counts, snn, int32, time_steps=4).comparisons
    assert snn.total_mj == pytest.approx(45.6 * PJ, rel=1e-12)
    assert q.twin.total_mj == pytest.approx(31.6 * PJ, rel=1e-12)
    assert i8.twin.total_mj == pytest.approx(62.6 * PJ, rel=1e-12)
    assert q.break_even_rate == pytest.approx((31.6 - 26.4) / 19.2 * 40 / 72, rel=1e-12)  # F = 26.4, V = 19.2


def test_a_floating_point_profile_does_not_scale_multiplies(counts):
    # 45nm-fp32: every twin MAC is the profile's 4.6 pJ whatever the activation bits: 64 x 4.6 + 2 x (4.6 + 0.9)
    fp32 = load_profile("45nm-fp32")
    q, i8 = fair_baseline(counts, estimate(counts, fp32), fp32, time_steps=4).comparisons
    assert q.twin.total_mj == pytest.approx((64 * 4.6 + 11.0) * PJ, rel=1e-12) == i8.twin.total_mj


def test_the_twin_on_lemaires_memory_model_by_hand(counts):
    # fc1: 16 inputs, 2 outputs a step: 32 MACs x 0.105 = 3.36; addressing 16 + 2 additions x 0.03 = 0.54;
    # memory (8-bit words for weights, 3-bit activations; below 8 KB an access costs 2.5 pJ/B x size / 8192 B):
    # inputs 16 x 3/8 = 6 B from a 6 B buffer, weights 32 B from 32 B, outputs 2 x 3/8 = 0.75 B into 0.75 B.
    # fc2 mirrors it (2 inputs, 16 outputs): the same compute and addressing, inputs 0.75 B, outputs 6 B.
    # The neurons: quantisers, 2 x 0.26 = 0.52, no potentials.
    per_byte = 2.5 / 8192
    memory = 2 * (6 * 6 + 32 * 32 + 0.75 * 0.75) * per_byte
    geometry = read_geometry(Net())
    assert {k: g.kind for k, g in geometry.layers.items()} == {"fc1": "linear", "sn": "if", "fc2": "linear"}
    twin = twin_estimate(counts, INT8, time_steps=4, bits=3, memory=True, geometry=geometry)
    assert twin.complete
    assert twin.total_mj == pytest.approx((2 * 3.36 + 2 * 0.54 + 0.52 + memory) * PJ, rel=1e-12)


def test_the_twin_follows_lemaires_dense_path_exactly():
    """At T = 1 with activations as wide as the weights, the twin of an ANN is the ANN as
    energy.memory prices it (Lemaire's dense path, outputs written): the same model, not a copy."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    counts = count_ops(ann, torch.randn(2, 2, 6, 6))
    geometry = read_geometry(ann)
    assert not geometry.has_neurons
    for name in ("45nm-int8", "45nm-int32"):
        profile = load_profile(name)
        direct = estimate(counts, profile, memory=True, geometry=geometry, sizing=Sizing())
        twin = twin_estimate(counts, profile, time_steps=1, bits=weight_bits(profile), memory=True,
                             geometry=geometry)
        assert twin.total_mj == pytest.approx(direct.total_mj, rel=1e-12)
        assert twin.by_layer_mj == pytest.approx(direct.by_layer_mj, rel=1e-12)
        assert not twin.complete and any("outside Lemaire" in g for g in twin.missing)  # the ReLU, as the SNN's


def test_the_snn_costs_the_twins_energy_at_the_break_even_rate(counts):
    for memory in (False, True):
        geometry = read_geometry(Net()) if memory else None
        sizing = Sizing(time_steps=4) if memory else None
        snn = estimate(counts, INT8, memory=memory, geometry=geometry, sizing=sizing)
        for comparison in fair_baseline(counts, snn, INT8, time_steps=4, memory=memory, geometry=geometry,
                                        sizing=sizing).comparisons:
            at = estimate(at_rate_scale(counts, comparison.break_even_scale), INT8, memory=memory,
                          geometry=geometry, sizing=sizing)
            assert at.total_mj == pytest.approx(comparison.twin.total_mj, rel=1e-9)


def test_the_ratio_grows_with_the_firing_rate(counts):
    snn_ratios = []
    for scale in (0.0, 0.1, 0.5, 1.0, 1.5):
        scaled = at_rate_scale(counts, scale)
        assert measured_rate(scaled) == pytest.approx(scale * 40 / 72) and neuron_rate(scaled) == pytest.approx(scale)
        q, _ = fair_baseline(scaled, estimate(scaled, INT8), INT8, time_steps=4).comparisons
        snn_ratios.append(q.ratio)
        assert q.twin.total_mj == pytest.approx(7.24 * PJ, rel=1e-12)  # the dense twin does not depend on the rate
    assert snn_ratios == sorted(snn_ratios) and snn_ratios[0] < snn_ratios[-1]


def test_a_spike_x_spike_product_makes_the_energy_quadratic_and_is_solved_exactly():
    # E(s) = 1 + 2 s + 3 s^2 = 6 -> s = 1
    assert break_even_scale(lambda s: 1 + 2 * s + 3 * s * s, 6.0) == pytest.approx(1.0, rel=1e-12)
    assert break_even_scale(lambda s: 4 + s, 2.0) is None  # the silent SNN already costs more
    assert break_even_scale(lambda s: 4.0, 5.0) is None  # no spike-driven work: no rate reaches the twin


def test_without_spike_inputs_there_is_no_break_even_rate():
    ann = nn.Sequential(nn.Linear(4, 3))
    counts = count_ops(ann, torch.rand(2, 4))
    base = fair_baseline(counts, estimate(counts, INT8), INT8, time_steps=1)
    assert base.measured_rate is None and base.neuron_rate is None and all(c.break_even_rate is None for c in base.comparisons)


def test_the_geometry_of_a_model_without_memory_figures_is_incomplete(counts):
    twin = twin_estimate(counts, INT8, time_steps=4, bits=3, memory=True, geometry=None)
    assert not twin.complete and any("count with the model" in g for g in twin.missing)
    no_memory = twin_estimate(counts, load_profile("loihi"), time_steps=4, bits=3, memory=True,
                              geometry=ModelGeometry({}, True))
    assert not no_memory.complete and "memory" in no_memory.missing


def _saved_tiny(tmp_path):
    from snnas.nas.models import build_model
    from snnas.nas.models.checkpoint import save_model
    from tests.conftest import tiny_arch

    arch = tiny_arch()
    save_model(build_model(arch), arch, tmp_path / "model.pt")
    return tmp_path / "model.pt", arch.time_steps


def test_snnas_energy_prints_the_baseline_in_table_json_and_csv(tmp_path):
    import csv
    import io

    from tests.cli.test_cli import snnas

    path, steps = _saved_tiny(tmp_path)
    bits = activation_bits(steps)
    table = snnas("energy", str(path), "--samples", "2", "-p", "45nm-int8")
    assert table.returncode == 0, table.stderr
    assert "fair baseline" in table.stdout and f"{bits}-bit ANN mJ" in table.stdout and "SNN/INT8" in table.stdout
    report = json.loads(snnas("energy", str(path), "-f", "json", "--samples", "2", "-p", "45nm-int8",
                              "-p", "45nm-fp32").stdout)
    base = report["baseline"]
    assert base["time_steps"] == steps and base["bits"] == bits and "2409.08290" in base["source"]
    assert [b["profile"] for b in base["by_profile"]] == ["45nm-int8", "45nm-fp32"]
    for b, e in zip(base["by_profile"], report["energy"]):
        assert b["snn_mj"] == e["total_mj"]
        q, i8 = b["twins"]
        assert (q["name"], q["bits"], i8["name"], i8["bits"]) == ("quantized", bits, "int8", 8)
        assert q["snn_over_ann"] == pytest.approx(e["total_mj"] / q["energy_mj"], rel=1e-12)
    rows = list(csv.DictReader(io.StringIO(snnas("energy", str(path), "-f", "csv", "--samples", "2",
                                                 "-p", "45nm-int8").stdout)))
    total = rows[-1]
    assert total["name"] == "TOTAL" and int(total["ann_q_bits"]) == bits
    assert float(total["snn_over_ann_q[45nm-int8]"]) == pytest.approx(base["by_profile"][0]["twins"][0]["snn_over_ann"])
    assert float(total["ann_int8_mj[45nm-int8]"]) > 0 and rows[0]["ann_int8_mj[45nm-int8]"] == ""
    quiet = snnas("energy", str(path), "--samples", "2", "--no-baseline", "-f", "json")
    assert "baseline" not in json.loads(quiet.stdout)


def test_snnas_energy_prices_the_baseline_on_the_memory_model(tmp_path):
    from tests.cli.test_cli import snnas

    path, _ = _saved_tiny(tmp_path)
    out = snnas("energy", str(path), "-f", "json", "--samples", "2", "-p", "45nm-int8", "--energy-model", "lemaire")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    lemaire = report["baseline"]["by_profile"][0]
    arithmetic = json.loads(snnas("energy", str(path), "-f", "json", "--samples", "2",
                                  "-p", "45nm-int8").stdout)["baseline"]["by_profile"][0]
    assert lemaire["twins"][0]["energy_mj"] > arithmetic["twins"][0]["energy_mj"]  # memory traffic added
    assert lemaire["snn_mj"] == report["energy"][0]["total_mj"]


def test_snnas_energy_writes_the_baseline_as_a_latex_table_for_a_paper(tmp_path):
    from tests.cli.test_cli import snnas

    path, steps = _saved_tiny(tmp_path)
    report = json.loads(snnas("energy", str(path), "-f", "json", "--samples", "2", "-p", "45nm-int8").stdout)
    twins = report["baseline"]["by_profile"][0]["twins"]
    out = snnas("energy", str(path), "--samples", "2", "-p", "45nm-int8", "-o", str(tmp_path / "energy.tex"))
    assert out.returncode == 0, out.stderr
    tex = (tmp_path / "energy.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "arXiv 2409.08290" in tex
    assert f"{activation_bits(steps)}-bit ANN mJ" in tex and "SNN/INT8" in tex
    row = next(line for line in tex.splitlines() if line.startswith("45nm-int8 &"))
    cells = [c.strip() for c in row.rstrip(" \\").split("&")]
    assert float(cells[3]) == pytest.approx(twins[0]["snn_over_ann"], rel=1e-3)  # printed to 3 figures
    assert float(cells[6]) == pytest.approx(twins[1]["snn_over_ann"], rel=1e-3)
    assert snnas("energy", str(path), "--samples", "2", "-f", "latex").stdout.startswith(r"\begin{table}")
