"""What the counter produces: one ``OpRecord`` per synaptic op, ``LayerCounts`` per module, ``OpCounts``.

Keys of a layer's counts (``LayerCounts.total``):

* ``macs``               real x real multiply-accumulates
* ``ac`` / ``ac_signed`` / ``ac_multi``  accumulates driven by binary / ternary / multi-level events
* ``ac_coincidence``     event x event products: the exact number of coinciding non-zero pairs
* ``acs``                the four AC kinds together
* ``dense``              ANN-equivalent multiply-adds (fvcore's convention, bias excluded)
* ``rate_dense``         the papers' estimate: firing rate of the event operand x dense
* ``bias``               bias additions of synaptic ops
* ``EXTRA_KEYS``         element-wise work outside synapses (see ``EXTRA_KEYS``)
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from snnas.energy.operands import REAL, worst

AC_KEYS = ("ac", "ac_signed", "ac_multi", "ac_coincidence")
CHARGE_KEYS = ("mac", *AC_KEYS)
# element-wise work outside synapses, per layer
EXTRA_KEYS = (
    "neuron_updates",  # neurons x time steps (everything inside a spiking neuron module)
    "spikes",  # non-zero outputs of spiking neurons
    "residual_adds",  # additions and subtractions of two data tensors
    "masks",  # products with a binary or ternary operand (a selection)
    "products",  # products and quotients of two real data tensors
    "reductions",  # sums, means, maxima: one addition per input element
    "pool",  # pooling windows: one addition (or comparison) per window element
    "activations",  # piecewise-linear element-wise ops: relu, clamp, abs, sign, comparisons
    "nonlinear",  # transcendental element-wise ops: exp, softmax, sigmoid, tanh, gelu, log, sqrt
    "norm",  # LayerNorm / GroupNorm / InstanceNorm elements
    "bn",  # BatchNorm elements (folded into the neighbouring synapse by default)
    "scalings",  # a data tensor times / plus / minus a constant (scalar, per-channel, embedding): folded
)
SYNAPTIC_KEYS = ("macs", "acs", *AC_KEYS, "dense", "rate_dense", "bias")


@dataclass
class OpRecord:
    """One synaptic op (conv, linear, matmul or an attention product) as counted."""

    op: str  # "conv" | "linear" | "matmul"
    dense: float  # dense multiply-adds (ANN equivalent), bias excluded
    bias: float  # bias additions
    kinds: tuple[str, str]  # operand classes: (input, weight) or (left, right)
    nnz: tuple[float, float]  # non-zero elements of each operand
    numel: tuple[float, float]  # elements of each operand
    exact: dict[str, float]  # CHARGE_KEYS -> operations actually performed, event-driven
    out_numel: float = 0.0  # elements of the output
    effective: float | None = None  # NeuroBench: non-zero input x non-zero weight pairs
    rates: tuple[float, float] | None = None  # set by conventions.with_rates; else nnz / numel

    @property
    def operand_rates(self) -> tuple[float, float]:
        if self.rates is not None:
            return self.rates
        return tuple(n / m if m else 0.0 for n, m in zip(self.nnz, self.numel))  # type: ignore[return-value]

    @property
    def event_rate(self) -> float:
        """Rate of the event operand the papers multiply dense counts by (min of two event operands)."""
        event = [r for k, r in zip(self.kinds, self.operand_rates) if k != REAL]
        return min(event) if event else 1.0

    @property
    def label(self) -> str:
        """The operand class shown for the op: its input's, or the worse of a matmul's two."""
        return worst(*self.kinds) if self.op == "matmul" else self.kinds[0]

    def total(self, key: str) -> float:
        if key == "macs":
            return self.exact.get("mac", 0.0)
        if key == "acs":
            return sum(self.exact.get(k, 0.0) for k in AC_KEYS)
        if key in AC_KEYS:
            return self.exact.get(key, 0.0)
        if key == "dense":
            return self.dense
        if key == "bias":
            return self.bias
        if key == "rate_dense":
            return 0.0 if self.kinds == (REAL, REAL) or self.total("macs") else self.dense * self.event_rate
        return 0.0

    def scaled(self, factor: float) -> "OpRecord":
        return dataclasses.replace(
            self, dense=self.dense * factor, bias=self.bias * factor, nnz=tuple(n * factor for n in self.nnz),
            numel=tuple(n * factor for n in self.numel), exact={k: v * factor for k, v in self.exact.items()},
            out_numel=self.out_numel * factor, effective=None if self.effective is None else self.effective * factor)

    def merged(self, other: "OpRecord") -> "OpRecord":
        """The same op counted on two inputs (two samples): counts add, the worse class is kept."""
        exact = Counter(self.exact)
        exact.update(other.exact)
        effective = None if self.effective is None or other.effective is None else self.effective + other.effective
        return dataclasses.replace(
            self, dense=self.dense + other.dense, bias=self.bias + other.bias,
            kinds=(worst(self.kinds[0], other.kinds[0]), worst(self.kinds[1], other.kinds[1])),
            nnz=(self.nnz[0] + other.nnz[0], self.nnz[1] + other.nnz[1]),
            numel=(self.numel[0] + other.numel[0], self.numel[1] + other.numel[1]), exact=dict(exact),
            out_numel=self.out_numel + other.out_numel, effective=effective)


@dataclass
class LayerCounts:
    """Counts of one module (per sample once ``OpCounts`` is built)."""

    name: str
    type: str
    order: int
    records: list[OpRecord] = field(default_factory=list)
    extras: Counter = field(default_factory=Counter)  # EXTRA_KEYS -> count
    params: int = 0  # parameters owned by this module itself

    def total(self, key: str) -> float:
        if key in SYNAPTIC_KEYS:
            return sum(r.total(key) for r in self.records)
        return float(self.extras.get(key, 0.0))

    @property
    def in_rate(self) -> float | None:
        """Fraction of non-zero elements over the inputs of this layer's synaptic ops."""
        numel = sum(r.numel[0] for r in self.records)
        return sum(r.nnz[0] for r in self.records) / numel if numel else None

    @property
    def operand(self) -> str | None:
        return worst(*(r.label for r in self.records)) if self.records else None

    def absorb(self, other: "LayerCounts") -> None:
        """Add ``other`` (the same layer counted on another input) into this one."""
        for i, rec in enumerate(other.records):
            if i < len(self.records) and self.records[i].op == rec.op:
                self.records[i] = self.records[i].merged(rec)
            else:
                self.records.append(rec)
        self.extras.update(other.extras)


@dataclass
class OpCounts:
    """Per-sample counts of one model on one input."""

    layers: list[LayerCounts]
    batch_size: int
    params: int
    unsupported: dict[str, int]  # arithmetic op -> calls (in one pass) that no handler counted
    bn_folded: bool = True  # BatchNorm treated as folded into the neighbouring synapse while counting
    per_sample: bool = True  # operand classes decided per sample (False: per batch tensor)
    # why each sample ran on its own forward ("" when one batched pass counted every sample on its own)
    per_sample_loop: str = ""
    # modules counted as neurons for what they do (a threshold reached again through its reset), not their class
    behavioural_neurons: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """False when some arithmetic was not counted: every total is then a lower bound."""
        return not self.unsupported

    def total(self, key: str) -> float:
        return sum(layer.total(key) for layer in self.layers)

    def synaptic_layers(self) -> list[LayerCounts]:
        return [layer for layer in self.layers if layer.records]
