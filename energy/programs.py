"""Checks of saved programs, read as data before torch loads them: torch.export and TorchScript archives.

Both formats carry a program that torch interprets, and both loaders run part of the file while
loading: TorchScript calls a module's ``__setstate__``; torch.export unpickles "opaque" constants
with plain pickle and resolves any ``torch.<attribute path>`` named as a node's target. A program
of tensor ops cannot reach the machine, but a few ops can: ``aten::from_file`` (a tensor backed by
a file: with ``shared=True`` every write lands in the file), ``aten::save`` (writes a file), the
distributed, symmetric-memory, profiler and inductor namespaces, and custom C++ classes
(``torch.classes``: c10d's ``FileStore`` and ``TCPStore`` among them).

Nothing here imports, unpickles or runs the file: zip member names, the archive's JSON, the
Python-syntax source TorchScript stores, and pickle opcodes are read as text. A file that fails a
check is refused with one line naming what it holds; ``--trust-code`` skips the checks for files
the user trusts.
"""

from __future__ import annotations

import ast
import json
import pickletools
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from snnas.energy.untrusted import RefusedFile

TRUST_HINT = "pass --trust-code only if you trust its author"

# Namespaces of ops that compute on tensors only. Custom ops are allowed from the packages
# snnas imports for saved spiking models (spikingjelly's neuron kernels: sj_lif, sj_plif, ...).
PURE_NAMESPACES = frozenset({"aten", "prims", "prim", "quantized", "_quantized", "sparse", "mkldnn", "onednn",
                             "mkl", "rngprims", "higher_order"})
CUSTOM_NAMESPACE_PREFIXES = ("sj_",)
# Ops of a pure namespace that reach outside the program: files, raw storages.
SIDE_EFFECT_OPS = frozenset({("aten", "from_file"), ("aten", "save"), ("aten", "set_"), ("aten", "set")})
# torch.export node targets that are not torch.ops: the symbolic-size helpers its serialiser writes.
_PYTHON_TARGETS = frozenset({
    "_operator.getitem", "_operator.add", "_operator.and_", "_operator.eq", "_operator.floordiv", "_operator.ge",
    "_operator.gt", "_operator.le", "_operator.lshift", "_operator.lt", "_operator.mod", "_operator.mul",
    "_operator.ne", "_operator.neg", "_operator.or_", "_operator.pos", "_operator.pow", "_operator.rshift",
    "_operator.sub", "_operator.truediv", "math.trunc", "math.ceil", "math.floor", "math.sqrt", "torch._sym_sqrt",
    "torch.sym_float", "torch.sym_int", "torch.sym_ite", "torch.sym_max", "torch.sym_min", "torch.sym_not",
})
_JSON_LIMIT_BYTES = 256 << 20  # a program's JSON or source; real ones are kilobytes to a few MB


def op_refusal(namespace: str, name: str) -> str | None:
    """Why the op ``namespace::name`` may not be in a file read without trust, or None."""
    if namespace in PURE_NAMESPACES or namespace.startswith(CUSTOM_NAMESPACE_PREFIXES):
        if (namespace, name) in SIDE_EFFECT_OPS:
            return f"it calls {namespace}::{name}, which reaches files or raw memory outside the program"
        return None
    return f"it calls {namespace}::{name}, an op outside the tensor-only namespaces"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, origin: Path) -> bytes:
    if info.file_size > _JSON_LIMIT_BYTES:
        raise RefusedFile(f"{origin}: member {info.filename} declares {info.file_size} bytes, more than a program "
                          f"file holds ({_JSON_LIMIT_BYTES >> 20} MiB); refused")
    with archive.open(info) as stream:
        return stream.read(_JSON_LIMIT_BYTES + 1)


def _open(path: Path, what: str) -> tuple[zipfile.ZipFile, str, list[zipfile.ZipInfo]]:
    """The archive, its one top folder, and its members (every one inside that folder)."""
    try:
        archive = zipfile.ZipFile(path)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RefusedFile(f"{path}: not a readable {what} archive ({exc})") from None
    tops = {PurePosixPath(m.filename).parts[0] for m in members if m.filename}
    if len(tops) != 1 or any(".." in PurePosixPath(m.filename).parts or m.filename.startswith("/") for m in members):
        archive.close()
        raise RefusedFile(f"{path}: a {what} archive keeps every member in one top folder; this one does not, "
                          "so it was not made by torch; refused")
    return archive, tops.pop(), members


# ---- torch.export (.pt2) ---------------------------------------------------------------------------

_EXPORT_FIXED = re.compile(r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
                           r"|extra/[\w.-]+)")
_EXPORT_PER_MODEL = {
    "models/{}.json": "program", "data/weights/{}_weights_config.json": "weights",
    "data/constants/{}_constants_config.json": "constants", "data/sample_inputs/{}.pt": "sample inputs",
}
_PAYLOAD_NAME = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}


def check_export_archive(path: Path) -> None:
    """Refuse a torch.export archive that holds anything but the members torch.export.save writes for
    tensor programs, payloads other than tensors, or a node whose op could reach outside the program."""
    archive, top, members = _open(path, "torch.export")
    with archive:
        by_name = {m.filename[len(top) + 1:]: m for m in members if not m.filename.endswith("/")}
        models = [n[len("models/"):-len(".json")] for n in by_name if re.fullmatch(r"models/[\w.-]+\.json", n)]
        if not models:
            raise RefusedFile(f"{path}: a torch.export archive without a program (models/*.json); refused")
        expected: set[str] = set()
        for model in models:
            expected |= {pattern.format(model) for pattern in _EXPORT_PER_MODEL}
            for kind in ("weights", "constants"):
                config = f"data/{kind}/{model}_{kind}_config.json"
                if config in by_name:
                    expected |= {f"data/{kind}/{name}" for name in
                                 _payload_files(_json(archive, by_name[config], path), kind, path)}
            _check_program(_json(archive, by_name[f"models/{model}.json"], path), path)
        unexpected = sorted(n for n in by_name if n not in expected and not _EXPORT_FIXED.fullmatch(n))
        if unexpected:
            raise RefusedFile(f"{path}: holds {unexpected[0]}"
                              f"{f' and {len(unexpected) - 1} other member(s)' if len(unexpected) > 1 else ''}, "
                              "which torch.export.save does not write for a tensor program (compiled code, pickled "
                              f"objects or legacy payloads); refused ({TRUST_HINT})")


def _json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, origin: Path):
    try:
        return json.loads(_read_member(archive, info, origin))
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise RefusedFile(f"{origin}: member {info.filename} is not readable JSON ({str(exc)[:80]})") from None


def _payload_files(config, kind: str, origin: Path) -> set[str]:
    """The payload file names a weights or constants config refers to, each a plain tensor file."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise RefusedFile(f"{origin}: the {kind} config is not a torch.export payload config; refused")
    names = set()
    for fqn, meta in entries.items():
        name = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not _PAYLOAD_NAME[kind].fullmatch(name):
            raise RefusedFile(f"{origin}: {kind} entry {str(fqn)[:60]} is stored as {str(name)[:60]}, not as a "
                              f"tensor (custom or opaque objects are unpickled, which runs code); refused "
                              f"({TRUST_HINT})")
        names.add(name)
    return names


def _strings(value) -> Iterator[tuple[str | None, str]]:
    """(key, string) for every string in a JSON document, with the key it sits under."""
    stack = [(None, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, str):
            yield key, item
        elif isinstance(item, dict):
            stack.extend(item.items())
        elif isinstance(item, list):
            stack.extend((key, element) for element in item)


def _check_program(program, origin: Path) -> None:
    """Every node target is an allowed op or size helper; every op named anywhere passes ``op_refusal``."""
    if not isinstance(program, dict) or "graph_module" not in program:
        raise RefusedFile(f"{origin}: the program is not a serialised torch.export program; refused")
    for key, text in _strings(program):
        if key == "target" and not (text.startswith("torch.ops.") or text in _PYTHON_TARGETS):
            raise RefusedFile(f"{origin}: a node calls {text[:80]}, which is not a torch op; refused ({TRUST_HINT})")
        if text.startswith("torch.ops."):
            parts = text.split(".")
            if len(parts) < 4 or not all(p.isidentifier() for p in parts[2:]):
                raise RefusedFile(f"{origin}: names a malformed op {text[:80]}; refused")
            why = op_refusal(parts[2], parts[3])
            if why:
                raise RefusedFile(f"{origin}: {why}; refused ({TRUST_HINT})")


# ---- TorchScript ---------------------------------------------------------------------------------

def check_torchscript_archive(path: Path) -> None:
    """Refuse a TorchScript archive whose code calls an op that reaches outside the program, uses a
    custom C++ class, or whose ``__setstate__`` (run while loading) does more than store its state."""
    archive, _top, members = _open(path, "TorchScript")
    with archive:
        for info in members:
            name = info.filename
            if "/code/" in name and name.endswith(".py"):
                _check_source(_read_member(archive, info, path), f"{path}: {name[name.index('/code/') + 1:]}")
            elif name.endswith((".pkl", ".debug_pkl")):
                _check_pickle_globals(_read_member(archive, info, path), f"{path}: {PurePosixPath(name).name}")


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _source_refusal(tree: ast.AST) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__setstate__" and not _stores_only(node):
            return "its __setstate__, which runs while the file is loaded, does more than store its state"
        name = _dotted(node) if isinstance(node, ast.Attribute) else None
        if name is None:
            continue
        parts = name.split(".")
        if "classes" in parts and parts[0] in ("torch", "__torch__"):
            return f"it uses the custom C++ class {name[:80]} (torch.classes), which runs native code"
        if parts[0] == "ops" and len(parts) >= 3:
            why = op_refusal(parts[1], parts[2])
        elif parts[0] == "torch" and len(parts) == 2:
            why = op_refusal("aten", parts[1])
        elif parts[-1] == "from_file":  # however it is reached
            why = op_refusal("aten", "from_file")
        else:
            why = None
        if why:
            return why
    return None


def _stores_only(function: ast.FunctionDef) -> bool:
    """A ``__setstate__`` that only assigns parts of its argument (or constants) to attributes."""
    allowed = (ast.Name, ast.Attribute, ast.Subscript, ast.Constant, ast.Tuple, ast.expr_context)
    for statement in function.body:
        if isinstance(statement, ast.Return) and (statement.value is None or isinstance(statement.value, ast.Constant)):
            continue
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and all(
                isinstance(n, allowed) for n in ast.walk(statement) if n is not statement):
            continue
        return False
    return True


def _check_source(source: bytes, origin: str) -> None:
    try:
        tree = ast.parse(source.decode("utf-8"))
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        raise RefusedFile(f"{origin}: TorchScript source that cannot be checked ({type(exc).__name__}); refused "
                          f"({TRUST_HINT})") from None
    why = _source_refusal(tree)
    if why:
        raise RefusedFile(f"{origin}: {why}; refused ({TRUST_HINT})")


def _check_pickle_globals(blob: bytes, origin: str) -> None:
    """TorchScript's unpickler builds the classes a pickle names; custom C++ classes run native
    ``__setstate__`` code, so a pickle naming one is refused."""
    strings: list[str] = []
    try:
        for opcode, argument, _position in pickletools.genops(blob):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "SHORT_BINSTRING", "BINSTRING"):
                strings.append(str(argument))
            names = [str(argument)] if opcode.name in ("GLOBAL", "INST") else \
                strings[-2:] if opcode.name == "STACK_GLOBAL" else []
            if any("torch.classes" in n or "__torch__.torch.classes" in n for n in names):
                raise RefusedFile(f"{origin}: builds the custom C++ class {' '.join(names)[:80]}, whose "
                                  f"__setstate__ runs native code while loading; refused ({TRUST_HINT})")
    except (ValueError, EOFError) as exc:
        raise RefusedFile(f"{origin}: a corrupt pickle ({str(exc)[:80]}); refused") from None
