"""The one place where snnas deserialises files from elsewhere. Nothing here runs code from a file.

Python's pickle calls whatever a file names, so every pickle snnas reads goes through one of:

* ``read_torch_save``: ``torch.load(weights_only=True)``: tensors and plain containers only.
* ``unpickle_restricted``: a pickle whose every global is one of an exact list of
  ``(module, name)`` pairs (no dotted names: ``numpy._core.multiarray`` reaches ``os.system``
  through ``overrides.inspect.os``), for data formats such as CIFAR's python batches.
* ``load_export_archive``: a ``torch.export`` file. Its loader falls back to full unpickling
  for weights, constants and example inputs; here every ``torch.load`` inside it is forced to
  weights only, and archives holding pickled custom objects are refused before loading.
* ``read_array``: ``numpy.load(allow_pickle=False)``.
* ``load_trusted_pickle``: full unpickling, only ever called when the user passed ``--trust-pickle``.

TorchScript files are read by ``torch.jit.load``, whose own unpickler builds TorchScript types only.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch


class RefusedFile(ValueError):
    """A file would run code if read, or is not what it claims to be; the message names it."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def plain(text: str) -> str:
    """One line of an exception's text, without terminal escape codes."""
    lines = _ANSI.sub("", text).strip().splitlines()
    return lines[0] if lines else ""


def read_torch_save(source: str | Path | bytes, *, origin: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers; ``origin`` names the file in errors."""
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        return torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(_ANSI.sub("", str(exc)))
        refers = f" (it refers to {found.group(1)})" if found else ""
        raise RefusedFile(f"{origin}: holds pickled Python objects{refers}; unpickling runs code from the file, "
                          "so it is refused") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        why = plain(str(exc))[:160] or ("it is empty" if isinstance(exc, EOFError) else type(exc).__name__)
        raise RefusedFile(f"{origin}: not a readable torch file ({why})") from None


class _AllowList(pickle.Unpickler):
    def __init__(self, stream, allowed: frozenset[tuple[str, str]], origin: str) -> None:
        super().__init__(stream, encoding="bytes")
        self.allowed = allowed
        self.origin = origin

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:  # exact pairs only: no dotted attribute paths
            raise RefusedFile(f"{self.origin}: the pickle refers to {module}.{name}, which a data file of this "
                              "kind never does; refused (unpickling it could run code)")
        return super().find_class(module, name)


def unpickle_restricted(blob: bytes, *, allowed: Iterable[tuple[str, str]], origin: str) -> Any:
    """Unpickle ``blob`` allowing only the exact ``(module, name)`` globals in ``allowed``."""
    try:
        return _AllowList(io.BytesIO(blob), frozenset(allowed), origin).load()
    except RefusedFile:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise RefusedFile(f"{origin}: corrupt pickle ({type(exc).__name__}: {plain(str(exc))[:120]})") from None


def read_array(path: Path) -> np.ndarray:
    """A ``.npy`` array; an object array (pickled) is refused."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickled" in str(exc):
            raise RefusedFile(f"{path}: holds pickled Python objects, which can run code and are refused; save a "
                              "numeric array") from None
        raise RefusedFile(f"{path}: not a readable .npy array ({plain(str(exc))[:160]})") from None
    except (OSError, EOFError) as exc:
        raise RefusedFile(f"{path}: not a readable .npy array ({plain(str(exc))[:160]})") from None


# Members of a torch.export archive whose loader calls pickle.loads or the TorchScript object
# unpickler on them (opaque and custom objects): refused before anything is loaded.
_PICKLED_OBJECT_MEMBERS = ("custom_obj_", "opaque_obj_")


def load_export_archive(path: Path):
    """``torch.export.load`` with every pickle in the archive read as weights only."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise RefusedFile(f"{path}: not a readable torch.export archive ({plain(str(exc))[:160]})") from None
    objects = [n for n in names if Path(n).name.startswith(_PICKLED_OBJECT_MEMBERS)]
    if objects:
        raise RefusedFile(f"{path}: holds pickled custom objects ({objects[0]}), which can run code when loaded; "
                          "refused")
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # read by torch.load at every call
    try:
        return torch.export.load(str(path))
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(_ANSI.sub("", str(exc)))
        refers = f" (it refers to {found.group(1)})" if found else ""
        raise RefusedFile(f"{path}: part of the archive holds pickled Python objects{refers}; refused (unpickling "
                          "it could run code)") from None
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def load_trusted_pickle(path: Path) -> Any:
    """Full unpickling: runs code from the file. Only for files the user said they trust."""
    return torch.load(path, map_location="cpu", weights_only=False)
