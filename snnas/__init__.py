"""snnas: hardware-aware architecture search and energy estimation for spiking vision transformers.

The Python API (the ``snnas`` command does the same from a shell)::

    import torch, snnas

    model = snnas.zoo_model("spikformer-4-256")          # or any torch model of yours
    counts = snnas.count(model, inputs=torch.rand(4, 3, 32, 32))
    energy = snnas.price(counts, profile="45nm-fp32")      # EnergyEstimate
    print(energy.total_mj, energy.complete)

The packages underneath: ``snnas.nas`` (the model family, data, the search, training and
reports), ``snnas.energy`` (counting and pricing any torch model's operations) and ``snnas.cli``
(the ``snnas`` command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from snnas.nas import __version__

# Where each public name lives; imported on first use, so that `snnas --help` does not load torch.
_PUBLIC = {
    **{name: "snnas.api" for name in ("FrontMember", "SearchResult", "SnnasModel", "count", "load_model", "price",
                                      "profiles", "save_model", "search", "zoo_arch", "zoo_model", "zoo_names")},
    "OpCounts": "snnas.energy.counts", "EnergyEstimate": "snnas.energy.estimate",
    "build_model": "snnas.nas.models", "ArchConfig": "snnas.nas.models.arch",
}

__all__ = ["ArchConfig", "EnergyEstimate", "FrontMember", "OpCounts", "SearchResult", "SnnasModel", "__version__",
           "build_model", "count", "load_model", "price", "profiles", "save_model", "search", "zoo_arch", "zoo_model",
           "zoo_names"]

if TYPE_CHECKING:  # what the names are, for type checkers and the API docs
    from snnas.api import (FrontMember, SearchResult, SnnasModel, count, load_model, price, profiles, save_model,
                           search, zoo_arch, zoo_model, zoo_names)
    from snnas.energy.counts import OpCounts
    from snnas.energy.estimate import EnergyEstimate
    from snnas.nas.models import build_model
    from snnas.nas.models.arch import ArchConfig


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'snnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
