"""snnas model files: the architecture (as data) and the weights, loadable without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models import build_model
from snnas.nas.models.footprint import check_fits

FORMAT = "snnas-model"
VERSION = 1


def save_model(model: torch.nn.Module, arch: ArchConfig, path, *, meta: dict | None = None,
               resume: dict | None = None) -> None:
    """Write ``{format, version, arch, state_dict[, meta][, resume]}`` with ``torch.save`` (tensors and
    plain data only: read back without unpickling code). ``meta`` describes the run (data, recipe,
    metrics), ``resume`` holds what a training needs to go on (optimiser, random state). ``path``
    is a file path or a binary buffer."""
    obj = {"format": FORMAT, "version": VERSION, "arch": arch.to_dict(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if meta is not None:
        obj["meta"] = meta
    if resume is not None:
        obj["resume"] = resume
    torch.save(obj, path if not isinstance(path, (str, Path)) else str(path))


def load_model_file(path: str | Path) -> tuple[torch.nn.Module, ArchConfig, dict]:
    """(model, architecture, everything the file holds) of an snnas model file, read weights-only."""
    from snnas.energy.untrusted import read_torch_save

    obj = read_torch_save(Path(path), origin=str(path))
    if not is_snnas_file(obj):
        raise ValueError(f"{path}: not an snnas model file (save one with snnas.save_model)")
    model, arch = model_from_file_data(obj, origin=str(path))
    return model, arch, obj


def is_snnas_file(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def model_from_file_data(obj: dict, *, origin: str) -> tuple[torch.nn.Module, ArchConfig]:
    """Rebuild the network from what ``save_model`` wrote (as read by a weights-only load)."""
    if obj.get("version") != VERSION:
        raise ValueError(f"{origin}: snnas model file version {obj.get('version')!r}, expected {VERSION}")
    arch = ArchConfig.from_dict(obj["arch"])
    check_fits(arch, what=origin)  # a few bytes of architecture can describe terabytes of network
    model = build_model(arch)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{origin}: weights do not match the architecture ({str(exc).splitlines()[0][:200]})") \
            from None
    return model, arch
