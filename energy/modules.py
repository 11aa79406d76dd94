"""Which module is which, in every format a model can arrive in: names, class names, neurons.

The counter attributes every op to the innermost module running. An eager module (an snnas
model, a pickled module) knows its class; a ``torch.export`` program keeps its modules' class
names in each node's ``nn_module_stack``, and a TorchScript module in its type's qualified name
(``__torch__.pkg.mod.___torch_mangle_3.Cls``). All three resolve to the same ``ModuleInfo``, so a
model counts the same from every file format.

A spiking neuron is a module whose class descends from a known neuron base (spikingjelly's
``BaseNode``, snnTorch's ``SpikingNeuron``, norse's ``SNNCell``) or, for a spikingjelly-style
module known only as an instance, one that keeps a membrane memory ``v``. Other stateful modules
(spikingjelly's Dropout, DropConnectLinear, BatchNormThroughTime) are not neurons: their synapses
are counted. A class that cannot be resolved (a file from elsewhere, a module not importable
here) is not a neuron, whatever its name, as the same class is not when its module is pickled:
every format decides alike, and the class's own arithmetic (integrate, leak, compare, reset) is
counted op by op instead of as neuron updates.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

NEURON_BASES = {"BaseNode", "SpikingNeuron", "SNNCell", "SNNRecurrentCell"}
# packages whose classes may be imported to resolve a class named in a file (installed SNN libraries)
IMPORTABLE = {"spikingjelly", "snntorch", "norse"}
_MANGLE = re.compile(r"\.___torch_mangle_\d+")
_CALL = re.compile(r"@\d+(?=\.|$)")


@dataclass(frozen=True)
class ModuleInfo:
    name: str  # dotted path in the model, "(model)" for the root
    type: str  # class name
    neuron: bool
    params: int  # parameters owned by this module itself


def clean_qualname(qualname: str) -> str:
    """``__torch__.a.b.___torch_mangle_7.Cls`` -> ``a.b.Cls``."""
    qualname = _MANGLE.sub("", qualname)
    return qualname[len("__torch__."):] if qualname.startswith("__torch__.") else qualname


def resolve_class(qualname: str) -> type | None:
    """The class a qualified name refers to, if its module is loaded or is an installed SNN library."""
    module_name, _, class_name = clean_qualname(qualname).rpartition(".")
    module = sys.modules.get(module_name)
    if module is None and module_name.split(".")[0] in IMPORTABLE:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - an unresolvable class falls back to its name
            module = None
    found = getattr(module, class_name, None) if module is not None else None
    return found if isinstance(found, type) else None


def is_neuron_class(cls: type) -> bool:
    return any(base.__name__ in NEURON_BASES for base in cls.__mro__)


def is_neuron(module: nn.Module, qualname: str | None = None) -> bool:
    """Whether ``module`` (or the class ``qualname`` names, for modules loaded from files) is a neuron."""
    if qualname is None:
        if is_neuron_class(type(module)):
            return True
        memories = getattr(module, "_memories", None)
        return isinstance(memories, dict) and "v" in memories
    cls = resolve_class(qualname)
    return cls is not None and is_neuron_class(cls)


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def describe(model: nn.Module, module_types: Mapping[str, str] | None = None) -> dict[int, ModuleInfo]:
    """``id(module) -> ModuleInfo`` for every module of ``model`` (eager, unflattened export, TorchScript).

    ``module_types`` maps module paths to the qualified class names a ``torch.export`` program
    recorded (``energy.loading`` reads them); without it an export module's class is unknown.
    """
    scripted = isinstance(model, torch.jit.ScriptModule)
    infos: dict[int, ModuleInfo] = {}
    for name, module in model.named_modules():
        name = _CALL.sub("", name)  # torch.export names a module's k-th extra call "lif@k": one layer, k+1 calls
        qualname = None
        if scripted:
            qualname = module._c._type().qualified_name()
        elif module_types is not None and name in module_types:
            qualname = module_types[name]
        elif module_types is not None and type(module).__name__ == "InterpreterModule":
            qualname = "InterpreterModule"
        type_name = clean_qualname(qualname).rpartition(".")[2] if qualname else type(module).__name__
        infos[id(module)] = ModuleInfo(name or "(model)", type_name, is_neuron(module, qualname), _own_params(module))
    return infos


def reset_state(model: nn.Module) -> None:
    """Reset every stateful spiking module (spikingjelly memories, snnTorch hidden states)."""
    for module in model.modules():
        names = {cls.__name__ for cls in type(module).__mro__}
        if "MemoryModule" in names and callable(getattr(module, "reset", None)):
            module.reset()
        elif "SpikingNeuron" in names and getattr(module, "init_hidden", False):
            module.reset_mem()
