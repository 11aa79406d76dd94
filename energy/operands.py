"""Operand classes: what kind of values a tensor holds decides whether a product is a MAC or an AC.

* ``binary``     values in {0, 1}: spikes. A product with a weight is a selection -> accumulate (AC).
* ``ternary``    values in {-1, 0, 1} with at least one -1: signed spikes (A2OS2A's V) -> signed AC.
* ``multilevel`` values in s * {..., -1, 0, 1, 2, ...} for one scale s, beyond the two cases above:
                 integer spike counts (spike + spike shortcuts), or scaled spikes {0, s}. An input
                 of level k costs |k| accumulations.
* ``real``       anything else -> multiply-accumulate (MAC).

A tensor of zeros is ``binary`` (no events). Classification looks at values, never at which
module produced them: a {0, 0.5} tensor is multi-level, not a spike train.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BINARY, TERNARY, MULTILEVEL, REAL = "binary", "ternary", "multilevel", "real"
RANK = {BINARY: 0, TERNARY: 1, MULTILEVEL: 2, REAL: 3}  # later = more expensive
MAX_LEVEL = 64  # a tensor whose levels exceed this is treated as real


@dataclass(frozen=True)
class Operand:
    kind: str  # BINARY | TERNARY | MULTILEVEL | REAL
    levels: torch.Tensor | None  # |value| / scale as a float tensor (event weights); None for real
    nnz: float  # number of non-zero elements
    numel: int

    @property
    def rate(self) -> float:
        """Fraction of non-zero elements (the papers' firing rate)."""
        return self.nnz / self.numel if self.numel else 0.0

    @property
    def is_event(self) -> bool:
        return self.kind != REAL


def classify(x: torch.Tensor) -> Operand:
    """Classify ``x`` by its values; ``levels`` is what an event-driven layer accumulates."""
    if not x.is_floating_point():
        x = x.float()
    nonzero = x != 0
    nnz = float(nonzero.sum())
    numel = x.numel()
    if nnz == 0:
        return Operand(BINARY, torch.zeros_like(x), 0.0, numel)
    ones = x == 1
    if bool((ones | ~nonzero).all()):
        return Operand(BINARY, ones.to(x.dtype), nnz, numel)
    magnitude = x.abs()
    if bool(((magnitude == 1) | ~nonzero).all()):
        return Operand(TERNARY, magnitude, nnz, numel)
    scale = magnitude[nonzero].min()
    levels = magnitude / scale
    if bool((levels == levels.round()).all()) and float(levels.max()) <= MAX_LEVEL:
        return Operand(MULTILEVEL, levels, nnz, numel)
    return Operand(REAL, None, nnz, numel)


def worst(*kinds: str) -> str:
    """The most expensive class among ``kinds``."""
    return max(kinds, key=RANK.__getitem__)
