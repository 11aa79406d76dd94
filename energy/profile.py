"""Hardware profiles: one YAML file per chip or arithmetic regime under ``energy/profiles/``.

Every number carries its source and an evidence grade. A term that is unknown is ``null``,
never 0: an estimate that needs it is reported incomplete, naming the missing term. Users can
pass their own YAML file in the same format (see ``energy/profiles/45nm-fp32.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from snnas.energy.textfiles import TextFileError, load_structured

# term -> what one unit of it is
TERMS = {
    "mac_pj": "multiply-accumulate, real x real (also products of two real tensors)",
    "ac_pj": "accumulate driven by a spike (synaptic op)",
    "add_pj": "addition or comparison outside synapses (residual additions, reductions, pooling, masks, ReLU)",
    "nonlinear_pj": "one element of a transcendental function (softmax, exp, sigmoid, tanh, GELU, sqrt)",
    "neuron_update_pj": "one neuron update (per neuron and time step)",
    "active_update_extra_pj": "extra cost of an update whose neuron spikes",
    "spike_pj": "one emitted spike (routing)",
    "bn_pj": "one BatchNorm element, when BatchNorm is not folded",
}
REQUIRED_TERMS = ("mac_pj", "ac_pj", "add_pj", "neuron_update_pj", "bn_pj")
# Terms a profile may leave out because the hardware has no such cost (routing on a CMOS
# accelerator). Any other term a profile leaves out is unknown: an estimate that needs it is incomplete.
NOT_APPLICABLE_WHEN_ABSENT = ("active_update_extra_pj", "spike_pj")
_TOP_KEYS = {"name", "title", "kind", "node", "regime", "source", "terms", "memory", "notes"}
_MEMORY_KEYS = {"source", "evidence", "sram_pj_per_bit", "sram_offset_pj", "word_bits"}


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Term:
    value: float | None  # picojoules per unit; None = unknown
    source: str
    evidence: str


@dataclass(frozen=True)
class Memory:
    """Lemaire et al. 2022: SRAM access energy = sram_pj_per_bit * memory size in bits + offset."""

    sram_pj_per_bit: float
    sram_offset_pj: float
    word_bits: int
    source: str

    def access_pj(self, size_elements: float) -> float:
        return self.sram_pj_per_bit * size_elements * self.word_bits + self.sram_offset_pj


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    kind: str  # "cmos" | "neuromorphic"
    regime: str  # arithmetic regime printed beside every joule figure (fp32, int8, chip ...)
    node: str
    source: str
    terms: Mapping[str, Term]
    memory: Memory | None = None
    notes: str = ""

    def value(self, term: str) -> float | None:
        t = self.terms.get(term)
        return None if t is None else t.value


def _fail(where: str, message: str) -> None:
    raise ProfileError(f"{where}: {message}")


def _parse_term(where: str, data: Any) -> Term:
    if not isinstance(data, Mapping) or set(data) - {"value", "source", "evidence"}:
        _fail(where, "expected a mapping with value, source and evidence")
    value = data.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or
                              not math.isfinite(value) or value < 0):
        _fail(f"{where}.value", f"expected a finite non-negative number or null, got {value!r}")
    for key in ("source", "evidence"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            _fail(f"{where}.{key}", "must be a non-empty string (every number needs its source and evidence)")
    return Term(None if value is None else float(value), data["source"], data["evidence"])


def parse_profile(data: Any, *, origin: str) -> Profile:
    if not isinstance(data, Mapping):
        _fail(origin, "expected a mapping at the top level")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        _fail(f"{origin}: {unknown[0]}", f"unknown key; known keys: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "title", "kind", "regime", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            _fail(f"{origin}: {key}", "must be a non-empty string")
    terms = data.get("terms")
    if not isinstance(terms, Mapping):
        _fail(f"{origin}: terms", "must be a mapping of term -> {value, source, evidence}")
    for key in terms:
        if key not in TERMS:
            _fail(f"{origin}: terms.{key}", f"unknown term; known terms: {', '.join(TERMS)}")
    missing = [t for t in REQUIRED_TERMS if t not in terms]
    if missing:
        _fail(f"{origin}: terms", f"missing {', '.join(missing)} (write value: null when unknown)")
    memory = None
    if data.get("memory") is not None:
        mem = data["memory"]
        numbers = ("sram_pj_per_bit", "sram_offset_pj", "word_bits")
        if not isinstance(mem, Mapping) or set(mem) - _MEMORY_KEYS or not all(
                isinstance(mem.get(k), (int, float)) and not isinstance(mem.get(k), bool) and
                math.isfinite(mem[k]) and mem[k] >= 0 for k in numbers):
            _fail(f"{origin}: memory", "expected sram_pj_per_bit, sram_offset_pj, word_bits (finite non-negative "
                                       "numbers) and source")
        memory = Memory(float(mem["sram_pj_per_bit"]), float(mem["sram_offset_pj"]), int(mem["word_bits"]),
                        str(mem.get("source", "")))
    return Profile(name=data["name"], title=data["title"], kind=data["kind"], regime=data["regime"],
                   node=str(data.get("node", "")), source=data["source"],
                   terms={k: _parse_term(f"{origin}: terms.{k}", v) for k, v in terms.items()},
                   memory=memory, notes=str(data.get("notes", "")))


MAX_PROFILE_BYTES = 1 << 20  # a profile is a few kilobytes of YAML


def builtin_profile_names() -> list[str]:
    folder = resources.files("snnas.energy") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name (``snnas profiles``) or a user's YAML file by path."""
    text_path = str(name_or_path)
    if text_path in builtin_profile_names():
        resource = resources.files("snnas.energy") / "profiles" / f"{text_path}.yaml"
        return parse_profile(yaml.safe_load(resource.read_text()), origin=text_path)
    path = Path(text_path)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        raise ProfileError(f"unknown profile {text_path!r}; built-in: {', '.join(builtin_profile_names())}, "
                           "or pass a .yaml file")
    try:
        data = load_structured(path, limit_bytes=MAX_PROFILE_BYTES, what="profile file")
        return parse_profile(data, origin=str(path))
    except TextFileError as exc:
        raise ProfileError(str(exc)) from None
    except RecursionError:
        raise ProfileError(f"{path}: nested too deeply to be a profile") from None
