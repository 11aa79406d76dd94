"""Operand classes: what kind of values a tensor holds decides whether a product is a MAC or an AC.

* ``binary``     values in {0, 1}: spikes. A product with a weight is a selection -> accumulate (AC).
* ``ternary``    values in {-1, 0, 1} with at least one -1: signed spikes (A2OS2A's V) -> signed AC.
* ``multilevel`` values that are whole multiples k * q of one quantum q, |k| <= ``MAX_LEVEL``, beyond
                 the two cases above: integer spike counts such as {0, 1, 2} from spike + spike
                 shortcuts or {0, 2, 3}, scaled spikes {0, s}, spikes averaged over a window
                 {0, 1/9, 2/9, ...}. An element of level |k| costs |k| accumulations.
* ``real``       anything else -> multiply-accumulate (MAC).

The quantum is 1 when every value is an integer (spike counts: a count of k costs k, whatever
else the tensor holds); otherwise it is the largest quantum that divides every value (a spike
amplitude s, 1/8 for SSA-scaled spikes, 1/9 for spikes averaged over a 3 x 3 window), so levels
are never over-counted. A fractional quantum is the tensor's: a sample whose values are all
multiples of 2q would alone count half the levels, which is why ``count_ops`` counts each
sample on its own by default.

A tensor of zeros is ``binary`` (no events). Classification looks at values, never at which
module produced them: a {0, 0.5} tensor is multi-level (level 1 with q = 1/2), not a spike train.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

BINARY, TERNARY, MULTILEVEL, REAL = "binary", "ternary", "multilevel", "real"
RANK = {BINARY: 0, TERNARY: 1, MULTILEVEL: 2, REAL: 3}  # later = more expensive
MAX_LEVEL = 64  # an event of a higher level is no spike any more: the tensor is treated as real
_RTOL = 1e-5  # float32 multiples of 1/m are not exact (1/9 * 9 = 0.99999994), within ~1e-6
_PROBE = 4096  # non-zero values tried against every quantum before the full check


@dataclass(frozen=True)
class Operand:
    kind: str  # BINARY | TERNARY | MULTILEVEL | REAL
    levels: torch.Tensor | None  # |value| / quantum, same shape as the tensor; None for real
    nnz: float  # number of non-zero elements
    numel: int
    # for a batch (``classify_samples``): whether every sample is of ``kind``; if not, each sample's kind
    sample_kinds: tuple[str, ...] | None = None

    @property
    def uniform(self) -> bool:
        return self.sample_kinds is None

    @property
    def rate(self) -> float:
        """Fraction of non-zero elements (the papers' firing rate)."""
        return self.nnz / self.numel if self.numel else 0.0

    @property
    def is_event(self) -> bool:
        return self.kind != REAL


def _whole(values: torch.Tensor, multiplier: float) -> bool:
    scaled = values * multiplier
    return bool(((scaled - scaled.round()).abs() <= _RTOL * scaled.clamp_min(1.0)).all())


def _quanta(values: torch.Tensor) -> torch.Tensor:
    """The quanta, largest first, of which every value (non-zero magnitudes, float64) is a whole
    multiple of at most ``MAX_LEVEL``. A quantum divides the smallest value (q = low / k, k <=
    MAX_LEVEL) and reaches the largest (q >= high / MAX_LEVEL), so there are at most 64 candidates."""
    low, high = float(values.min()), float(values.max())
    if not (math.isfinite(low) and math.isfinite(high) and low > 0):
        return values.new_zeros(0)
    quanta = low / torch.arange(1, MAX_LEVEL + 1, dtype=values.dtype, device=values.device)
    quanta = quanta[quanta * (MAX_LEVEL + 0.5) >= high]
    for part in (values[:16], values[:_PROBE], values):  # a few values rule out almost every quantum
        scaled = part.unsqueeze(0) / quanta.unsqueeze(1)  # [quanta, values]
        quanta = quanta[((scaled - scaled.round()).abs() <= _RTOL * scaled.clamp_min(1.0)).all(dim=1)]
        if quanta.numel() == 0:
            break
    return quanta


def _may_be_events(probe: torch.Tensor) -> bool:
    """Whether the non-zero magnitudes ``probe`` (some of a tensor's, float64) could all be whole
    multiples of one quantum: a real-valued tensor is recognised from a few thousand of its values."""
    return probe.numel() == 0 or bool((probe == probe.round()).all()) or _quanta(probe).numel() > 0


def _quantum(values: torch.Tensor) -> float | None:
    """1 for integers (spike counts: a count of k costs k); else the largest quantum that divides
    every value; None for real values."""
    if _whole(values, 1.0):
        return 1.0
    quanta = _quanta(values)
    return float(quanta[0]) if quanta.numel() else None


def _as_counted(x: torch.Tensor) -> torch.Tensor:
    return x.float() if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16) else x


def classify(x: torch.Tensor) -> Operand:
    """Classify ``x`` by its values; ``levels`` is what an event-driven layer accumulates."""
    x = _as_counted(x)  # levels are counted in float32 at least: exact whole numbers up to 2**24
    flat = x.reshape(-1)
    numel = x.numel()
    nnz = float(torch.count_nonzero(flat))
    if nnz == 0:
        return Operand(BINARY, x, 0.0, numel)
    head = flat[:_PROBE]
    if not _may_be_events(head[head != 0].abs().double()):
        return Operand(REAL, None, nnz, numel)
    if bool((flat.eq(0) | flat.eq(1)).all()):
        return Operand(BINARY, x, nnz, numel)
    magnitude = x.abs()
    if bool((magnitude.eq(0) | magnitude.eq(1)).all()):
        return Operand(TERNARY, magnitude, nnz, numel)
    values = magnitude.reshape(-1)[flat != 0].double()
    if not bool(torch.isfinite(values).all()):
        return Operand(REAL, None, nnz, numel)
    quantum = _quantum(values)
    if quantum is None or float(values.max()) / quantum > MAX_LEVEL + 0.5:
        return Operand(REAL, None, nnz, numel)
    return Operand(MULTILEVEL, (magnitude / quantum).round(), nnz, numel)


def worst(*kinds: str) -> str:
    """The most expensive class among ``kinds``."""
    return max(kinds, key=RANK.__getitem__)


# ----------------------------------------------------------------------------- a batch, sample by sample
def classify_samples(x: torch.Tensor, outer: int, batch: int, inner: int) -> Operand:
    """``x`` holds ``batch`` samples as ``[outer, batch, inner]`` (see ``energy.samples``): the operand
    each sample's own ``classify`` gives, for the batch at once. When every sample is of one kind the
    levels are each sample's own (a fractional quantum is the sample's); otherwise ``sample_kinds``
    lists the kinds and ``levels`` is None (the counter then counts the op sample by sample)."""
    x = _as_counted(x)
    nnz = float(torch.count_nonzero(x))
    if nnz == 0:
        return Operand(BINARY, x, nnz, x.numel())
    if torch.equal(x, x.round()):  # whole numbers: each sample's kind from its extremes
        x3 = x.reshape(outer, batch, inner)
        return _whole_samples(x, x3.amin(dim=(0, 2)), x3.amax(dim=(0, 2)), nnz)
    rows = x.reshape(outer, batch, inner).transpose(0, 1)  # [batch, outer, inner]
    real = _surely_real(rows)
    each = [None if real[i] else classify(rows[i]) for i in range(batch)]
    kinds = [REAL if op is None else op.kind for op in each]
    if any(k != kinds[0] for k in kinds):
        return Operand(worst(*kinds), None, nnz, x.numel(), tuple(kinds))
    if kinds[0] == REAL:
        return Operand(REAL, None, nnz, x.numel())
    levels = torch.stack([op.levels.reshape(outer, inner) for op in each], dim=1)
    return Operand(kinds[0], levels.reshape(x.shape), nnz, x.numel())


def _whole_samples(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, nnz: float) -> Operand:
    """Samples of whole numbers, by their least and greatest values: binary ({0, 1}), ternary ({-1, 0, 1}),
    multi-level (quantum 1, levels their magnitudes) or, past ``MAX_LEVEL`` or infinite, real, as
    ``classify`` finds each."""
    largest = torch.maximum(high, -low)
    kinds = [BINARY if m <= 1 and lo >= 0 else TERNARY if m <= 1 else MULTILEVEL if m <= MAX_LEVEL + 0.5 else REAL
             for lo, m in zip(low.tolist(), largest.tolist())]
    if any(k != kinds[0] for k in kinds):
        return Operand(worst(*kinds), None, nnz, x.numel(), tuple(kinds))
    kind = kinds[0]
    return Operand(kind, x if kind == BINARY else None if kind == REAL else x.abs(), nnz, x.numel())


def _surely_real(rows: torch.Tensor) -> list[bool]:
    """Per sample (``rows`` is ``[batch, ...]``): whether ``classify`` finds it real from the first
    test of its probe (the first 16 non-zero magnitudes against every quantum), computed for all
    samples at once; a sample not ruled out here is classified on its own."""
    batch = rows.shape[0]
    per_row = max(1, rows.shape[-1])
    head = rows[:, : -(-_PROBE // per_row), :_PROBE].reshape(batch, -1)[:, :_PROBE]  # each sample's first values
    nonzero = head != 0
    values = head.abs().double()
    whole = ((values == values.round()) | ~nonzero).all(dim=1)
    inf = torch.tensor(math.inf, dtype=torch.float64)
    low = torch.where(nonzero, values, inf).amin(dim=1, keepdim=True)
    high = torch.where(nonzero, values, -inf).amax(dim=1, keepdim=True)
    quanta = low / torch.arange(1, MAX_LEVEL + 1, dtype=torch.float64, device=rows.device)
    candidate = quanta * (MAX_LEVEL + 0.5) >= high  # [batch, quanta]
    order = nonzero.cumsum(dim=1)
    slot = torch.where(nonzero & (order <= 16), order, torch.zeros_like(order))
    first = values.new_zeros(batch, 17).scatter_(1, slot, values)[:, 1:]  # the first 16 non-zero magnitudes
    used = torch.arange(1, 17, device=rows.device) <= order[:, -1:]
    scaled = first.unsqueeze(1) / quanta.unsqueeze(2)  # [batch, quanta, 16]
    fits = ((scaled - scaled.round()).abs() <= _RTOL * scaled.clamp_min(1.0)) | ~used.unsqueeze(1)
    finite = torch.isfinite(low) & torch.isfinite(high) & (low > 0)
    survives = (candidate & fits.all(dim=2)).any(dim=1, keepdim=True) & finite
    real = nonzero.any(dim=1) & ~whole & ~survives.squeeze(1)
    return real.tolist()
