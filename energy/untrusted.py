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
* ``load_trusted_pickle``: full unpickling, only ever called when the user passed ``--trust-code``
  (also spelt ``--trust-pickle``).

TorchScript files are read by ``torch.jit.load`` after ``snnas.energy.programs`` has checked them.
"""

from __future__ import annotations

import contextlib
import importlib.util
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
    except MemoryError:
        raise RefusedFile(f"{origin}: the pickle describes more data than fits in memory; refused") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise RefusedFile(f"{origin}: corrupt pickle ({type(exc).__name__}: {plain(str(exc))[:120]})") from None


def read_array(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    """A ``.npy`` array, or an ``.npz`` archive of them (numpy's lazy ``NpzFile``), opened only once
    ``array_headers`` has checked every array from its header: a regular file, no object (pickled)
    arrays, no array larger than its file or member holds nor than ``max_data_bytes()`` (so a
    crafted compressed member is refused before it is inflated)."""
    path = Path(path)
    array_headers(path)
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


def _cpu_devices(value):
    """A JSON document with every device that is not the CPU (``{"type": "cuda", "index": 0}``) made CPU."""
    if isinstance(value, dict):
        if set(value) == {"type", "index"} and isinstance(value.get("type"), str) and value["type"] != "cpu":
            return {"type": "cpu", "index": None}
        return {k: _cpu_devices(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu_devices(v) for v in value]
    return value


def _on_cpu(path: Path):
    """``path``, or an in-memory copy whose program and payload configs place every tensor on the CPU
    when the archive was saved from a GPU (its loader would move them to a device this machine may
    lack, and snnas counts on the CPU or moves the model itself)."""
    import json

    with zipfile.ZipFile(path) as archive:
        programs = {info.filename: json.loads(archive.read(info)) for info in archive.infolist()
                    if info.filename.endswith(".json")}
        if all(_cpu_devices(doc) == doc for doc in programs.values()):
            return str(path)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as copy:
            for info in archive.infolist():
                data = archive.read(info)
                copy.writestr(info, json.dumps(_cpu_devices(programs[info.filename])).encode()
                              if info.filename in programs else data)
    buffer.seek(0)
    return buffer


@contextlib.contextmanager
def _loads_on_cpu():
    """Inside torch.export's loader, every ``torch.load`` maps tensors to the CPU (sample inputs saved
    from a GPU would otherwise need one)."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("map_location", "cpu")
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


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
        with _loads_on_cpu():
            return torch.export.load(_on_cpu(path))
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


# Where snnas's own classes lived before they moved into the ``snnas`` namespace (a pickled snnas
# network names its classes' modules): only used when the old top-level name is not importable.
RENAMED_MODULES = {
    "nas.arch": "snnas.nas.models.arch", "nas.registry": "snnas.nas.models.registry",
    "nas.checkpoint": "snnas.nas.models.checkpoint", "nas.events": "snnas.nas.data.events",
    **{f"nas.{name}": f"snnas.nas.search.{name}" for name in ("space", "study", "workers", "proxy", "journal",
                                                               "pareto", "stats")},
    "nas.train": "snnas.nas.train.training", "nas.evaluate": "snnas.nas.train.evaluate",
    "nas.report": "snnas.nas.report.tables", "nas.latex": "snnas.nas.report.latex",
    "nas.archref": "snnas.nas.report.archref",
}


def renamed_module(module: str) -> str:
    """The module a pickle's old snnas module name now is (``nas.models.network`` ->
    ``snnas.nas.models.network``); other names as they are."""
    top = module.split(".")[0]
    if top not in ("nas", "energy", "cli") or not _is_ours(top):
        return module
    for old, new in RENAMED_MODULES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return "snnas." + module


def _is_ours(top: str) -> bool:
    """Whether the top-level name ``top`` is free, or is this checkout's ``snnas.<top>`` folder
    seen from its root (a user's own package of that name is left alone)."""
    found = importlib.util.find_spec(top)
    if found is None or found.origin is None:
        return found is None
    ours = importlib.util.find_spec(f"snnas.{top}")
    return ours is not None and Path(found.origin).resolve() == Path(ours.origin).resolve()


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(renamed_module(module), name)


class _RenamingPickle:
    """What ``torch.load(pickle_module=...)`` needs of a pickle module, with old module names renamed."""

    Unpickler = _RenamingUnpickler
    load = staticmethod(lambda file, **kw: _RenamingUnpickler(file, **kw).load())
    __name__ = "pickle"


def load_trusted_pickle(path: Path) -> Any:
    """Full unpickling: runs code from the file. Only for files the user said they trust. Pickled
    snnas networks saved before the ``snnas`` namespace load under their classes' new modules."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RenamingPickle)


# ----------------------------------------------------------------------------- bounded reading
import math  # noqa: E402  (kept with the functions that use them)
import stat  # noqa: E402
import zlib  # noqa: E402
from dataclasses import dataclass  # noqa: E402

MAX_DATA_ENV = "SNNAS_MAX_DATA_BYTES"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """A size as users write it (``8G``, ``512M``, ``1.5GiB``, ``1000``) in bytes; None if it is not one."""
    match = _SIZE.match(text)
    if not match:
        return None
    return int(float(match.group(1)) * (1 << (10 * " kmgt".index(match.group(2).lower() or " "))))


def available_memory() -> int | None:
    """Bytes of memory available now (Linux MemAvailable, else free pages), None where unknown."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def max_data_bytes() -> tuple[int, str]:
    """(bytes, how it was set): the most one data file's arrays, archive members or decoded images
    may take once read. ``SNNAS_MAX_DATA_BYTES`` (a number of bytes, or with K, M, G or T: 8G) sets
    it; else a quarter of the memory available when the file is read."""
    value = os.environ.get(MAX_DATA_ENV, "")
    if value.strip():
        size = parse_size(value)
        if not size or size < 1:
            raise RefusedFile(f"{MAX_DATA_ENV}={value!r}: expected a positive number of bytes (such as 8G)")
        return size, f"set by {MAX_DATA_ENV}"
    have = available_memory()
    if have is None:
        return 1 << 62, "none known"
    return have // 4, f"a quarter of the {size_text(have)} of memory available; {MAX_DATA_ENV} sets it"


def size_text(n: int) -> str:
    """``n`` bytes in a few characters: 812 bytes, 3.1 MiB, 4.0 GiB."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def over_limit(origin: str, what: str, size: int) -> None:
    """Refuse ``size`` bytes (``what`` would take them) beyond ``max_data_bytes()``, naming ``origin``."""
    limit, how = max_data_bytes()
    if size > limit:
        raise RefusedFile(f"{origin}: {what} {size_text(size)}, more than the {size_text(limit)} limit ({how}); "
                          "refused before reading it")


def check_regular(path: Path) -> int:
    """The size of ``path`` if it is a regular file (a link to one counts). A pipe, device or socket is
    never opened: reading one can block for ever or never end."""
    try:
        info = path.stat()
    except OSError as exc:
        why = "a broken link" if path.is_symlink() else (exc.strerror or type(exc).__name__).lower()
        raise RefusedFile(f"{path}: cannot be read ({why})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode)
                else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device")
        raise RefusedFile(f"{path}: not a regular file but {kind}; refused without opening it")
    return info.st_size


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` header declares: ``name`` is the ``.npz`` member (``x``), '' for an ``.npy`` file."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # bytes of magic and header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def array_headers(path: Path) -> list[ArrayHeader]:
    """The arrays of an ``.npy`` or ``.npz`` file as their headers declare them, checked before a byte
    of data is read or inflated; raises ``RefusedFile`` naming the file (and member) otherwise."""
    size = check_regular(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(_ZIP_MAGIC):
        return _npz_headers(path)
    if magic != b"\x93NUMPY":
        if magic[:1] == b"\x80":
            raise RefusedFile(f"{path}: holds pickled Python objects, which can run code and are refused; save a "
                              "numeric array")
        kind = ".npz file" if path.suffix == ".npz" else ".npy array"
        raise RefusedFile(f"{path}: not a readable {kind} (it starts with neither a zip nor a numpy header)")
    with open(path, "rb") as f:
        header = _npy_header(f, str(path), "")
    _fits(str(path), header, size)
    return [header]


def _npz_headers(path: Path) -> list[ArrayHeader]:
    try:
        with zipfile.ZipFile(path) as archive:
            headers, total = [], 0
            for info in archive.infolist():
                origin = f"{path}: member {info.filename!r}"
                if info.is_dir():
                    continue
                over_limit(str(path), f"member {info.filename!r} declares that it inflates to", info.file_size)
                total += info.file_size
                if not info.filename.endswith(".npy"):
                    continue  # numpy reads it as raw bytes, at most the size checked above
                with archive.open(info) as member:
                    header = _npy_header(member, origin, info.filename[:-4])
                _fits(origin, header, info.file_size)
                headers.append(header)
            over_limit(str(path), "its members declare that they inflate to", total)
            return headers
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, EOFError,
            zlib.error) as exc:
        raise RefusedFile(f"{path}: not a readable .npz file ({plain(str(exc))[:160] or type(exc).__name__})") \
            from None


def _npy_header(f, origin: str, name: str) -> ArrayHeader:
    """Magic and header of an ``.npy`` stream (numpy's own parser, which evaluates literals only)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
    except (ValueError, EOFError, SyntaxError, TypeError, KeyError) as exc:
        raise RefusedFile(f"{origin}: not a readable .npy array ({plain(str(exc))[:160] or type(exc).__name__})") \
            from None
    if dtype.hasobject:
        raise RefusedFile(f"{origin}: holds pickled Python objects (an object array), which can run code and are "
                          "refused; save a numeric array")
    return ArrayHeader(name, tuple(int(n) for n in shape), dtype, f.tell())


def _fits(origin: str, header: ArrayHeader, stored: int) -> None:
    """The array must fit in the bytes it is stored in and in ``max_data_bytes()``."""
    over_limit(origin, f"declares a {header.dtype} array of shape {header.shape}, which takes", header.nbytes)
    if header.offset + header.nbytes > stored:
        raise RefusedFile(f"{origin}: declares a {header.dtype} array of shape {header.shape} ({header.nbytes} "
                          f"bytes) but holds {max(stored - header.offset, 0)} bytes of data (torn or crafted)")
