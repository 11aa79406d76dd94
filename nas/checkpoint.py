"""snnas model files: the architecture (as data) and the weights, loadable without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch

from nas.arch import ArchConfig
from nas.models import build_model

FORMAT = "snnas-model"
VERSION = 1


def save_model(model: torch.nn.Module, arch: ArchConfig, path: str | Path) -> None:
    """Write ``{format, version, arch, state_dict}`` with ``torch.save`` (tensors and plain data only)."""
    torch.save({"format": FORMAT, "version": VERSION, "arch": arch.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, str(path))


def is_snnas_file(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def model_from_file_data(obj: dict, *, origin: str) -> tuple[torch.nn.Module, ArchConfig]:
    """Rebuild the network from what ``save_model`` wrote (as read by a weights-only load)."""
    if obj.get("version") != VERSION:
        raise ValueError(f"{origin}: snnas model file version {obj.get('version')!r}, expected {VERSION}")
    arch = ArchConfig.from_dict(obj["arch"])
    model = build_model(arch)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{origin}: weights do not match the architecture ({str(exc).splitlines()[0][:200]})") \
            from None
    return model, arch
