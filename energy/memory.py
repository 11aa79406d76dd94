"""Lemaire et al.'s analytical energy model (ICONIP 2022), per layer, from snnas's counts.

Lemaire, Cordone, Castagnetti, Novac, Courtois, Miramond, "An Analytical Estimation of Spiking
Neural Networks Energy Efficiency", ICONIP 2022 (arXiv 2210.13107). Its scope is Linear and
Conv layers and IF / LIF neurons; per layer it counts

* operations: a synaptic op per spike and fan-out (one AC each: ``C_out/g * prod(ceil(k/s))``
  per input spike of a conv, ``N_out`` of a linear), dense MACs for a real-valued input, one
  addition per bias, and per neuron one addition per spike (and one MAC per update for LIF);
* addressing: one addition per weight address a spike touches (``C_out/g * prod(k)`` for a
  conv), two multiplications (MACs) per spike of a conv to find its first output; for a dense
  layer one addition per input and output element (and per kernel weight of a conv);
* memory: reads of the inputs (spikes from a FIFO of 1000 messages), of the weights and biases,
  reads and writes of membrane potentials, writes of the output spikes to a FIFO; a layer
  without neurons after it (an ANN) writes its outputs. Each access costs the profile's energy
  per byte at the size of the memory holding it (``Memory.pj_per_byte``).

The same rules are implemented by spikingjelly 2.0 (``op_counter.estimate_lemaire_energy``);
``tests/energy/test_lemaire.py`` checks that both give the same figures where their
assumptions agree. Where snnas's default differs (``Sizing``): spikingjelly sizes a memory by
the whole tensor one call of a module sees, so a batch of B samples, or the T steps of a conv
applied to time-flattened inputs, make its buffers B or T times larger; snnas sizes buffers for
one sample and one time step. ``Sizing(per_call=True, batch=B)`` gives spikingjelly's sizing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from math import ceil, prod

from torch import nn

from snnas.energy.counts import OpCounts
from snnas.energy.modules import is_neuron
from snnas.energy.operands import BINARY

FIFO_ELEMENTS = 1000  # Lemaire et al.'s spike FIFOs (the paper's experiments; spikingjelly's default)
COMPONENTS = ("inout", "params", "potential")  # the memories whose traffic is priced
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Geometry:
    """What Lemaire's formulas need to know of one Linear / Conv layer or IF / LIF neuron."""

    kind: str  # "linear" | "conv" | "if" | "lif"
    fan_out: int = 0  # weights one input spike touches: out_features, or C_out/g * prod(k)
    synops: int = 0  # synaptic ops per input spike: out_features, or C_out/g * prod(ceil(k/s))
    fan_in: int = 0  # weights per output element: in_features, or prod(weight.shape[1:])
    kernel_weights: int = 0  # conv: C_out * prod(k), addressed once by a dense conv
    params: int = 0  # parameters the module owns
    bias: bool = False
    multi_step: bool = False  # spikingjelly step_mode 'm': one call sees all T steps


@dataclass(frozen=True)
class ModelGeometry:
    layers: dict[str, Geometry]
    has_neurons: bool  # a model without neurons (an ANN) writes every layer's output


def _class_names(module: nn.Module) -> set[str]:
    return {cls.__name__ for cls in type(module).__mro__}


def _geometry(module: nn.Module) -> Geometry | None:
    multi = getattr(module, "step_mode", "s") == "m"
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if isinstance(module, nn.Linear):
        return Geometry("linear", module.out_features, module.out_features, module.in_features, 0, own,
                        module.bias is not None, multi)
    if isinstance(module, _CONVS):
        per_group = module.out_channels // module.groups
        return Geometry("conv", per_group * prod(module.kernel_size),
                        per_group * prod(ceil(k / s) for k, s in zip(module.kernel_size, module.stride)),
                        prod(module.weight.shape[1:]), module.out_channels * prod(module.kernel_size), own,
                        module.bias is not None, multi)
    names = _class_names(module)
    if "LIFNode" in names:
        return Geometry("lif", params=own, multi_step=multi)
    if "IFNode" in names:
        return Geometry("if", params=own, multi_step=multi)
    return None


def read_geometry(model: nn.Module) -> ModelGeometry:
    """The Lemaire-relevant shape of every Linear, Conv and IF / LIF module of ``model``, by layer name
    (the names the counts use); modules inside a neuron are the neuron's own (skipped)."""
    inside: set[int] = set()
    layers: dict[str, Geometry] = {}
    has_neurons = False
    for name, module in model.named_modules():
        if id(module) in inside:
            continue
        if is_neuron(module):
            has_neurons = True
            inside.update(id(m) for m in module.modules() if m is not module)
        found = _geometry(module)
        if found is not None:
            layers[name or "(model)"] = found
    return ModelGeometry(layers, has_neurons)


@dataclass(frozen=True)
class Sizing:
    """How big each memory is (its size sets the energy per byte).

    ``time_steps``: the steps of one forward (a neuron's potentials hold one step of its layer).
    ``batch``: samples that share the buffers (spikingjelly sizes them for the batch it is given).
    ``per_call``: size input, output and potential memories by the tensor one call of the module
    sees, as spikingjelly does (a conv on time-flattened inputs then holds all T steps), instead
    of one time step. ``fifo_elements``: capacity of the spike FIFOs.
    """

    time_steps: int = 1
    batch: int = 1
    per_call: bool = False
    fifo_elements: int = FIFO_ELEMENTS


@dataclass
class LayerTraffic:
    """Lemaire's counts for one layer, per sample."""

    ops: dict[str, float] = field(default_factory=lambda: {"ac": 0.0, "mac": 0.0})
    addressing: dict[str, float] = field(default_factory=lambda: {"acc_addr": 0.0, "mac_addr": 0.0})
    accesses: list[tuple[str, float, float]] = field(default_factory=list)  # (component, bytes, capacity bytes)

    def access(self, component: str, nbytes: float, capacity: float) -> None:
        if nbytes:
            self.accesses.append((component, nbytes, capacity))


def _steps_per_call(geo: Geometry, calls: int, sizing: Sizing) -> int:
    if sizing.per_call:
        return sizing.time_steps if geo.multi_step else 1
    return sizing.time_steps if calls < sizing.time_steps else 1  # one call per step, or all steps at once


def _synapse(layer, geo: Geometry, sizing: Sizing, word: int, has_neurons: bool) -> LayerTraffic:
    out = LayerTraffic()
    steps = _steps_per_call(geo, len(layer.records), sizing)
    fifo = sizing.fifo_elements * word
    for rec in layer.records:
        n_in, n_out = rec.numel[0], rec.out_numel
        held = sizing.batch if sizing.per_call else sizing.batch / steps  # input / output buffers: call or step
        per_step = sizing.batch / steps  # potentials: one step of the batch
        if rec.kinds[0] == BINARY:
            active = rec.nnz[0]
            fanout = active * geo.fan_out
            out.ops["ac"] += active * geo.synops
            out.addressing["acc_addr"] += fanout
            out.addressing["mac_addr"] += 2 * active if geo.kind == "conv" else 0.0
            out.access("inout", active * word, fifo)
            weight_uses = fanout
            out.access("potential", 2 * fanout * word, n_out * word * per_step)  # read + write
        else:
            weight_uses = n_out * geo.fan_in
            out.ops["mac"] += weight_uses
            out.addressing["acc_addr"] += n_in + n_out + geo.kernel_weights / sizing.batch  # kernel: once a call
            out.access("inout", (n_in if geo.kind == "linear" else weight_uses) * word, n_in * word * held)
            if not has_neurons:
                out.access("inout", n_out * word, n_out * word * held)
        bias = n_out if geo.bias else 0.0
        out.ops["ac"] += bias
        out.access("params", (weight_uses + bias) * word, geo.params * word)
    return out


def _neuron(layer, geo: Geometry, sizing: Sizing, word: int) -> LayerTraffic:
    out = LayerTraffic()
    updates, spikes = layer.total("neuron_updates"), layer.total("spikes")
    capacity = updates / max(sizing.time_steps, 1) * word * sizing.batch
    out.access("potential", 2 * updates * word, capacity)  # read + write every potential every step
    out.ops["ac"] += spikes
    if geo.kind == "lif":
        out.ops["mac"] += updates  # the leak
    out.access("inout", spikes * word, sizing.fifo_elements * word)
    return out


def lemaire_traffic(counts: OpCounts, geometry: ModelGeometry, sizing: Sizing, word_bytes: int
                    ) -> tuple[dict[str, LayerTraffic], list[str]]:
    """Per layer, Lemaire's operations, addressing and memory accesses (per sample); and the layers
    that do work outside the model's scope (``"name (Type)"``), whose memory traffic is not modelled."""
    traffic: dict[str, LayerTraffic] = {}
    outside: list[str] = []
    # neurons found by what they do (energy.counting) are neurons here too; not IF / LIF by class,
    # their own traffic is outside the model (listed), but synapses feeding them write no outputs
    has_neurons = geometry.has_neurons or bool(counts.behavioural_neurons)
    for layer in counts.layers:
        geo = geometry.layers.get(layer.name)
        if geo is not None and geo.kind in ("linear", "conv") and layer.records:
            traffic[layer.name] = _synapse(layer, geo, sizing, word_bytes, has_neurons)
        elif geo is not None and geo.kind in ("if", "lif") and layer.total("neuron_updates"):
            traffic[layer.name] = _neuron(layer, geo, sizing, word_bytes)
        elif _works(layer, counts.bn_folded):
            outside.append(f"{layer.name} ({layer.type})")
    return traffic, outside


_FREE_WHEN_FOLDED = ("bn",)


def _works(layer, bn_folded: bool) -> bool:
    """Whether a layer does arithmetic that is priced (folded BatchNorm and constant scalings are not)."""
    if layer.records:
        return True
    return any(v for k, v in layer.extras.items()
               if k not in ("spikes", "scalings") and not (bn_folded and k in _FREE_WHEN_FOLDED))


def memory_pj(traffic: LayerTraffic, pj_per_byte) -> dict[str, float]:
    """Energy of a layer's memory accesses per component, given ``pj_per_byte(capacity_bytes)``."""
    by: dict[str, float] = defaultdict(float)
    for component, nbytes, capacity in traffic.accesses:
        by[component] += nbytes * pj_per_byte(capacity)
    return dict(by)
