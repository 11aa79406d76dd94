"""Lemaire et al.'s model (ICONIP 2022) in snnas (``energy.memory``) against a hand computation and
against spikingjelly 2.0's ``estimate_lemaire_energy`` on the same models and inputs.

spikingjelly prices a whole batch and sizes each memory by the tensor one call of a module sees;
snnas prices one sample and sizes memories for one time step. ``Sizing(per_call=True, batch=B)``
is spikingjelly's assumption, under which the two must agree to rounding on every layer both
model (Linear, Conv, IF, LIF); layers outside Lemaire's scope (attention products, pooling,
residual additions, other neurons) spikingjelly omits and snnas names as missing memory.
"""

import warnings

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.op_counter import estimate_lemaire_energy
from spikingjelly.activation_based.op_counter.analytical_energy import LemaireEnergyConfig
from torch import nn

from snnas.energy.counting import count_ops
from snnas.energy.estimate import estimate
from snnas.energy.memory import Sizing, lemaire_traffic, read_geometry
from snnas.energy.profile import load_profile
from snnas.nas.models import ATTENTION, build_model
from snnas.nas.models.attention.dssa import calibrate_rates
from tests.conftest import tiny_arch
from tests.energy.formats import awake
from tests.energy.test_formats import SJ

INT32 = load_profile("45nm-int32")  # Horowitz's int32 add 0.1 pJ, multiply-add 3.2 pJ: spikingjelly's defaults


def _theirs(model, x):
    functional.reset_net(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = estimate_lemaire_energy(model, x, config=LemaireEnergyConfig(strict=False))
    functional.reset_net(model)
    return report


def _ours(model, x, *, batch_dim, time_steps, per_call=True):
    """snnas's Lemaire figures for the whole batch (pJ): total and parts over the layers in scope."""
    batch = x.shape[batch_dim]
    counts = count_ops(model, x, batch_dim=batch_dim, bn_folded=False)
    geometry = read_geometry(model)
    sizing = Sizing(time_steps=time_steps, batch=batch if per_call else 1, per_call=per_call)
    result = estimate(counts, INT32, memory=True, geometry=geometry, sizing=sizing)
    scope, outside = lemaire_traffic(counts, geometry, sizing, 4)
    parts = {p: sum(result.by_layer_parts_mj.get(n, {}).get(p, 0.0) for n in scope) * 1e9 * batch
             for p in ("compute", "addressing", "memory")}
    return sum(parts.values()), parts, result, outside


def _assert_agree(model, x, *, batch_dim=0, time_steps, spiking=True):
    theirs = _theirs(model, x)
    total, parts, _, _ = _ours(model, x, batch_dim=batch_dim, time_steps=time_steps)
    b = theirs.breakdown_pj
    assert total == pytest.approx(theirs.total_pj, rel=1e-12)
    assert parts["compute"] == pytest.approx(b["ops_pj"], rel=1e-12)
    assert parts["addressing"] == pytest.approx(b["addressing_pj"], rel=1e-12)
    assert parts["memory"] == pytest.approx(b["memory_pj"], rel=1e-12)
    assert theirs.total_pj > 0 and (b["potential_pj"] > 0) == spiking


def test_a_hand_computed_layer_and_neuron():
    """Linear(3, 2) of ones fed the spikes [1, 0, 1], then an IF neuron (both fire), T = 1.

    Linear: 2 spikes x 2 outputs = 4 synaptic ACs + 2 bias ACs; 4 address additions; reads of 2
    spikes (8 B) from the 1000-message FIFO (4000 B: 4000/8192 x 2.5 pJ/B), of 4 weights and 2 biases
    (24 B) from their 32 B memory, and 4 potential reads + 4 writes (32 B) in an 8 B memory.
    IF: 2 spikes (2 ACs), 2 potential reads + 2 writes (16 B, 8 B memory), 2 spikes (8 B) to the FIFO.
    """
    model = nn.Sequential(nn.Linear(3, 2), neuron.IFNode())
    nn.init.ones_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    x = torch.tensor([[1.0, 0.0, 1.0]])
    fifo, per_byte = 4000 / 8192 * 2.5, 2.5 / 8192
    memory = 8 * fifo + 24 * 32 * per_byte + 32 * 8 * per_byte + 16 * 8 * per_byte + 8 * fifo
    compute, addressing = (4 + 2 + 2) * 0.1, 4 * 0.1
    total, parts, result, outside = _ours(model, x, batch_dim=0, time_steps=1, per_call=False)
    assert parts == pytest.approx({"compute": compute, "addressing": addressing, "memory": memory}, rel=1e-12)
    assert result.complete and outside == [] and result.total_mj * 1e9 == pytest.approx(total)
    assert _theirs(model, x).total_pj == pytest.approx(compute + addressing + memory, rel=1e-12)


def _csnn(step_mode: str) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 8, 3, padding=1, bias=False), neuron.IFNode(),
                        layer.Conv2d(8, 8, 3, stride=2, padding=1), neuron.LIFNode(), layer.Flatten(),
                        layer.Linear(8 * 4 * 4, 10), neuron.LIFNode())
    functional.set_step_mode(net, step_mode)
    return net


@pytest.mark.parametrize("batch", [1, 3])
def test_a_multi_step_csnn_agrees_with_spikingjelly(batch):
    x = 3 * torch.rand(4, batch, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    _assert_agree(_csnn("m"), x, batch_dim=1, time_steps=4)


def test_a_single_step_csnn_agrees_with_spikingjelly():
    _assert_agree(_csnn("s"), 3 * torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)),
                  time_steps=1)


def test_a_network_without_neurons_writes_its_outputs_as_spikingjelly_does():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    x = torch.rand(2, 2, 7, 7)
    theirs = _theirs(ann, x)
    assert theirs.counts["write_out_bytes"] > 0
    _assert_agree(ann, x, time_steps=1, spiking=False)


@pytest.mark.parametrize("name", SJ)
def test_spikingjellys_own_models_agree_on_the_layers_both_model(name):
    make, shape, batch_dim = SJ[name]
    torch.manual_seed(0)
    _assert_agree(awake(make()), torch.rand(*shape), batch_dim=batch_dim, time_steps=2)


def _snnas_model(attention: str):
    torch.manual_seed(0)
    model, x = awake(build_model(tiny_arch(attention=(attention, attention)))), torch.rand(2, 3, 16, 16)
    calibrate_rates(model, x)
    return model, x


@pytest.mark.parametrize("attention", ["ssa", "dssa", "a2os2a"])
def test_snnas_models_agree_on_the_layers_both_model(attention):
    model, x = _snnas_model(attention)
    _assert_agree(model, x, time_steps=2)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTION.names())
def test_every_attention_kind_agrees_on_the_layers_both_model(attention):
    model, x = _snnas_model(attention)
    _assert_agree(model, x, time_steps=2)


def test_layers_outside_the_model_make_the_estimate_incomplete_and_are_named():
    model, x = _snnas_model("ssa")
    _, _, result, outside = _ours(model, x, batch_dim=0, time_steps=2)
    assert outside and not result.complete
    assert any(m.startswith(f"memory of {len(outside)} layers outside Lemaire's model") for m in result.missing)


def test_snnas_sizes_memories_for_one_sample_and_one_step():
    """A conv applied to time-flattened inputs (snnas's ConvBN) sees all T steps in one call:
    spikingjelly sizes its potentials for T steps of the batch, snnas for one step of one sample,
    so snnas's figure is lower, and equal once the sizes agree."""
    model, x = _snnas_model("ssa")
    per_call, _, _, _ = _ours(model, x, batch_dim=0, time_steps=2)
    per_step, _, _, _ = _ours(model, x, batch_dim=0, time_steps=2, per_call=False)
    assert per_step < per_call
    single = x[:1]
    assert _ours(model, single, batch_dim=0, time_steps=2)[0] == pytest.approx(_theirs(model, single).total_pj,
                                                                                rel=1e-12)


def test_the_cli_prints_compute_and_memory_apart_in_table_json_and_csv(tmp_path):
    import csv
    import io
    import json

    from snnas.nas.models.checkpoint import save_model
    from tests.cli.test_cli import snnas

    arch = tiny_arch()
    path = tmp_path / "model.pt"
    save_model(build_model(arch), arch, path)
    out = snnas("energy", str(path), "--energy-model", "lemaire", "-f", "json", "--samples", "2", "-p", "45nm-int32")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    (energy,) = report["energy"]
    assert energy["energy_model"] == "lemaire" and energy["by_part_mj"]["memory"] > 0
    assert sum(energy["by_part_mj"].values()) == pytest.approx(energy["total_mj"], rel=1e-12)
    assert not energy["complete"] and any("outside Lemaire's model" in m for m in energy["missing"])
    rows = [row for row in report["layers"] if "energy_parts_mj_by_profile" in row]
    assert rows and sum(sum(r["energy_parts_mj_by_profile"]["45nm-int32"].values()) for r in rows) > 0
    text = snnas("energy", str(path), "--memory", "-f", "csv", "--samples", "2", "-p", "45nm-int32").stdout
    total = list(csv.DictReader(io.StringIO(text)))[-1]
    assert float(total["memory_mj[45nm-int32]"]) == pytest.approx(energy["by_part_mj"]["memory"], rel=1e-9)
    table = snnas("energy", str(path), "--memory", "--samples", "2", "-p", "45nm-int32")
    assert table.returncode == 0 and "memory mJ" in table.stdout and "Lemaire" in table.stdout
