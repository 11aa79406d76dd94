"""Counting conventions: how each paper turns operation counts into priced quantities.

A convention maps ``OpCounts`` to, per layer, ``{profile term: count}``; ``energy.estimate``
then applies the profile's picojoules. Presets (see shared/reference/energy.md):

* ``snnas`` (default): exact counts. MACs for real x real, every spike-driven accumulate
  (synaptic, signed, multi-level, spike x spike coincidences) as AC, neuron updates, and the
  element-wise work outside synapses: additions (residual additions, reductions, pooling,
  masks, piecewise-linear activations such as ReLU and comparisons) as ``add_pj``; products of
  two real tensors as ``mac_pj``; LayerNorm-style normalisation as 2 MACs + 2 additions per
  element (normalise and affine; mean and variance); transcendental functions (softmax, exp,
  sigmoid, tanh, GELU, sqrt) as ``nonlinear_pj``. BatchNorm (unless priced), biases and
  scalings by constants are folded into the neighbouring synapse or neuron (counted, not priced).
* ``spikformer``: the first layer fed real values (the encoding conv) as MAC over all T
  steps; every other conv / linear / matmul as rate x dense AC (rate = firing rate of the
  spike operand; 1 for real operands).
* ``spikingresformer``: exact SOPs as AC; the encoding layer and the classifier excluded.
* ``spikingformer``: a conv / linear whose input is not strictly binary is MAC, else rate x
  dense AC, bias included; a matmul is rate x dense AC with the lowest rate of its binary
  operands (its SSA formula T*H*N*d^2*(min(fr_K, fr_V) + fr_Q) for Q(K^T V)), MAC if none.
* ``neurobench``: conv / linear only, effective ops (non-zero input x non-zero weight, bias
  excluded); AC when the input is binary or ternary, MAC otherwise; matmuls not counted.
* ``spikingjelly``: spikingjelly 2.0's SynOpCounter and MACCounter. Only an exactly binary
  operand is a spike: a conv / linear with a binary input is its exact synaptic ops (AC), any
  other input is dense MACs; a binary x binary matmul is its coinciding pairs, a binary x
  non-binary matmul the non-zeros of the binary side x the other dimension (AC), any other
  matmul dense MACs; BatchNorm elements are MACs.

None of the paper presets counts neuron updates, residual additions, BatchNorm, pooling or
memory traffic, because the papers do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from snnas.energy.counts import OpCounts, OpRecord
from snnas.energy.operands import BINARY, REAL, TERNARY

Quantities = dict[str, dict[str, float]]  # layer name -> profile term -> count


@dataclass(frozen=True)
class Convention:
    name: str
    summary: str
    needs_effective: bool
    quantities: Callable[[OpCounts], Quantities]


def _records(counts: OpCounts):
    for layer in counts.layers:
        for rec in layer.records:
            yield layer.name, rec


def _encoding(counts: OpCounts) -> OpRecord | None:
    return next((r for _, r in _records(counts) if r.op != "matmul" and r.kinds[0] == REAL), None)


NORM_MACS, NORM_ADDS = 2, 2  # per LayerNorm / GroupNorm element: normalise + affine; mean + variance


def _classifier(counts: OpCounts) -> OpRecord | None:
    linears = [r for _, r in _records(counts) if r.op == "linear"]
    return linears[-1] if linears else None


def _snnas(counts: OpCounts) -> Quantities:
    q: Quantities = {}
    for layer in counts.layers:
        norm = layer.total("norm")
        terms = {
            "mac_pj": layer.total("macs") + layer.total("products") + NORM_MACS * norm,
            "ac_pj": layer.total("acs"),
            "neuron_update_pj": layer.total("neuron_updates"),
            "active_update_extra_pj": layer.total("spikes"),
            "spike_pj": layer.total("spikes"),
            "add_pj": sum(layer.total(k) for k in ("residual_adds", "reductions", "pool", "masks", "activations"))
            + NORM_ADDS * norm,
            "nonlinear_pj": layer.total("nonlinear"),
        }
        q[layer.name] = {k: v for k, v in terms.items() if v}
    return q


def _spikformer(counts: OpCounts) -> Quantities:
    q: Quantities = defaultdict(lambda: defaultdict(float))
    encoding = _encoding(counts)
    for name, rec in _records(counts):
        if rec is encoding:
            q[name]["mac_pj"] += rec.dense
        else:
            q[name]["ac_pj"] += rec.dense * rec.event_rate
    return q


def _spikingresformer(counts: OpCounts) -> Quantities:
    q: Quantities = defaultdict(lambda: defaultdict(float))
    excluded = {id(_encoding(counts)), id(_classifier(counts))}
    for name, rec in _records(counts):
        if id(rec) not in excluded:
            q[name]["mac_pj"] += rec.total("macs")
            q[name]["ac_pj"] += rec.total("acs")
    return q


def _spikingformer(counts: OpCounts) -> Quantities:
    q: Quantities = defaultdict(lambda: defaultdict(float))
    for name, rec in _records(counts):
        if rec.op == "matmul":
            binary = [r for k, r in zip(rec.kinds, rec.operand_rates) if k == BINARY]
            if binary:
                q[name]["ac_pj"] += rec.dense * min(binary)
            else:
                q[name]["mac_pj"] += rec.dense
        elif rec.kinds[0] == BINARY:
            q[name]["ac_pj"] += (rec.dense + rec.bias) * rec.operand_rates[0]
        else:
            q[name]["mac_pj"] += rec.dense + rec.bias
    return q


def _neurobench(counts: OpCounts) -> Quantities:
    q: Quantities = defaultdict(lambda: defaultdict(float))
    for name, rec in _records(counts):
        if rec.op == "matmul":
            continue
        if rec.effective is None:
            raise ValueError("the neurobench convention needs effective counts: count with effective=True")
        q[name]["ac_pj" if rec.kinds[0] in (BINARY, TERNARY) else "mac_pj"] += rec.effective
    return q


def _spikingjelly(counts: OpCounts) -> Quantities:
    q: Quantities = defaultdict(lambda: defaultdict(float))
    for layer in counts.layers:
        if layer.total("bn"):
            q[layer.name]["mac_pj"] += layer.total("bn")
        for rec in layer.records:
            if rec.op != "matmul":
                synops, macs = (rec.total("ac"), 0.0) if rec.kinds[0] == BINARY else (0.0, rec.dense)
            elif rec.kinds == (BINARY, BINARY):
                synops, macs = rec.total("ac_coincidence"), 0.0
            elif BINARY in rec.kinds:  # the other operand taken as values
                side = rec.kinds.index(BINARY)
                synops, macs = rec.nnz[side] * rec.dense / rec.numel[side], 0.0
            else:
                synops, macs = 0.0, rec.dense
            q[layer.name]["ac_pj"] += synops
            q[layer.name]["mac_pj"] += macs
    return q


CONVENTIONS: dict[str, Convention] = {c.name: c for c in [
    Convention("snnas", "exact counts: MAC, every spike-driven AC, neuron updates, additions", False, _snnas),
    Convention("spikformer", "encoding layer MAC over T; rate x dense AC elsewhere", False, _spikformer),
    Convention("spikingresformer", "exact SOPs as AC; encoding layer and classifier excluded", False,
               _spikingresformer),
    Convention("spikingformer", "non-binary input as MAC; rate x dense AC (bias incl.); SSA by formula", False,
               _spikingformer),
    Convention("neurobench", "effective ops of conv/linear, ternary as AC, zero weights and bias excluded", True,
               _neurobench),
    Convention("spikingjelly", "spikingjelly 2.0's op counters: only binary inputs are spikes; BatchNorm as MAC",
               False, _spikingjelly),
]}


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r}; choose from {', '.join(CONVENTIONS)}") from None


def with_rates(counts: OpCounts, rates: Mapping[str, float | Sequence[Sequence[float | None]]]) -> OpCounts:
    """Rate mode: replace measured firing rates by given ones (e.g. a paper's published rates).

    ``rates[layer]`` is either one input rate for every synaptic op of the layer, or one
    ``(rate_left, rate_right)`` pair per op in execution order (``None`` keeps the measured one).
    Dense counts are kept. Rate-based conventions (spikformer, spikingformer) read the rates
    directly; for the exact ones (snnas, spikingresformer, neurobench, spikingjelly) the
    event-driven work of a rated op becomes its expectation at those rates: rate x dense ACs for
    an event input (weights taken as non-zero), rate_left x rate_right x dense coincidences for
    a spike x spike matmul. An op whose rated operand is real keeps its MACs.
    """
    import dataclasses

    by_name = {layer.name: layer for layer in counts.layers}
    unknown = sorted(set(rates) - set(by_name))
    if unknown:
        raise KeyError(f"no counted layer named {unknown[0]!r}")
    layers = []
    for layer in counts.layers:
        given = rates.get(layer.name)
        if given is None:
            layers.append(layer)
            continue
        if isinstance(given, (int, float)):
            pairs = [(float(given), None)] * len(layer.records)
        else:
            pairs = [tuple(p) for p in given]
            if len(pairs) != len(layer.records):
                raise ValueError(f"{layer.name}: {len(pairs)} rate pairs for {len(layer.records)} ops")
        records = [_rated(r, (p[0], p[1] if len(p) > 1 else None)) for r, p in zip(layer.records, pairs)]
        layers.append(dataclasses.replace(layer, records=records))
    return dataclasses.replace(counts, layers=layers)


_AC_OF_KIND = {BINARY: "ac", TERNARY: "ac_signed"}


def _rated(rec: OpRecord, pair: tuple[float | None, float | None]) -> OpRecord:
    """``rec`` at the given operand rates: nnz, exact event-driven counts and effective ops as expected there."""
    import dataclasses

    rates = tuple(float(old) if new is None else float(new) for old, new in zip(rec.operand_rates, pair))
    nnz = tuple(n if new is None else r * m for n, new, r, m in zip(rec.nnz, pair, rates, rec.numel))
    exact, effective = dict(rec.exact), rec.effective
    events = [i for i, k in enumerate(rec.kinds) if k != REAL]
    if rec.op != "matmul":
        events = events[:1] if events and events[0] == 0 else []  # a conv / linear: only its input is events
    if events and any(pair[i] is not None for i in events):
        for key in ("ac", "ac_signed", "ac_multi", "ac_coincidence"):
            exact.pop(key, None)
        if len(events) == 2:
            exact["ac_coincidence"] = rates[0] * rates[1] * rec.dense
        else:
            exact[_AC_OF_KIND.get(rec.kinds[events[0]], "ac_multi")] = rates[events[0]] * rec.dense
        if effective is not None and rec.op != "matmul":
            effective = rates[0] * rec.dense
    return dataclasses.replace(rec, rates=rates, nnz=nnz, exact=exact, effective=effective)
