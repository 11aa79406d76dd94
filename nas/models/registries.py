"""All registries of model parts, in one place for validation, the CLI and the tests.

Each registry maps a name used in ArchConfig / space.yaml to a class built as ``cls(arch, stage)``
(stems: ``cls(arch)``). The modules imported at the bottom fill them in.
"""

from __future__ import annotations

from nas.models.neurons import NEURONS, SURROGATES
from nas.registry import Registry

ATTENTION: Registry = Registry("attention")  # nas/models/attention/<name>.py
STEMS: Registry = Registry("stem")  # nas/models/stems.py
DOWNSAMPLE: Registry = Registry("downsampling")  # nas/models/pooling.py
MLPS: Registry = Registry("mlp")  # nas/models/mlp.py

__all__ = ["ATTENTION", "DOWNSAMPLE", "MLPS", "NEURONS", "STEMS", "SURROGATES"]

# Importing these modules registers their entries.
from nas.models import attention, mlp, pooling, stems  # noqa: E402,F401
