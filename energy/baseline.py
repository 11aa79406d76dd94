"""The fair baseline beside every figure: the same network as a quantized ANN (issue 26 part 3).

Yan, Bai, Tang and Wong, "Reconsidering the energy efficiency of spiking neural networks"
(arXiv 2409.08290) compare a rate-coded SNN of T time steps with the functionally equivalent
quantized ANN whose activations have ``ceil(log2(T+1))`` bits: the count of spikes a neuron can
emit in T steps (0..T) fits in that many bits, so one pass of the ANN computes what the SNN
spreads over T. This module prices that twin, and an INT8 twin, from the SNN's own counts:

* every synaptic op (conv, linear, matmul) runs once instead of T times: ``dense / T``
  multiply-accumulates. An event operand of the SNN becomes a b-bit activation; a real operand
  (the image, a weight) keeps the profile's precision p;
* a multiply of an a-bit by a w-bit integer costs ``(mac_pj - ac_pj) * a * w / p**2``: an array
  multiplier's partial products grow with the product of the widths (Horowitz, ISSCC 2014:
  8-bit 0.2 pJ, 32-bit 3.1 pJ, 15.5x for 16x the partial products); the accumulate keeps the
  profile's ``ac_pj``, the adder the SNN's synaptic ops use. On a profile whose regime is not an
  integer width (fp32, fp16, a chip) the multiplier is not scaled: every MAC is ``mac_pj``;
* each spiking neuron becomes a quantiser applied once per output element: one multiply-add
  (scale, ``mac_pj``) and one comparison (clamp, ``add_pj``) instead of T neuron updates;
* the other element-wise work (residual additions, pooling, normalisation, softmax...) runs
  once instead of T times, priced as the snnas convention prices it.

With Lemaire et al.'s memory model the twin's Linear and Conv layers take the model's dense
path (``energy.memory``: every weight use read, inputs from a buffer of the input's size, the
output written) with b-bit activation words and weights at the profile's word size; neurons
become quantisers without potentials. The ANN twin is dense: it skips no zero activation.

The break-even firing rate: the SNN's energy is a polynomial of degree at most 2 in a uniform
scale s of every spike count (accumulates and spike traffic are linear in s, spike x spike
coincidences quadratic, everything else fixed); the scale at which it equals the twin's,
times the measured rate (the synapses' event-input rate: non-zero spike inputs per input element
and step), is the rate below which the SNN wins.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from snnas.energy.conventions import get_convention
from snnas.energy.counts import AC_KEYS, LayerCounts, OpCounts, OpRecord
from snnas.energy.estimate import PJ_PER_MJ, EnergyEstimate, estimate
from snnas.energy.memory import Geometry, ModelGeometry
from snnas.energy.operands import REAL
from snnas.energy.profile import Profile

INT8_BITS = 8
SOURCE = "Yan, Bai, Tang, Wong, arXiv 2409.08290"
_NOT_REPEATED = ("neuron_updates", "spikes")  # replaced by quantisers in the twin


def activation_bits(time_steps: int) -> int:
    """Bits of the ANN activation that holds a neuron's spike count over T steps: ceil(log2(T+1))."""
    if time_steps < 1:
        raise ValueError(f"time steps must be at least 1, got {time_steps}")
    return max(1, math.ceil(math.log2(time_steps + 1)))


def weight_bits(profile: Profile) -> int | None:
    """The integer width of the profile's arithmetic (int8 -> 8), or None (floating point, a chip)."""
    found = re.fullmatch(r"int(\d+)", profile.regime.strip().lower())
    return int(found.group(1)) if found else None


@dataclass
class TwinEstimate:
    """The energy of the ANN twin with ``bits``-bit activations, per sample."""

    name: str  # "quantized" | "int8"
    bits: int
    total_mj: float
    complete: bool
    missing: list[str]
    by_layer_mj: dict[str, float] = field(default_factory=dict)


class _Bill:
    def __init__(self, profile: Profile) -> None:
        self.profile, self.by_layer, self.missing = profile, {}, set()

    def pj(self, term: str) -> float | None:
        value = self.profile.value(term)
        if value is None:
            self.missing.add(term)
        return value

    def add(self, layer: str, count: float, pj: float | None) -> None:
        if count and pj is not None:
            self.by_layer[layer] = self.by_layer.get(layer, 0.0) + count * pj / PJ_PER_MJ


def mac_pj(bill: _Bill, a_bits: int, w_bits: int) -> float | None:
    """One a-bit x w-bit multiply-accumulate on the profile: the multiply scaled by a*w/p**2."""
    mac, acc = bill.pj("mac_pj"), bill.pj("ac_pj")
    p = weight_bits(bill.profile)
    if mac is None or acc is None:
        return None
    if p is None or a_bits * w_bits == p * p:
        return mac
    return max(mac - acc, 0.0) * a_bits * w_bits / (p * p) + acc


def _operand_bits(rec: OpRecord, bits: int, p: int) -> tuple[int, int]:
    if rec.op != "matmul":  # conv / linear: the weight keeps the profile's precision
        return (p if rec.kinds[0] == REAL else bits), p
    return tuple(p if kind == REAL else bits for kind in rec.kinds)  # type: ignore[return-value]


def _quantiser_pj(bill: _Bill) -> float | None:
    mac, add = bill.pj("mac_pj"), bill.pj("add_pj")
    return None if mac is None or add is None else mac + add


def _elementwise(bill: _Bill, layer: LayerCounts, steps: int, bn_folded: bool) -> None:
    """The layer's work outside synapses and neurons, once instead of T times (snnas convention)."""
    extras = {k: v / steps for k, v in layer.extras.items() if k not in _NOT_REPEATED}
    once = OpCounts([LayerCounts(layer.name, layer.type, layer.order, [], extras)], 1, 0, {})
    terms = get_convention("snnas").quantities(once).get(layer.name, {})
    if not bn_folded and extras.get("bn"):
        terms = {**terms, "bn_pj": extras["bn"]}
    for term, count in terms.items():
        bill.add(layer.name, count, bill.pj(term))


def _arithmetic(bill: _Bill, layer: LayerCounts, steps: int, bits: int, bn_folded: bool) -> None:
    p = weight_bits(bill.profile) or INT8_BITS  # unused when the profile has no integer width
    for rec in layer.records:
        bill.add(layer.name, rec.dense / steps, mac_pj(bill, *_operand_bits(rec, bits, p)))
    bill.add(layer.name, layer.total("neuron_updates") / steps, _quantiser_pj(bill))
    _elementwise(bill, layer, steps, bn_folded)


def _dense_layer(bill: _Bill, layer: LayerCounts, geo: Geometry, steps: int, bits: int) -> None:
    """Lemaire's dense path for one Linear / Conv layer of the twin: b-bit activations, p-bit weights."""
    memory = bill.profile.memory
    w_bytes = memory.word_bits / 8
    p = weight_bits(bill.profile) or memory.word_bits
    for rec in layer.records:
        real_in = rec.kinds[0] == REAL
        a_bytes = w_bytes if real_in else bits / 8
        n_in, n_out = rec.numel[0] / steps, rec.out_numel / steps
        uses = n_out * geo.fan_in
        bill.add(layer.name, uses, mac_pj(bill, p if real_in else bits, p))
        bias = n_out if geo.bias else 0.0
        bill.add(layer.name, bias, bill.pj("ac_pj"))
        bill.add(layer.name, n_in + n_out + geo.kernel_weights, bill.pj("add_pj"))  # addressing
        reads = n_in if geo.kind == "linear" else uses
        for nbytes, capacity in ((reads * a_bytes, n_in * a_bytes), ((uses + bias) * w_bytes, geo.params * w_bytes),
                                 (n_out * bits / 8, n_out * bits / 8)):  # inputs, parameters, quantised outputs
            bill.add(layer.name, nbytes, memory.pj_per_byte(capacity) if nbytes else 0.0)


def _lemaire(bill: _Bill, counts: OpCounts, geometry: ModelGeometry | None, steps: int, bits: int) -> set[str]:
    """Price the layers Lemaire's model covers; return their names (the others are priced by arithmetic)."""
    if bill.profile.memory is None:
        bill.missing.add("memory")
        return set()
    if geometry is None:
        bill.missing.add("memory (the model's layers were not read: count with the model)")
        return set()
    done: set[str] = set()
    for layer in counts.layers:
        geo = geometry.layers.get(layer.name)
        if geo is not None and geo.kind in ("linear", "conv") and layer.records:
            _dense_layer(bill, layer, geo, steps, bits)
            done.add(layer.name)
        elif geo is not None and geo.kind in ("if", "lif") and layer.total("neuron_updates"):
            bill.add(layer.name, layer.total("neuron_updates") / steps, _quantiser_pj(bill))
            done.add(layer.name)
    return done


def twin_estimate(counts: OpCounts, profile: Profile, *, time_steps: int, bits: int, name: str = "quantized",
                  memory: bool = False, geometry: ModelGeometry | None = None) -> TwinEstimate:
    """Energy per sample of the ANN twin of ``counts`` (an SNN of ``time_steps`` steps) with
    ``bits``-bit activations, on ``profile``; with ``memory``, Lemaire's model for the layers of
    ``geometry`` (the others priced by their arithmetic, and the estimate incomplete as the SNN's)."""
    bill = _Bill(profile)
    lemaire = _lemaire(bill, counts, geometry, time_steps, bits) if memory else set()
    outside = []
    for layer in counts.layers:
        if layer.name not in lemaire:
            _arithmetic(bill, layer, time_steps, bits, counts.bn_folded)
            if memory and geometry is not None and layer.name in bill.by_layer:
                outside.append(layer.name)
    if outside and profile.memory is not None:
        bill.missing.add(f"memory of {len(outside)} layers outside Lemaire's model")
    gaps = sorted(bill.missing) + [f"op {op}" for op in sorted(counts.unsupported)]
    return TwinEstimate(name, bits, sum(bill.by_layer.values()), not gaps, gaps, bill.by_layer)


# ---- the break-even firing rate ---------------------------------------------------------------

def _scaled_record(rec: OpRecord, s: float) -> OpRecord:
    """``rec`` with every spike count of its event operands scaled by ``s``."""
    events = _event_operands(rec)
    if not events:
        return rec
    factor = [s if i in events else 1.0 for i in range(2)]
    work = s ** len(events)  # a spike x spike coincidence scales with both rates
    exact = {k: v * work if k in AC_KEYS else v for k, v in rec.exact.items()}
    effective = rec.effective * s if rec.effective is not None and rec.op != "matmul" else rec.effective
    rates = None if rec.rates is None else tuple(r * f for r, f in zip(rec.rates, factor))
    return dataclasses.replace(rec, nnz=tuple(n * f for n, f in zip(rec.nnz, factor)), exact=exact,
                               effective=effective, rates=rates)


def at_rate_scale(counts: OpCounts, s: float) -> OpCounts:
    """The counts had every neuron fired ``s`` times as often: spikes and spike-driven work scaled."""
    layers = []
    for layer in counts.layers:
        extras = layer.extras.copy()
        if extras.get("spikes"):
            extras["spikes"] = extras["spikes"] * s
        layers.append(dataclasses.replace(layer, records=[_scaled_record(r, s) for r in layer.records],
                                          extras=extras))
    return dataclasses.replace(counts, layers=layers)


def break_even_scale(energy_at: Callable[[float], float], target: float) -> float | None:
    """The smallest s >= 0 with energy_at(s) == target, for energy_at a polynomial of degree <= 2
    increasing in s; None when the SNN costs more than ``target`` even silent, or never reaches it."""
    f0, f1, f2 = energy_at(0.0), energy_at(1.0), energy_at(2.0)
    quad = (f2 - 2 * f1 + f0) / 2
    lin = f1 - f0 - quad
    gap = target - f0
    disc = lin * lin + 4 * quad * gap
    if gap < 0 or disc < 0 or lin + math.sqrt(disc) <= 0:
        return None
    return 2 * gap / (lin + math.sqrt(disc))  # the root nearest 0 of quad s^2 + lin s - gap, stable at quad -> 0


def _event_operands(rec: OpRecord) -> list[int]:
    if rec.op == "matmul":
        return [i for i, kind in enumerate(rec.kinds) if kind != REAL]
    return [0] if rec.kinds[0] != REAL else []  # a conv / linear: only its input carries events


def measured_rate(counts: OpCounts) -> float | None:
    """The firing rate the synapses see: non-zero event inputs per input element and step, over every
    spike-driven operand of every synaptic op (the rate a uniform scale of every spike multiplies);
    None when no synaptic op has an event operand."""
    nnz = numel = 0.0
    for layer in counts.layers:
        for rec in layer.records:
            for i in _event_operands(rec):
                nnz, numel = nnz + rec.nnz[i], numel + rec.numel[i]
    return nnz / numel if numel else None


def neuron_rate(counts: OpCounts) -> float | None:
    """Spikes per neuron and time step, or None without neurons."""
    updates = counts.total("neuron_updates")
    return counts.total("spikes") / updates if updates else None


@dataclass
class Comparison:
    """The SNN against one twin: energies, their ratio and the break-even firing rate."""

    twin: TwinEstimate
    ratio: float | None  # SNN / twin
    break_even_scale: float | None  # the uniform scale of every spike count at which both cost the same
    break_even_rate: float | None  # that scale x the measured rate: the SNN wins below it

    def to_dict(self) -> dict:
        t = self.twin
        return {"name": t.name, "bits": t.bits, "energy_mj": t.total_mj, "snn_over_ann": self.ratio,
                "break_even_scale": self.break_even_scale, "break_even_rate": self.break_even_rate,
                "complete": t.complete, "missing": t.missing}


@dataclass
class Baseline:
    """The fair baseline of one SNN estimate: its quantized and INT8 twins on the same profile and model."""

    profile: str
    time_steps: int
    weight_bits: int | None  # the profile's integer width; None: multiplies not scaled (floating point, a chip)
    snn_mj: float
    snn_complete: bool
    measured_rate: float | None  # the synapses' event-input rate (``measured_rate``)
    neuron_rate: float | None  # spikes per neuron and step
    comparisons: list[Comparison]

    @property
    def complete(self) -> bool:
        return self.snn_complete and all(c.twin.complete for c in self.comparisons)

    def to_dict(self) -> dict:
        return {"profile": self.profile, "time_steps": self.time_steps, "weight_bits": self.weight_bits,
                "snn_mj": self.snn_mj, "measured_rate": self.measured_rate,
                "neuron_rate": self.neuron_rate, "complete": self.complete,
                "source": SOURCE, "twins": [c.to_dict() for c in self.comparisons]}


def fair_baseline(counts: OpCounts, snn: EnergyEstimate, profile: Profile, *, time_steps: int, memory: bool = False,
                  geometry: ModelGeometry | None = None, sizing=None) -> Baseline:
    """The SNN estimate ``snn`` (of ``counts`` on ``profile``, convention and model as it says) beside
    its ceil(log2(T+1))-bit and INT8 ANN twins, with the break-even firing rate against each."""
    rate = measured_rate(counts)
    priced: dict[float, float] = {1.0: snn.total_mj}

    def snn_at(s: float) -> float:
        if s not in priced:
            priced[s] = estimate(at_rate_scale(counts, s), profile, convention=snn.convention, memory=memory,
                                 geometry=geometry, sizing=sizing).total_mj
        return priced[s]

    comparisons = []
    for name, bits in (("quantized", activation_bits(time_steps)), ("int8", INT8_BITS)):
        twin = twin_estimate(counts, profile, time_steps=time_steps, bits=bits, name=name, memory=memory,
                             geometry=geometry)
        scale = break_even_scale(snn_at, twin.total_mj) if rate else None
        comparisons.append(Comparison(twin, snn.total_mj / twin.total_mj if twin.total_mj else None, scale,
                                      None if scale is None or rate is None else scale * rate))
    return Baseline(profile.name, time_steps, weight_bits(profile), snn.total_mj, snn.complete, rate,
                    neuron_rate(counts), comparisons)
