"""The search space: ``space.yaml`` -> ``SearchSpace`` -> ``suggest(trial) -> ArchConfig``.

Strict: an unknown key, a misspelt or unregistered choice, a wrong type or an empty range is
a ``SpaceError`` naming the key's path (``per_stage.attention[2]``). Sampling always gives a
valid ArchConfig: widths are heads x head_dim, and the few choices that depend on others are
repaired deterministically (a DSSA patch that does not divide the feature map falls back to
the largest that does; LS-SSA dilation lists whose length does not divide the heads fall back
to the longest that does; the GWFFN group width is the largest power of two <= 64 dividing
every hidden width and is not above the chosen one; conv7 / conv3 stems fix their own reduction).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from snnas.nas.models.arch import ATTN_ORDERS, LIMITS, RESIDUALS, STEM_POOLS, ArchConfig, ArchConfigError
from snnas.nas.models.registries import ATTENTION, DOWNSAMPLE, MLPS, NEURONS, STEMS, SURROGATES

PER_STAGE = {"depth": int, "heads": int, "head_dim": int, "attention": str, "patch_size": int}
NAMED = {"stem": STEMS, "downsample": DOWNSAMPLE, "neuron": NEURONS, "surrogate": SURROGATES, "mlp": MLPS,
         "attention": ATTENTION, "residual": RESIDUALS, "attn_order": ATTN_ORDERS, "stem_pool": STEM_POOLS}
FIXED_REDUCTION = {"conv7": 2, "conv3": 0, "qkformer": 2}  # stems whose reduction is part of their design
_DATA_FIELDS = {"img_size", "in_channels", "num_classes"}
_STAGE_FIELDS = {"depths", "dims", "heads", "attention", "patch_sizes"}
GLOBAL_TYPES = {f.name: f.type for f in dataclasses.fields(ArchConfig)
                if f.name not in _DATA_FIELDS | _STAGE_FIELDS | {"notes"}}
_PY = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": list}


def default_space_path() -> Path:
    """The default search space shipped inside the package (``space.yaml`` in a checkout)."""
    return Path(str(resources.files("snnas.nas.search") / "space.yaml"))


class SpaceError(ValueError):
    """The space file is invalid; ``path`` names the key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class Param:
    """One searchable or fixed value."""

    path: str
    choices: tuple | None = None  # categorical
    low: int | None = None  # integer range
    high: int | None = None

    @property
    def fixed(self) -> bool:
        return self.choices is not None and len(self.choices) == 1

    def values(self):
        """The choices, or the range (a lazy ``range``: never materialised)."""
        return self.choices if self.choices is not None else range(self.low, self.high + 1)

    def representatives(self, period: int = 2) -> list:
        """Values that stand for all the others when checking rules: every choice, or a range's ends
        and the ``period`` values after its start (every residue of a parity or divisibility rule)."""
        if self.choices is not None:
            return list(self.choices)
        others = set(range(self.low + 1, min(self.high, self.low + period - 1) + 1)) | {self.high - 1}
        return [self.low, self.high] + sorted(others - {self.low, self.high}) if self.high > self.low else [self.low]

    def largest(self):
        return max(self.choices) if self.choices is not None else self.high

    def suggest(self, trial, name: str):
        if self.choices is not None:
            if self.fixed:
                return self.choices[0]
            encoded = [_encode(c) for c in self.choices]
            return _decode(trial.suggest_categorical(name, encoded))
        return trial.suggest_int(name, self.low, self.high)


def _encode(value):  # optuna categorical choices must be scalars
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _decode(value):
    if isinstance(value, str) and value and all(part.strip().isdigit() for part in value.split(",")):
        return tuple(int(v) for v in value.split(","))
    return value


MAX_FILE_BYTES = 1 << 20  # a space file is a few hundred bytes; more is a mistake or an attack
MAX_NODES = 10_000  # YAML nodes after expanding anchors and aliases (an alias bomb expands exponentially)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_size(data: Any, path: str) -> None:
    """Refuse documents whose anchors and aliases expand beyond ``MAX_NODES`` values."""
    seen, stack = 0, [data]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise SpaceError(path, f"the document expands to more than {MAX_NODES:,} values (anchors and aliases "
                                   "repeating each other?); a search space needs a few dozen")
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_value(path: str, key: str, value: Any, kind) -> Any:
    if kind is list:  # a list of integers (dilations)
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                               and v >= 1 for v in value):
            raise SpaceError(path, f"expected a non-empty list of positive integers, got {_short(value)}")
        return tuple(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpaceError(path, f"expected an integer, got {_short(value)}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SpaceError(path, f"expected a number, got {_short(value)}")
        if value <= 0:
            raise SpaceError(path, f"must be positive, got {value}")
        return float(value)
    if kind is bool and not isinstance(value, bool):
        raise SpaceError(path, f"expected true or false, got {_short(value)}")
    if kind is str and not isinstance(value, str):
        raise SpaceError(path, f"expected a name, got {_short(value)}")
    if key in NAMED and value not in NAMED[key]:
        raise SpaceError(path, f"unknown {key} {_short(value)}; choose from {', '.join(NAMED[key])}")
    if kind is int and value < (0 if key == "stem_downsample" else 1):
        raise SpaceError(path, f"must be positive, got {value}")
    return value


def _param(path: str, key: str, spec: Any, kind) -> Param:
    if isinstance(spec, Mapping):
        if kind is not int:
            raise SpaceError(path, "a {low, high} range is only for integer keys")
        if set(spec) != {"low", "high"}:
            raise SpaceError(path, f"a range needs exactly low and high, got {_short(', '.join(map(str, spec))) or 'nothing'}")
        low = _check_value(f"{path}.low", key, spec["low"], int)
        high = _check_value(f"{path}.high", key, spec["high"], int)
        if low > high:
            raise SpaceError(path, f"empty range: low {low} > high {high}")
        return Param(path, low=low, high=high)
    is_list_choice = isinstance(spec, list) and (kind is not list or (spec and isinstance(spec[0], list)))
    if is_list_choice:
        if not spec:
            raise SpaceError(path, "empty list of choices")
        values = tuple(_check_value(f"{path}[{i}]", key, v, kind) for i, v in enumerate(spec))
        if len(set(values)) != len(values):
            raise SpaceError(path, f"repeated choices in {_short(spec)}")
        return Param(path, choices=values)
    return Param(path, choices=(_check_value(path, key, spec, kind),))


@dataclass(frozen=True)
class DataShape:
    img_size: int
    in_channels: int
    num_classes: int
    time_steps: int | None = None  # event frames fix T; images leave it to the space


@dataclass(frozen=True)
class SearchSpace:
    stages: Param
    per_stage: Mapping[str, Param]
    globals: Mapping[str, Param]
    source: str  # the file it came from
    digest: str  # sha256 of the normalised space, stored with a study

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        from snnas.energy.textfiles import TextFileError, load_structured

        try:
            data = load_structured(path, limit_bytes=MAX_FILE_BYTES, what="space file")
            return cls.from_dict(data, source=str(path))
        except TextFileError as exc:
            raise SpaceError(str(path), str(exc).removeprefix(f"{path}: ")) from None
        except RecursionError:
            raise SpaceError(str(path), "nested too deeply to be a space") from None

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<space>") -> "SearchSpace":
        _check_size(data, source)
        if not isinstance(data, Mapping):
            raise SpaceError("<root>", f"expected a mapping with stages, per_stage and global, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - {"version", "stages", "per_stage", "global"})
        if unknown:
            raise SpaceError(unknown[0], "unknown key; expected version, stages, per_stage, global")
        if data.get("version", 1) != 1:
            raise SpaceError("version", f"unsupported version {data.get('version')!r}; this snnas reads version 1")
        for key in ("stages", "per_stage", "global"):
            if key not in data:
                raise SpaceError(key, "missing")
        stages = _param("stages", "stages", data["stages"], int)
        per_stage = cls._section("per_stage", data["per_stage"], PER_STAGE, required=PER_STAGE)
        globals_ = cls._section("global", data["global"], {k: _PY[t] for k, t in GLOBAL_TYPES.items()}, required=())
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
        space = cls(stages, per_stage, globals_, source, digest)
        space._check_static()
        return space

    @staticmethod
    def _section(name: str, data: Any, types: Mapping[str, Any], *, required) -> dict[str, Param]:
        if not isinstance(data, Mapping):
            raise SpaceError(name, "expected a mapping of key -> choices")
        out = {}
        for key, spec in data.items():
            if key not in types:
                raise SpaceError(f"{name}.{key}", f"unknown key; known: {', '.join(sorted(types))}")
            out[key] = _param(f"{name}.{key}", key, spec, types[key])
        missing = [k for k in required if k not in out]
        if missing:
            raise SpaceError(f"{name}.{missing[0]}", "missing")
        return out

    def _check_static(self) -> None:
        self._check_field_values()
        self._check_stage_values()
        stems = self.globals["stem"].values() if "stem" in self.globals else ["sps"]
        for stem in stems:  # a stem whose first layers are D/8 (or D/2) wide needs widths divisible by 8 (2)
            multiple = getattr(STEMS.get(stem), "width_multiple", 1)
            bad = [w for w in self.widths() if w % multiple]
            if bad:
                raise SpaceError("per_stage.head_dim", f"stem {stem} needs widths divisible by {multiple}; heads x "
                                                       f"head_dim gives {bad[0]} (use head_dim multiples of {multiple})")

    def _check_stage_values(self) -> None:
        """Stage counts and per-stage values within ArchConfig's bounds, checked on their extremes."""
        for name, param, limit in (("stages", self.stages, LIMITS["stages"]),
                                   ("depth", self.per_stage["depth"], LIMITS["depths"]),
                                   ("heads", self.per_stage["heads"], LIMITS["heads"]),
                                   ("patch_size", self.per_stage["patch_size"], LIMITS["patch_sizes"])):
            if param.largest() > limit:
                where = param.path + (".high" if param.choices is None else "")
                raise SpaceError(where, f"at most {limit}, got {param.largest()}")
        width = self.per_stage["heads"].largest() * self.per_stage["head_dim"].largest()
        if width > LIMITS["dims"]:
            raise SpaceError("per_stage.head_dim", f"heads x head_dim reaches {width:,}; widths are at most "
                                                   f"{LIMITS['dims']:,}")

    def _check_field_values(self) -> None:
        """Each global choice must be a value ArchConfig accepts for its field (e.g. an odd window),
        checked on a small valid probe; rules that tie fields together are repaired at sampling."""
        probe = ArchConfig(img_size=64, in_channels=1, num_classes=10, stem="sps", stem_downsample=1, depths=(1,),
                           dims=(16,), heads=(1,), attention=("ssa",), patch_sizes=(1,), mlp="mlp")
        for key, param in self.globals.items():
            for value in param.representatives():
                try:
                    probe.replace(**{key: value})
                except ArchConfigError as exc:
                    if exc.field == key:
                        if param.choices is None:
                            end = {param.low: ".low", param.high: ".high"}.get(value, "")
                            where = f"{param.path}{end}"
                        else:
                            where = param.path if param.fixed else f"{param.path}[{param.choices.index(value)}]"
                        raise SpaceError(where, str(exc).split(": ", 1)[-1]) from None

    def widths(self) -> list[int]:
        """Widths heads x head_dim, every residue modulo 8 represented (ranges are not expanded)."""
        heads, head_dim = self.per_stage["heads"], self.per_stage["head_dim"]
        return sorted({h * d for h in heads.representatives(8) for d in head_dim.representatives(8)})

    def check_data(self, shape: DataShape) -> None:
        """Every stem and stage count must fit the data's image size (checked before a study starts).
        Divisibility by 2^k implies it for every smaller k, so the largest reduction decides.
        Event data brings its own T: the space's time_steps must offer it."""
        if shape.time_steps is not None and "time_steps" in self.globals:
            offered = self.globals["time_steps"]
            if shape.time_steps not in offered.values():
                raise SpaceError("global.time_steps", f"the data has {shape.time_steps} frames per sample, and the space "
                                                      f"offers {_show(offered)}; use a space with time_steps: "
                                                      f"{shape.time_steps}, or event data at T in {_show(offered)} "
                                                      "(KIND@T)")
        n = self.stages.largest()
        for stem in (self.globals["stem"].values() if "stem" in self.globals else ["sps"]):
            sd = FIXED_REDUCTION[stem] if stem in FIXED_REDUCTION else \
                (self.globals["stem_downsample"].largest() if "stem_downsample" in self.globals else 2)
            factor = 2 ** (sd + n - 1)
            if shape.img_size % factor:
                raise SpaceError("stages", f"{n} stages after stem {stem} (reduction 2^{sd}) need images "
                                           f"divisible by {factor}; the data is {shape.img_size}x{shape.img_size}")

    # ------------------------------------------------------------------ sampling
    def suggest(self, trial, shape: DataShape) -> ArchConfig:
        n = self.stages.suggest(trial, "stages")
        stage = {k: [p.suggest(trial, f"{k}_{i}") for i in range(n)] for k, p in self.per_stage.items()}
        g = {k: p.suggest(trial, k) for k, p in self.globals.items()
             if not (k == "time_steps" and shape.time_steps is not None)}  # event data fixes T
        return self.assemble(n, stage, g, shape)

    def assemble(self, n: int, stage: Mapping[str, list], g: dict, shape: DataShape) -> ArchConfig:
        """Build the ArchConfig of one sample, repairing dependent choices (see module docstring)."""
        g = dict(g)
        if shape.time_steps is not None:
            g["time_steps"] = shape.time_steps
        if g.get("stem") in FIXED_REDUCTION:
            g["stem_downsample"] = FIXED_REDUCTION[g["stem"]]
        sd = g.get("stem_downsample", 2)
        dims = [h * d for h, d in zip(stage["heads"], stage["head_dim"])]
        patches = []
        for i in range(n):
            side = shape.img_size // 2 ** (sd + i)
            options = sorted(self.per_stage["patch_size"].values(), reverse=True)
            p = stage["patch_size"][i]
            patches.append(p if side % p == 0 else next((q for q in options if side % q == 0 and q <= p), 1))
        ls_heads = [h for h, a in zip(stage["heads"], stage["attention"]) if a == "ls_ssa"]
        if "dilations" in g and any(h % len(g["dilations"]) for h in ls_heads):
            fits = [d for d in self.globals["dilations"].values() if all(h % len(d) == 0 for h in ls_heads)]
            g["dilations"] = max(fits, key=len) if fits else (1,)
        hidden = math.gcd(*[d * g.get("mlp_ratio", 4) for d in dims])
        wanted = g.get("group_width", 64)
        if hidden % wanted:  # the largest power of two <= the wanted width dividing every hidden width
            g["group_width"] = next(w for w in (64, 32, 16, 8, 4, 2, 1) if w <= wanted and hidden % w == 0)
        elif "group_width" not in g:
            g["group_width"] = wanted
        try:
            return ArchConfig(img_size=shape.img_size, in_channels=shape.in_channels, num_classes=shape.num_classes,
                              depths=tuple(stage["depth"]), dims=tuple(dims), heads=tuple(stage["heads"]),
                              attention=tuple(stage["attention"]), patch_sizes=tuple(patches), **g)
        except ArchConfigError as exc:  # a combination the static checks did not foresee
            raise SpaceError(f"global.{exc.field}" if exc.field in self.globals else exc.field, str(exc)) from None

    def size(self) -> int:
        """Number of distinct raw samples (before repairs), for display."""
        per_stage = math.prod(len(p.values()) for p in self.per_stage.values())
        total = sum(per_stage ** n for n in self.stages.values())
        return total * math.prod(len(p.values()) for p in self.globals.values())

    def describe(self) -> list[tuple[str, str]]:
        rows = [("stages", _show(self.stages))]
        rows += [(f"per_stage.{k}", _show(p)) for k, p in self.per_stage.items()]
        rows += [(f"global.{k}", _show(p)) for k, p in self.globals.items()]
        return rows


def _show(p: Param) -> str:
    if p.choices is None:
        return f"{p.low} .. {p.high}"
    shown = [_encode(c) if isinstance(c, tuple) else c for c in p.choices]
    return str(shown[0]) if p.fixed else " | ".join(map(str, shown))
