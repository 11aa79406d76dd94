"""Reading model files: TorchScript, torch.export, and (only when trusted) pickled modules.

Unpickling a full ``nn.Module`` runs arbitrary code from the file, so it is refused unless the
caller says the file is trusted (``snnas energy --trust-code``, also spelt ``--trust-pickle``).
TorchScript and torch.export archives carry programs that torch interprets, and their loaders run
part of them while loading; ``energy.programs`` reads each archive as data first and refuses one
whose program could reach outside itself (files, custom C++ classes, pickled objects), and every
pickle inside them is read as tensors only (``energy.untrusted``, the one place where files are
deserialised).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from snnas.energy.programs import check_export_archive, check_torchscript_archive
from snnas.energy.untrusted import RefusedFile, load_export_archive, load_trusted_pickle, plain


class ModelFileError(ValueError):
    """A model file is missing, corrupt, of an unknown kind, or refused."""


@dataclass
class LoadedModel:
    module: nn.Module
    kind: str  # "torchscript" | "export" | "pickle" | ...
    example_inputs: tuple[torch.Tensor, ...] | None = None  # torch.export keeps them
    module_types: dict[str, str] | None = None  # export: module path -> qualified class name
    notes: tuple[str, ...] = ()  # what the user should know about the file (one line each)


# Saved spiking models call the custom ops of the library that built them (spikingjelly's neuron
# kernels, ``torch.ops.sj_lif.forward``): they exist only once the package that defines them is
# imported, one sub-package per neuron kind under ``spikingjelly._ops``.
CUSTOM_OP_PACKAGES = ("spikingjelly._ops",)


def register_custom_ops() -> None:
    """Import the packages that register the custom ops saved spiking models refer to."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # one line per op otherwise
    for name in CUSTOM_OP_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:  # the library is optional for models that do not use it
            continue
        for found in pkgutil.iter_modules(package.__path__):
            if found.ispkg:
                try:
                    importlib.import_module(f"{name}.{found.name}")
                except Exception:  # noqa: BLE001 - a kernel package that fails here is one a file cannot use
                    pass


STALE_STATE = ("{n} spiking neuron(s) start from membrane potentials saved in the file: a forward pass ran "
               "before it was {how} without a reset (spikingjelly's functional.reset_net, snnTorch's utils.reset), "
               "so every pass of this program starts from that state (the counts are of that program; a state "
               "saved from a larger batch repeats each sample that many times; reset the network before saving)")
STATE_ROWS = ("{n} saved state tensor(s) of {rows} rows enter this traced program's arithmetic (snnTorch's "
              "init_hidden membranes keep the batch they were traced with): each sample is broadcast to {rows} "
              "rows, so its counts are {rows}x one sample's; reset the network and trace it on a batch of 1")
ARITHMETIC = {"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_", "aten::div",
              "aten::div_", "aten::rsub"}


def _nonzero(value) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() > 0 and bool(value.ne(0).any())


def _stale_export_state(program) -> int:
    """Neuron ops (a schema argument named ``v``, as spikingjelly's ``sj_*`` kernels have) whose
    membrane input is a non-zero tensor saved with the program."""
    specs = {spec.arg.name: spec for spec in program.graph_signature.input_specs if hasattr(spec.arg, "name")}
    stale = 0
    for node in program.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        for i, argument in enumerate(schema.arguments if schema is not None else ()):
            if argument.name != "v":
                continue
            value = node.args[i] if i < len(node.args) else node.kwargs.get("v")
            spec = specs.get(value.name) if isinstance(value, torch.fx.Node) and value.op == "placeholder" else None
            if spec is not None:
                saved = program.constants.get(spec.target, program.state_dict.get(spec.target))
                stale += _nonzero(saved)
    return stale


def _stale_script_state(module) -> int:
    """The same for a TorchScript module: neuron ops whose ``v`` is a non-zero constant tensor."""
    stale = 0
    try:
        nodes = list(module.inlined_graph.nodes())
    except (AttributeError, RuntimeError):
        return 0
    for node in nodes:
        if not node.kind().startswith("sj_"):
            continue
        try:
            arguments = torch._C.parse_schema(node.schema()).arguments
        except (RuntimeError, ValueError):
            continue
        for i, argument in enumerate(arguments):
            if argument.name == "v" and i < node.inputsSize():
                source = node.inputsAt(i).node()
                stale += source.kind() == "prim::Constant" and _nonzero(source.output().toIValue())
    return stale


def _script_state_buffers(module) -> list[torch.Tensor]:
    """Saved state read into a traced program's arithmetic: buffers of two or more axes (a
    membrane of [batch, features], as snnTorch's ``init_hidden`` neurons keep) that an add, sub,
    mul or div takes directly. Parameters, BatchNorm statistics and scalar constants are not
    state; a buffer sliced first (a positional table) is not read whole."""
    try:
        graph = module.inlined_graph
    except (AttributeError, RuntimeError):
        return []
    objects = {next(graph.inputs()).debugName(): module}
    state = {}
    for node in graph.nodes():
        if node.kind() == "prim::GetAttr":
            owner = objects.get(node.inputsAt(0).debugName())
            if owner is not None and hasattr(owner, node.s("name")):
                objects[node.output().debugName()] = getattr(owner, node.s("name"))
        elif node.kind() in ARITHMETIC:
            for value in node.inputs():
                tensor = objects.get(value.debugName())
                if isinstance(tensor, torch.Tensor) and tensor.dim() >= 2 and \
                        not isinstance(tensor, torch.nn.Parameter) and not tensor.requires_grad:
                    state[value.debugName()] = tensor
    return list(state.values())


def _script_state_notes(module) -> tuple[str, ...]:
    """The stale-state note, and a note for state saved with a batch of several rows."""
    buffers = _script_state_buffers(module)
    notes = []
    stale = _stale_script_state(module) + sum(1 for b in buffers if b.shape[0] == 1 and _nonzero(b))
    if stale:
        notes.append(STALE_STATE.format(n=stale, how="traced"))
    wide = [b for b in buffers if b.shape[0] > 1]
    if wide:
        notes.append(STATE_ROWS.format(n=len(wide), rows=max(b.shape[0] for b in wide)))
    return tuple(notes)


def _export_module_types(program) -> dict[str, str]:
    """Module path -> qualified class name, from the ``nn_module_stack`` of the program's nodes."""
    types: dict[str, str] = {}
    for node in program.graph.nodes:
        for path, type_name in (node.meta.get("nn_module_stack") or {}).values():
            types.setdefault(path, type_name if isinstance(type_name, str) else
                             f"{type_name.__module__}.{type_name.__qualname__}")
    return types


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
    from snnas.energy.untrusted import read_torch_save as read

    try:
        return read(path, origin=str(path))
    except RefusedFile as exc:
        hint = ". Save a TorchScript or torch.export file, or pass --trust-code if you trust its author" \
            if "pickled" in str(exc) else ""
        raise ModelFileError(f"{exc}{hint}") from None


def _missing_class(exc: Exception) -> str:
    """How to make the class a pickled module refers to importable."""
    text = plain(str(exc))
    attribute = re.search(r"Can't get attribute '([\w.]+)' on <module '([\w.]+)'", text)
    main = sys.modules.get("__main__")
    main_names = {"__main__", getattr(getattr(main, "__spec__", None), "name", None)}  # `python -m` renames it
    if attribute and attribute.group(2) in main_names:
        return (f"the pickled module's class {attribute.group(1)} was defined in the script that saved it, so it "
                "cannot be found here; move the class into an importable module (on PYTHONPATH) and save again, "
                "or save a TorchScript or torch.export file, which needs no class")
    if attribute:
        return (f"the pickled module's class {attribute.group(1)} is not in module {attribute.group(2)} as "
                "installed here (another version?); install the version that saved it, or save a TorchScript "
                "or torch.export file")
    missing = re.search(r"No module named '([\w.]+)'", text)
    name = missing.group(1) if missing else text
    return (f"the pickled module's class lives in module {name}, which is not importable here; add the folder "
            "that holds it to PYTHONPATH (or install its package), or save a TorchScript or torch.export file")


def not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file, in a few words (for a one-line error)."""
    if path.is_dir():
        return f"{path}: a folder, not a file"
    return f"{path}: no such file" if not path.exists() else f"{path}: not a regular file (a device, pipe or socket)"


def load_module_file(path: str | Path, *, trust_pickle: bool = False, trust_code: bool = False) -> LoadedModel:
    """Load a TorchScript file, a torch.export file, or a pickled module (trusted files only).

    ``trust_code`` (or its older name ``trust_pickle``) says the file's author is trusted: a pickled
    module is unpickled and programs are loaded without ``energy.programs``' checks."""
    path = Path(path)
    trusted = trust_pickle or trust_code
    if not path.is_file():
        raise ModelFileError(not_a_file(path))
    kind = sniff(path)
    if kind in ("torchscript", "export"):
        register_custom_ops()
    try:
        if kind in ("torchscript", "export") and not trusted:
            (check_torchscript_archive if kind == "torchscript" else check_export_archive)(path)
        if kind == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
            return LoadedModel(module, "torchscript", notes=_script_state_notes(module))
        if kind == "export":
            program = load_export_archive(path)
            example = program.example_inputs[0] if program.example_inputs else None
            stale = _stale_export_state(program)
            return LoadedModel(torch.export.unflatten(program), "export", tuple(example) if example else None,
                               _export_module_types(program),
                               notes=(STALE_STATE.format(n=stale, how="exported"),) if stale else ())
    except RefusedFile as exc:
        raise ModelFileError(str(exc)) from None
    except (RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: corrupt {kind} file ({plain(str(exc))[:160]})") from None
    if kind != "torch-save":
        raise ModelFileError(f"{path}: not a TorchScript, torch.export or torch.save file")
    if not trusted:
        read_torch_save(path)  # raises with the explanation when the file holds pickled objects
        raise ModelFileError(f"{path}: holds tensors but no model (a state dict?); save the architecture too "
                             "(snnas models: snnas.save_model)")
    try:
        obj = load_trusted_pickle(path)
    except (AttributeError, ModuleNotFoundError) as exc:  # the class the file names is not importable here
        raise ModelFileError(f"{path}: {_missing_class(exc)}") from None
    except Exception as exc:  # anything can fail inside arbitrary unpickling
        raise ModelFileError(f"{path}: cannot unpickle ({type(exc).__name__}: {plain(str(exc))[:160]})") from None
    if not isinstance(obj, nn.Module):
        raise ModelFileError(f"{path}: unpickled a {type(obj).__name__}, not an nn.Module")
    return LoadedModel(obj, "pickle")
