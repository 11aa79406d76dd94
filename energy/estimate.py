"""OpCounts + Profile + Convention -> EnergyEstimate: the only place picojoules are applied."""

from __future__ import annotations

from dataclasses import dataclass, field

from snnas.energy.conventions import Quantities, get_convention
from snnas.energy.counts import OpCounts
from snnas.energy.memory import ModelGeometry, Sizing, lemaire_traffic, memory_pj
from snnas.energy.profile import NOT_APPLICABLE_WHEN_ABSENT, Profile

PJ_PER_MJ = 1e9


ENERGY_MODELS = ("arithmetic", "lemaire")
PARTS = ("compute", "addressing", "memory")  # a layer's energy, apart


@dataclass
class EnergyEstimate:
    """Energy per sample of one model's counts on one profile under one convention."""

    profile: str
    regime: str  # arithmetic regime, printed beside every joule figure
    convention: str
    total_mj: float  # sum of the priced terms (a lower bound when incomplete)
    complete: bool
    missing: list[str]  # terms needed whose value is unknown (null), then "op <name>" for uncounted ops
    by_term_mj: dict[str, float] = field(default_factory=dict)
    by_layer_mj: dict[str, float] = field(default_factory=dict)
    memory: bool = False  # the Lemaire model (memory traffic and addressing included)
    by_layer_parts_mj: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> PARTS -> mJ
    # The same counts priced with every profile term at the low / the high end of its range
    # (Profile.at): they bound the total at any prices inside the ranges. None: no range (= total).
    total_low_mj: float | None = None
    total_high_mj: float | None = None
    by_layer_low_mj: dict[str, float] = field(default_factory=dict)
    by_layer_high_mj: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.total_low_mj is None:
            self.total_low_mj, self.by_layer_low_mj = self.total_mj, self.by_layer_mj
        if self.total_high_mj is None:
            self.total_high_mj, self.by_layer_high_mj = self.total_mj, self.by_layer_mj

    @property
    def has_range(self) -> bool:
        return self.total_low_mj != self.total_mj or self.total_high_mj != self.total_mj

    @property
    def energy_model(self) -> str:
        return "lemaire" if self.memory else "arithmetic"

    def part_mj(self, part: str) -> float:
        return sum(parts.get(part, 0.0) for parts in self.by_layer_parts_mj.values())

    def to_dict(self) -> dict:
        return {"profile": self.profile, "regime": self.regime, "convention": self.convention,
                "energy_model": self.energy_model, "total_mj": self.total_mj, "complete": self.complete,
                "total_low_mj": self.total_low_mj, "total_high_mj": self.total_high_mj,
                "missing": self.missing, "memory": self.memory, "by_term_mj": self.by_term_mj,
                "by_part_mj": {part: self.part_mj(part) for part in PARTS}}


class _Ledger:
    """Adds priced quantities up by term, by layer and by part, and remembers unknown terms."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.by_term: dict[str, float] = {}
        self.by_layer: dict[str, float] = {}
        self.parts: dict[str, dict[str, float]] = {}
        self.missing: set[str] = set()

    def add_mj(self, layer: str, term: str, part: str, mj: float) -> None:
        self.by_term[term] = self.by_term.get(term, 0.0) + mj
        self.by_layer[layer] = self.by_layer.get(layer, 0.0) + mj
        parts = self.parts.setdefault(layer, {})
        parts[part] = parts.get(part, 0.0) + mj

    def price(self, layer: str, term: str, count: float, part: str = "compute", book_as: str | None = None) -> None:
        if not count:
            return
        if term not in self.profile.terms and term in NOT_APPLICABLE_WHEN_ABSENT:
            return  # the hardware has no such cost (e.g. routing on a CMOS accelerator)
        value = self.profile.value(term)
        if value is None:
            self.missing.add(term)
            return
        self.add_mj(layer, book_as or term, part, count * value / PJ_PER_MJ)


def _lemaire(ledger: _Ledger, counts: OpCounts, geometry: ModelGeometry | None, sizing: Sizing | None) -> set[str]:
    """Price the layers in Lemaire's scope by its model; return their names (the others keep the convention)."""
    profile = ledger.profile
    if profile.memory is None:
        ledger.missing.add("memory")
        return set()
    if geometry is None:
        ledger.missing.add("memory (the model's layers were not read: count with the model)")
        return set()
    traffic, outside = lemaire_traffic(counts, geometry, sizing or Sizing(), profile.memory.word_bytes)
    for name, layer in traffic.items():
        ledger.price(name, "ac_pj", layer.ops["ac"])
        ledger.price(name, "mac_pj", layer.ops["mac"])
        ledger.price(name, "add_pj", layer.addressing["acc_addr"], "addressing", "addressing")
        ledger.price(name, "mac_pj", layer.addressing["mac_addr"], "addressing", "addressing")
        for component, pj in memory_pj(layer, profile.memory.pj_per_byte).items():
            ledger.add_mj(name, f"memory_{component}", "memory", pj / PJ_PER_MJ)
    if outside:
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        ledger.missing.add(f"memory of {len(outside)} layers outside Lemaire's model: {shown}")
    return set(traffic)


def estimate(counts: OpCounts, profile: Profile, *, convention: str = "snnas", memory: bool = False,
             bn_folded: bool | None = None, geometry: ModelGeometry | None = None,
             sizing: Sizing | None = None) -> EnergyEstimate:
    """Price ``counts`` on ``profile`` under ``convention`` (per sample, millijoules).

    ``memory`` selects Lemaire et al.'s model (``energy.memory``): the Linear, Conv and IF / LIF
    layers of ``geometry`` (``memory.read_geometry(model)``) are priced by its operations,
    addressing and memory traffic, sized by ``sizing``; every other layer keeps the convention's
    pricing, and the estimate says its memory traffic is missing. ``bn_folded`` defaults to how
    the counts were made. The estimate is incomplete when a term it needs is unknown on the
    profile or when the counts left an arithmetic op uncounted. Where the profile's terms carry
    ranges, the same quantities are priced again at every term's low and high end
    (``total_low_mj``, ``total_high_mj``, per layer too).
    """
    quantities: Quantities = get_convention(convention).quantities(counts)
    if bn_folded is None:
        bn_folded = counts.bn_folded
    if not bn_folded:
        for layer in counts.layers:
            if layer.total("bn"):
                quantities.setdefault(layer.name, {})["bn_pj"] = layer.total("bn")
    price = lambda p: _price(quantities, counts, p, memory, geometry, sizing)  # noqa: E731
    ledger = price(profile)
    gaps = sorted(ledger.missing) + [f"op {op}" for op in sorted(counts.unsupported)]
    result = EnergyEstimate(profile.name, profile.regime, convention, sum(ledger.by_term.values()), not gaps, gaps,
                            ledger.by_term, ledger.by_layer, memory, ledger.parts)
    if profile.has_range:
        low, high = price(profile.at("low")), price(profile.at("high"))
        result.total_low_mj, result.by_layer_low_mj = sum(low.by_term.values()), low.by_layer
        result.total_high_mj, result.by_layer_high_mj = sum(high.by_term.values()), high.by_layer
    return result


def _price(quantities: Quantities, counts: OpCounts, profile: Profile, memory: bool,
           geometry: ModelGeometry | None, sizing: Sizing | None) -> _Ledger:
    ledger = _Ledger(profile)
    lemaire_layers = _lemaire(ledger, counts, geometry, sizing) if memory else set()
    for name, terms in quantities.items():
        if name in lemaire_layers:
            continue
        for term, count in terms.items():
            ledger.price(name, term, count)
    return ledger
