"""All registries of model parts, in one place for validation, the CLI and the tests.

Each registry maps a name used in ArchConfig / space.yaml to a class built as ``cls(arch, stage)``
(stems: ``cls(arch)``). Each part's module registers itself when it is imported; the package
``snnas.nas.models`` imports them all, so the registries are full whenever any part of the model
family is. ``ArchConfig`` checks its own structure; the names it refers to are checked here,
where networks are built (``check_parts``), as timm resolves its registry names at build time.
"""

from __future__ import annotations

from snnas.nas.models.arch import ArchConfig, ArchConfigError
from snnas.nas.models.neurons import NEURONS, SURROGATES
from snnas.nas.models.registry import Registry

ATTENTION: Registry = Registry("attention")  # nas/models/attention/<name>.py
STEMS: Registry = Registry("stem")  # nas/models/stems.py
DOWNSAMPLE: Registry = Registry("downsampling")  # nas/models/pooling.py
MLPS: Registry = Registry("mlp")  # nas/models/mlp.py

__all__ = ["ATTENTION", "DOWNSAMPLE", "MLPS", "NEURONS", "STEMS", "SURROGATES", "check_parts"]


def _known(registry: Registry, value: str, field: str, what: str) -> None:
    if value not in registry:
        raise ArchConfigError(field, f"unknown {what} {value!r}; choose from {', '.join(registry)}")


def check_parts(arch: ArchConfig) -> None:
    """Every part ``arch`` names is registered, and its stem accepts the rest of the configuration;
    raises ``ArchConfigError`` naming the field."""
    _known(STEMS, arch.stem, "stem", "stem")
    _known(DOWNSAMPLE, arch.downsample, "downsample", "downsampling")
    _known(NEURONS, arch.neuron, "neuron", "neuron")
    _known(SURROGATES, arch.surrogate, "surrogate", "surrogate")
    _known(MLPS, arch.mlp, "mlp", "mlp")
    for kind in arch.attention:
        _known(ATTENTION, kind, "attention", "attention")
    STEMS.get(arch.stem).validate(arch)
