"""Reading model files safely: TorchScript, torch.export, and (only when trusted) pickled modules.

Unpickling a full ``nn.Module`` runs arbitrary code from the file, so it is refused unless the
caller says the file is trusted (``snnas energy --trust-pickle``). TorchScript and torch.export
archives carry code that torch interprets without Python's unpickler.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ModelFileError(ValueError):
    """A model file is missing, corrupt, of an unknown kind, or refused."""


@dataclass
class LoadedModel:
    module: nn.Module
    kind: str  # "torchscript" | "export" | "pickle" | ...
    example_inputs: tuple[torch.Tensor, ...] | None = None  # torch.export keeps them


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def sniff(path: Path) -> str:
    """``torchscript``, ``export``, ``torch-save`` (a torch.save zip) or ``unknown``."""
    names = _zip_names(path)
    if any(n.endswith("models/model.json") or "/serialized_exported_program" in n for n in names):
        return "export"
    if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "torch-save"
    return "unknown"


def read_torch_save(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (no code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path}: holds pickled Python objects (a full module?); unpickling runs code from the file, "
            "so it is refused. Save a TorchScript or torch.export file, or pass --trust-pickle if you trust "
            f"its author ({str(exc).splitlines()[0][:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable torch file ({str(exc).splitlines()[0][:160]})") from None


def load_module_file(path: str | Path, *, trust_pickle: bool = False) -> LoadedModel:
    """Load a TorchScript file, a torch.export file, or a pickled module (``trust_pickle`` only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    kind = sniff(path)
    try:
        if kind == "torchscript":
            return LoadedModel(torch.jit.load(str(path), map_location="cpu"), "torchscript")
        if kind == "export":
            program = torch.export.load(str(path))
            example = program.example_inputs[0] if program.example_inputs else None
            return LoadedModel(torch.export.unflatten(program), "export", tuple(example) if example else None)
    except (RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: corrupt {kind} file ({str(exc).splitlines()[0][:160]})") from None
    if kind != "torch-save":
        raise ModelFileError(f"{path}: not a TorchScript, torch.export or torch.save file")
    if not trust_pickle:
        read_torch_save(path)  # raises with the explanation when the file holds pickled objects
        raise ModelFileError(f"{path}: holds tensors but no model (a state dict?); save the architecture too "
                             "(snnas models: nas.checkpoint.save_model)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # anything can fail inside arbitrary unpickling
        raise ModelFileError(f"{path}: cannot unpickle ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") \
            from None
    if not isinstance(obj, nn.Module):
        raise ModelFileError(f"{path}: unpickled a {type(obj).__name__}, not an nn.Module")
    return LoadedModel(obj, "pickle")
