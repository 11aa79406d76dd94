"""Hardware profiles: one YAML file per chip or arithmetic regime under ``energy/profiles/``.

Every number carries its source and an evidence grade. A term that is unknown is ``null``,
never 0: an estimate that needs it is reported incomplete, naming the missing term. Users can
pass their own YAML file in the same format (see ``energy/profiles/45nm-fp32.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
_MEMORY_KEYS = {"source", "evidence", "sram_pj_per_bit", "sram_offset_pj", "word_bits", "pj_per_byte", "range"}
ENDS = ("low", "high")  # a range's ends: where published figures disagree, each end with its source


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class Term:
    """One priced term. ``low`` / ``high``: the ends of a range where published figures disagree
    (each with its source); an end not given is the value itself (no range)."""

    value: float | None  # picojoules per unit; None = unknown
    source: str
    evidence: str
    low: float | None = None
    high: float | None = None
    low_source: str = ""
    high_source: str = ""

    @property
    def has_range(self) -> bool:
        return self.value is not None and (self.at("low") != self.value or self.at("high") != self.value)

    def at(self, end: str) -> float | None:
        """The value at one end of the range ("low", "high" or "value")."""
        bound = getattr(self, end) if end in ENDS else None
        return self.value if bound is None else bound


@dataclass(frozen=True)
class Memory:
    """SRAM access energy as a function of the memory's size (Lemaire et al., ICONIP 2022).

    ``pj_per_byte``: points ``(size in bytes, pJ per byte accessed)``, interpolated linearly and
    clamped at both ends (Lemaire's piecewise-linear fit of Horowitz's SRAM figures). A profile
    may instead give the older linear fit per word access: ``sram_pj_per_bit * size in bits +
    sram_offset_pj``.
    """

    word_bits: int
    source: str
    points: tuple[tuple[float, float], ...] = ()
    sram_pj_per_bit: float = 0.0
    sram_offset_pj: float = 0.0
    low_points: tuple[tuple[float, float], ...] = ()  # the range's ends: the same sizes, pJ per byte
    high_points: tuple[tuple[float, float], ...] = ()
    low_source: str = ""
    high_source: str = ""

    @property
    def has_range(self) -> bool:
        return bool(self.low_points and self.low_points != self.points or
                    self.high_points and self.high_points != self.points)

    def at(self, end: str) -> "Memory":
        """The memory model at one end of its range (itself where that end is not given)."""
        points = (getattr(self, f"{end}_points") if end in ENDS else ()) or self.points
        return replace(self, points=points, low_points=(), high_points=())

    @property
    def word_bytes(self) -> int:
        return max(1, self.word_bits // 8)

    def pj_per_byte(self, size_bytes: float) -> float:
        points = self.points
        if not points:
            return (self.sram_pj_per_bit * size_bytes * 8 + self.sram_offset_pj) / self.word_bytes
        size = min(max(size_bytes, points[0][0]), points[-1][0])
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if size <= x1:
                return y0 + (y1 - y0) / (x1 - x0) * (size - x0)
        return points[-1][1]


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

    @property
    def has_range(self) -> bool:
        return any(t.has_range for t in self.terms.values()) or (self.memory is not None and self.memory.has_range)

    def at(self, end: str) -> "Profile":
        """This profile with every term (and the memory model) at one end of its range. Energy is a
        sum of non-negative counts times prices, and a memory price interpolates its points with
        non-negative weights, so pricing the same counts on ``at("low")`` and ``at("high")``
        bounds the estimate at any prices inside the ranges."""
        terms = {k: replace(t, value=t.at(end), low=None, high=None) for k, t in self.terms.items()}
        return replace(self, terms=terms, memory=None if self.memory is None else self.memory.at(end))


def _fail(where: str, message: str) -> None:
    raise ProfileError(f"{where}: {message}")


def _parse_term(where: str, data: Any) -> Term:
    if not isinstance(data, Mapping) or set(data) - {"value", "source", "evidence", "range"}:
        _fail(where, "expected a mapping with value, source and evidence (and optionally range)")
    value = data.get("value")
    if value is not None and not _number(value):
        _fail(f"{where}.value", f"expected a finite non-negative number or null, got {value!r}")
    for key in ("source", "evidence"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            _fail(f"{where}.{key}", "must be a non-empty string (every number needs its source and evidence)")
    term = Term(None if value is None else float(value), data["source"], data["evidence"])
    if data.get("range") is None:
        return term
    if value is None:
        _fail(f"{where}.range", "a range needs a value (an unknown term has no range)")
    ends = _parse_range(f"{where}.range", data["range"], "value", _number)
    for end, (bound, source) in ends.items():
        if (bound > value) if end == "low" else (bound < value):
            _fail(f"{where}.range.{end}", f"{bound:g} is on the wrong side of the value {value:g}")
        term = replace(term, **{end: float(bound), f"{end}_source": source})
    return term


def _parse_range(where: str, data: Any, key: str, check) -> dict[str, tuple[Any, str]]:
    """``range: {low: {KEY: ..., source: ...}, high: {KEY: ..., source: ...}}``, either end optional."""
    if not isinstance(data, Mapping) or not data or set(data) - set(ENDS):
        _fail(where, f"expected a mapping with low and/or high, each {{{key}, source}}")
    ends = {}
    for end, given in data.items():
        if not isinstance(given, Mapping) or set(given) != {key, "source"} or not check(given[key]):
            _fail(f"{where}.{end}", f"expected {key} (as the value is given) and source")
        if not isinstance(given["source"], str) or not given["source"].strip():
            _fail(f"{where}.{end}.source", "must be a non-empty string (every end of a range needs its source)")
        ends[end] = (given[key], given["source"])
    return ends


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
    memory = None if data.get("memory") is None else _parse_memory(f"{origin}: memory", data["memory"])
    return Profile(name=data["name"], title=data["title"], kind=data["kind"], regime=data["regime"],
                   node=str(data.get("node", "")), source=data["source"],
                   terms={k: _parse_term(f"{origin}: terms.{k}", v) for k, v in terms.items()},
                   memory=memory, notes=str(data.get("notes", "")))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _parse_memory(where: str, mem: Any) -> Memory:
    if not isinstance(mem, Mapping) or set(mem) - _MEMORY_KEYS or not _number(mem.get("word_bits")) \
            or int(mem["word_bits"]) < 1:
        _fail(where, "expected word_bits (a positive number), source, and pj_per_byte (or sram_pj_per_bit and "
                     "sram_offset_pj)")
    source = str(mem.get("source", ""))
    if "pj_per_byte" not in mem:
        if not (_number(mem.get("sram_pj_per_bit")) and _number(mem.get("sram_offset_pj"))):
            _fail(where, "expected pj_per_byte: [[size bytes, pJ per byte], ...], or sram_pj_per_bit and "
                         "sram_offset_pj (finite non-negative numbers)")
        return Memory(int(mem["word_bits"]), source, (), float(mem["sram_pj_per_bit"]), float(mem["sram_offset_pj"]))
    points = mem["pj_per_byte"]
    if not isinstance(points, list) or len(points) < 2 or not all(
            isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in points):
        _fail(f"{where}.pj_per_byte", f"expected at least two [size bytes, pJ per byte] pairs of finite "
                                      f"non-negative numbers, got {points!r}")
    if any(b[0] <= a[0] for a, b in zip(points, points[1:])):
        _fail(f"{where}.pj_per_byte", f"sizes must increase, got {[p[0] for p in points]!r}")
    memory = Memory(int(mem["word_bits"]), source, tuple((float(x), float(y)) for x, y in points))
    return memory if mem.get("range") is None else _memory_range(f"{where}.range", mem["range"], memory)


def _memory_range(where: str, data: Any, memory: Memory) -> Memory:
    """The memory's range: at each end pJ per byte at the same sizes, on its side of every point."""
    sizes = [x for x, _ in memory.points]
    if not sizes:
        _fail(where, "a range needs pj_per_byte points (not the linear fit)")
    shaped = lambda p: isinstance(p, list) and len(p) == len(sizes) and all(  # noqa: E731
        isinstance(q, list) and len(q) == 2 and all(_number(v) for v in q) for q in p)
    fields = {}
    for end, (points, source) in _parse_range(where, data, "pj_per_byte", shaped).items():
        if [float(x) for x, _ in points] != sizes:
            _fail(f"{where}.{end}.pj_per_byte", f"must give the value's sizes {sizes!r}")
        low = end == "low"
        if any((float(y) > v) if low else (float(y) < v) for (_, y), (_, v) in zip(points, memory.points)):
            _fail(f"{where}.{end}.pj_per_byte", "every point must be on its side of the value's")
        fields.update({f"{end}_points": tuple((float(x), float(y)) for x, y in points), f"{end}_source": source})
    return replace(memory, **fields)


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
