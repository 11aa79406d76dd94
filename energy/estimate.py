"""OpCounts + Profile + Convention -> EnergyEstimate: the only place picojoules are applied."""

from __future__ import annotations

from dataclasses import dataclass, field

from energy.conventions import Quantities, get_convention
from energy.counting import OpCounts
from energy.profile import Profile

PJ_PER_MJ = 1e9


@dataclass
class EnergyEstimate:
    profile: str
    regime: str  # arithmetic regime, printed beside every joule figure
    convention: str
    total_mj: float  # sum of the priced terms (a lower bound when incomplete)
    complete: bool
    missing: list[str]  # terms the estimate needed whose profile value is unknown (null)
    by_term_mj: dict[str, float] = field(default_factory=dict)
    by_layer_mj: dict[str, float] = field(default_factory=dict)
    memory: bool = False

    def to_dict(self) -> dict:
        return {"profile": self.profile, "regime": self.regime, "convention": self.convention,
                "total_mj": self.total_mj, "complete": self.complete, "missing": self.missing,
                "memory": self.memory, "by_term_mj": self.by_term_mj}


def memory_accesses(counts: OpCounts, profile: Profile) -> dict[str, float]:
    """Memory energy per layer in pJ, after Lemaire et al. (ICONIP 2022), simplified.

    Per synaptic op: input reads (non-zeros for spike inputs, every element for real inputs),
    one weight read and one accumulator read + write per operation performed, one write per
    output element. Each access costs ``sram_pj_per_bit * size_bits + sram_offset_pj`` where
    size is the memory holding that tensor (the layer's weights, its input, its output).
    """
    mem = profile.memory
    out: dict[str, float] = {}
    for layer in counts.layers:
        pj = 0.0
        for rec in layer.records:
            event = rec.charge != "mac"
            reads_in = rec.in_numel * (min(rec.rates) if event else 1.0)
            pj += reads_in * mem.access_pj(rec.in_numel)
            pj += rec.exact * mem.access_pj(max(layer.params, 1))
            pj += 2 * rec.exact * mem.access_pj(rec.out_numel)
            pj += rec.out_numel * mem.access_pj(rec.out_numel)
        if pj:
            out[layer.name] = pj
    return out


def estimate(counts: OpCounts, profile: Profile, *, convention: str = "snnas", memory: bool = False,
             bn_folded: bool = True) -> EnergyEstimate:
    """Price ``counts`` on ``profile`` under ``convention`` (per sample, millijoules)."""
    quantities: Quantities = get_convention(convention).quantities(counts)
    if not bn_folded:
        for layer in counts.layers:
            if layer.total("bn"):
                quantities.setdefault(layer.name, {})["bn_pj"] = layer.total("bn")
    by_term: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    missing: set[str] = set()
    for name, terms in quantities.items():
        for term, count in terms.items():
            if not count:
                continue
            if term not in profile.terms:
                continue  # the profile has no such cost (e.g. routing on a CMOS accelerator)
            value = profile.value(term)
            if value is None:
                missing.add(term)
                continue
            mj = count * value / PJ_PER_MJ
            by_term[term] = by_term.get(term, 0.0) + mj
            by_layer[name] = by_layer.get(name, 0.0) + mj
    if memory:
        if profile.memory is None:
            missing.add("memory")
        else:
            for name, pj in memory_accesses(counts, profile).items():
                by_term["memory"] = by_term.get("memory", 0.0) + pj / PJ_PER_MJ
                by_layer[name] = by_layer.get(name, 0.0) + pj / PJ_PER_MJ
    return EnergyEstimate(profile.name, profile.regime, convention, sum(by_term.values()), not missing,
                          sorted(missing), by_term, by_layer, memory)
