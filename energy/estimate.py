"""OpCounts + Profile + Convention -> EnergyEstimate: the only place picojoules are applied."""

from __future__ import annotations

from dataclasses import dataclass, field

from snnas.energy.conventions import Quantities, get_convention
from snnas.energy.counts import OpCounts
from snnas.energy.profile import NOT_APPLICABLE_WHEN_ABSENT, Profile

PJ_PER_MJ = 1e9


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
            operations = rec.total("macs") + rec.total("acs")
            in_numel = rec.numel[0]
            reads_in = rec.nnz[0] if rec.label != "real" else in_numel
            pj += reads_in * mem.access_pj(in_numel)
            pj += operations * mem.access_pj(max(layer.params, 1))
            pj += 2 * operations * mem.access_pj(rec.out_numel)
            pj += rec.out_numel * mem.access_pj(rec.out_numel)
        if pj:
            out[layer.name] = pj
    return out


def estimate(counts: OpCounts, profile: Profile, *, convention: str = "snnas", memory: bool = False,
             bn_folded: bool | None = None) -> EnergyEstimate:
    """Price ``counts`` on ``profile`` under ``convention`` (per sample, millijoules).

    ``bn_folded`` defaults to how the counts were made. The estimate is incomplete when a term
    it needs is unknown on the profile or when the counts left an arithmetic op uncounted.
    """
    quantities: Quantities = get_convention(convention).quantities(counts)
    if bn_folded is None:
        bn_folded = counts.bn_folded
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
            if term not in profile.terms and term in NOT_APPLICABLE_WHEN_ABSENT:
                continue  # the hardware has no such cost (e.g. routing on a CMOS accelerator)
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
    gaps = sorted(missing) + [f"op {op}" for op in sorted(counts.unsupported)]
    return EnergyEstimate(profile.name, profile.regime, convention, sum(by_term.values()), not gaps, gaps,
                          by_term, by_layer, memory)
