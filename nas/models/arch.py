"""ArchConfig: one candidate spiking vision transformer, as a frozen, validated dataclass.

A candidate is a stem, a sequence of stages (each with a depth, a width, a number of heads and
an attention kind), downsampling between stages, a neuron kind, a residual style and an MLP
kind. The four seed papers are points in this space (see ``nas.models.zoo``):

* Spikformer:        stem=sps, one stage, attention=ssa, residual=spike, mlp=mlp
* Spikformer V2:     stem=scs (interpretation, see ``nas.models.stems``)
* SpikingResformer:  stem=conv7 or conv3, three stages, attention=dssa, residual=membrane,
                     mlp=gwffn, downsample=conv
* A2OS2A:            attention=a2os2a, attn_order=qk_first, on the Spike-driven Transformer backbone
* Spike-driven Tr.:  stem=sdt, attention=sdsa, residual=membrane, head_neuron=True
* QKFormer:          stem=qkformer, attention=(qk, qk, ssa), downsample=qkformer, residual=spike
* LSFormer:          attention=ls_ssa (window + dilation per head), stem_pool / downsample = spool

Construct from YAML / JSON / CLI input with ``ArchConfig.from_dict`` (strict: unknown keys are
refused); ``to_dict`` is its inverse. Invalid values raise ``ArchConfigError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping


class ArchConfigError(ValueError):
    """An ArchConfig field has an invalid value; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


# Upper bounds that catch typos and hostile files (a range of 10^12 blocks), far above every
# published configuration (ImageNet 224 px, T <= 20, 12 heads, 4 stages, widths <= 1024).
LIMITS = {"img_size": 4096, "in_channels": 256, "num_classes": 100_000, "time_steps": 1024, "mlp_ratio": 64,
          "group_width": 65_536, "window": 63, "stem_downsample": 8, "stages": 8, "depths": 256, "dims": 65_536,
          "heads": 1024, "patch_sizes": 64, "dilations": 64}
RESIDUALS = ("spike", "membrane")
TERNARY_VARIANTS = ("a2os2a", "ternary_spike", "lif")  # see nas.models.neurons.TERNARY_VARIANTS
BUILTIN_ATTENTION = {"ssa", "dssa", "a2os2a", "ls_ssa", "sdsa", "qk", "qk_channel"}  # network_key knows their reads
BUILTIN_STEMS = {"sps", "scs", "conv7", "conv3", "sdt", "spikingformer", "qkformer"}
ATTN_ORDERS = ("qk_first", "kv_first")
# Fields added after studies and caches were first stored, with the values every earlier
# configuration implicitly had: a stored configuration without them reads back as the same network,
# and keys built before them drop them when they hold these values.
ADDED_LATER = {"v_threshold": 1.0, "tau": 2.0, "ternary": "a2os2a", "head_neuron": False, "sum_channel": False,
               "attn_scale": 0.125, "attn_scale_learnable": False}
SCALED_ATTENTION = {"ssa", "ls_ssa"}  # the built-in kinds that multiply their product by attn_scale
STEM_POOLS = ("maxpool", "spool")


@dataclass(frozen=True)
class ArchConfig:
    # --- input -------------------------------------------------------------------------
    img_size: int = 32  # square input side in pixels
    in_channels: int = 3  # image channels (or event polarities)
    num_classes: int = 10
    time_steps: int = 4  # T: static images are repeated T times (direct coding)
    sum_channel: bool = False  # the stem also sees the sum of the input channels (SpikingResformer's
    #                            DVS input: ON, OFF, ON + OFF); the data keeps in_channels
    # --- stem --------------------------------------------------------------------------
    stem: str = "sps"  # STEMS registry: sps | scs | conv7 | conv3
    stem_downsample: int = 2  # number of 2x reductions inside the stem (sps: 2 CIFAR, 4 ImageNet)
    stem_pool: str = "maxpool"  # pooling inside sps: maxpool (Spikformer) | spool (LSFormer)
    # --- stages (one entry per stage) ------------------------------------------------
    depths: tuple[int, ...] = (4,)  # blocks per stage
    dims: tuple[int, ...] = (384,)  # channels (embedding width) per stage
    heads: tuple[int, ...] = (12,)  # attention heads per stage; dims[i] % heads[i] == 0
    attention: tuple[str, ...] = ("ssa",)  # ATTENTION registry name per stage
    patch_sizes: tuple[int, ...] = (1,)  # DSSA patch p per stage (keys/values on a /p grid)
    downsample: str = "conv"  # DOWNSAMPLE registry, between stages: conv | maxpool | spool
    # --- attention details -------------------------------------------------------------
    attn_order: str = "qk_first"  # ssa / a2os2a: (Q K^T) V  or  Q (K^T V) (linear in tokens)
    window: int = 3  # ls_ssa: k x k window around each query (odd)
    dilations: tuple[int, ...] = (1,)  # ls_ssa: dilation rates, heads split evenly across them
    attn_scale: float = 0.125  # ssa / ls_ssa: Y = (Q, K, V product) * attn_scale (Spikformer's code: 0.125;
    #                            its CIFAR10-DVS code: 0.25); the other kinds have no such scale
    attn_scale_learnable: bool = False  # ssa / ls_ssa: attn_scale is the initial value of a learned scale
    #                                     (one parameter per attention layer)
    # --- neurons, residuals, MLP -------------------------------------------------------
    neuron: str = "lif"  # NEURONS registry name for every spiking layer of the backbone
    surrogate: str = "sigmoid"  # surrogate gradient: sigmoid (Spikformer) | atan (SpikingResformer)
    v_threshold: float = 1.0  # firing threshold of the backbone's neurons (fixed-threshold ones keep theirs)
    tau: float = 2.0  # membrane time constant (LIF; PLIF's initial value; ternary a2os2a / lif variants)
    ternary: str = "a2os2a"  # ternary neuron variant: a2os2a | ternary_spike | lif (nas.models.neurons)
    residual: str = "spike"  # spike shortcut (Spikformer) | membrane shortcut (SDT, SpikingResformer)
    mlp: str = "mlp"  # MLPS registry: mlp (Spikformer) | gwffn (SpikingResformer)
    mlp_ratio: int = 4  # hidden width = mlp_ratio * dim
    group_width: int = 64  # gwffn: channels per group of the 3x3 grouped conv
    # --- biases (they decide parameter counts; see the zoo for each paper's choice) -----
    qkv_bias: bool = False  # bias on Q/K/V (and DSSA's W) projections
    proj_bias: bool = True  # bias on attention output projection and MLP layers
    head_bias: bool = True  # bias on the classifier
    # --- head --------------------------------------------------------------------------
    head_neuron: bool = False  # Spike-driven Transformer: a neuron after the token mean, classifier on spikes
    # free-form provenance, ignored by the builder
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("depths", "dims", "heads", "attention", "patch_sizes", "dilations"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
            else:
                raise ArchConfigError(name, f"expected a list, got {value!r}")
        _validate(self)

    # ------------------------------------------------------------------ conversions
    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def depth(self) -> int:
        """Total number of transformer blocks."""
        return sum(self.depths)

    def stage_resolution(self, stage: int) -> int:
        """Side of the feature map inside ``stage`` (0-based)."""
        return self.img_size // (2 ** (self.stem_downsample + stage))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def network_key(self) -> dict[str, Any]:
        """``to_dict()`` with the fields the built network ignores set to their defaults, so two
        configurations that build the same network (and train to the same numbers) compare equal:
        ``downsample`` of a one-stage network, LS-SSA's ``window`` and ``dilations`` without an
        LS-SSA stage, a ``patch_sizes`` entry of a stage that is not DSSA, ``group_width``
        without the group-wise FFN, ``stem_pool`` outside the SPS stem, ``attn_order`` without
        SSA or A2OS2A, ``attn_scale`` and ``attn_scale_learnable`` without SSA or LS-SSA, ``ternary``
        without a ternary neuron, ``tau`` when no neuron leaks. Only judged for the built-in parts that read those fields: a registered
        plug-in attention or stem might read any field, so with one the key is ``to_dict()``."""
        out = self.to_dict()
        if not set(self.attention) <= BUILTIN_ATTENTION or self.stem not in BUILTIN_STEMS:
            return out
        defaults = ArchConfig.__dataclass_fields__
        if self.num_stages == 1:
            out["downsample"] = defaults["downsample"].default
        if "ls_ssa" not in self.attention:
            out["window"], out["dilations"] = defaults["window"].default, [1]
        out["patch_sizes"] = [p if a == "dssa" else 1 for p, a in zip(self.patch_sizes, self.attention)]
        if self.mlp != "gwffn":
            out["group_width"] = defaults["group_width"].default
        if self.stem != "sps":
            out["stem_pool"] = defaults["stem_pool"].default
        if not {"ssa", "a2os2a"} & set(self.attention):
            out["attn_order"] = defaults["attn_order"].default
        if not SCALED_ATTENTION & set(self.attention):
            out["attn_scale"], out["attn_scale_learnable"] = ADDED_LATER["attn_scale"], False
        uses_ternary = self.neuron == "ternary" or "a2os2a" in self.attention
        if not uses_ternary:
            out["ternary"] = defaults["ternary"].default
        if self.neuron == "if" and (not uses_ternary or self.ternary == "ternary_spike"):
            out["tau"] = defaults["tau"].default  # nothing leaks
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchConfig":
        """Strict constructor: unknown keys are an error, never silently ignored."""
        if not isinstance(data, Mapping):
            raise ArchConfigError("<root>", f"expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchConfigError(unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "ArchConfig":
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------- validation
def _check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ArchConfigError(field_name, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_types(a: ArchConfig) -> None:
    for f in dataclasses.fields(a):
        value = getattr(a, f.name)
        if f.type in ("int",):
            _check(_is_int(value), f.name, f"expected an integer, got {value!r}")
        elif f.type == "bool":
            _check(isinstance(value, bool), f.name, f"expected true or false, got {value!r}")
        elif f.type == "float":
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                   f.name, f"expected a finite number, got {value!r}")
            object.__setattr__(a, f.name, float(value))
        elif f.type == "str":
            _check(isinstance(value, str), f.name, f"expected a string, got {value!r}")
        elif f.type == "tuple[int, ...]":
            _check(len(value) > 0, f.name, "must not be empty")
            _check(all(_is_int(v) for v in value), f.name, f"expected integers, got {list(value)!r}")
        elif f.type == "tuple[str, ...]":
            _check(len(value) > 0, f.name, "must not be empty")
            _check(all(isinstance(v, str) for v in value), f.name, f"expected names, got {list(value)!r}")


def _validate(a: ArchConfig) -> None:
    _validate_types(a)
    for name in ("img_size", "in_channels", "num_classes", "time_steps", "mlp_ratio", "group_width", "window"):
        _check(getattr(a, name) >= 1, name, f"must be >= 1, got {getattr(a, name)}")
    _check(a.num_classes >= 2, "num_classes", f"must be >= 2, got {a.num_classes}")
    _check(a.stem_downsample >= 0, "stem_downsample", f"must be >= 0, got {a.stem_downsample}")
    _check(a.num_stages <= LIMITS["stages"], "depths", f"at most {LIMITS['stages']} stages, got {a.num_stages}")
    for name, limit in LIMITS.items():
        value = getattr(a, name, None)
        if value is None:
            continue
        largest = max(value) if isinstance(value, tuple) else value
        _check(largest <= limit, name, f"at most {limit}, got {largest}")

    n = a.num_stages
    for name in ("dims", "heads", "attention", "patch_sizes"):
        _check(len(getattr(a, name)) == n, name, f"needs one entry per stage ({n}), got {len(getattr(a, name))}")
    for name in ("depths", "dims", "heads", "patch_sizes", "dilations"):
        _check(all(v >= 1 for v in getattr(a, name)), name, f"entries must be >= 1, got {list(getattr(a, name))}")

    _check(a.residual in RESIDUALS, "residual", f"must be one of {', '.join(RESIDUALS)}, got {a.residual!r}")
    _check(a.attn_order in ATTN_ORDERS, "attn_order", f"must be one of {', '.join(ATTN_ORDERS)}, got {a.attn_order!r}")
    _check(a.ternary in TERNARY_VARIANTS, "ternary",
           f"must be one of {', '.join(TERNARY_VARIANTS)}, got {a.ternary!r}")
    _check(0.0 < a.v_threshold <= 100.0, "v_threshold", f"must be in (0, 100], got {a.v_threshold}")
    _check(0.0 < a.attn_scale <= 64.0, "attn_scale", f"must be in (0, 64], got {a.attn_scale}")
    _check(1.0 <= a.tau <= 1000.0, "tau", f"must be in [1, 1000] (1: no memory), got {a.tau}")
    _check(a.stem_pool in STEM_POOLS, "stem_pool", f"must be one of {', '.join(STEM_POOLS)}, got {a.stem_pool!r}")

    for i, (dim, heads) in enumerate(zip(a.dims, a.heads)):
        _check(dim % heads == 0, "heads", f"stage {i}: width {dim} is not divisible by {heads} heads")

    reduction = 2 ** (a.stem_downsample + n - 1)
    _check(a.img_size % reduction == 0, "img_size",
           f"{a.img_size} is not divisible by the total downsampling {reduction} (stem and stages)")
    for i, p in enumerate(a.patch_sizes):
        side = a.stage_resolution(i)
        _check(side % p == 0, "patch_sizes", f"stage {i}: feature map side {side} is not divisible by patch {p}")

    _check(a.window % 2 == 1, "window", f"must be odd so the window is centred, got {a.window}")
    if "ls_ssa" in a.attention:
        for i, (kind, heads) in enumerate(zip(a.attention, a.heads)):
            if kind == "ls_ssa":
                _check(heads % len(a.dilations) == 0, "dilations",
                       f"stage {i}: {heads} heads cannot be split evenly across {len(a.dilations)} dilation rates")
    if a.mlp == "gwffn":
        for i, dim in enumerate(a.dims):
            hidden = dim * a.mlp_ratio
            _check(hidden % a.group_width == 0, "group_width",
                   f"stage {i}: hidden width {hidden} is not a multiple of group width {a.group_width}")

