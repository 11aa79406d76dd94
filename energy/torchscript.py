"""Running a TorchScript module one graph node at a time, so that ops are attributed to modules.

A TorchScript module takes no Python hooks, so a counter that runs it as a whole sees its ops
but not which submodule issued them. ``GraphRunner`` walks each method's graph instead: an
aten (or custom) op is called through ``torch.ops`` with the arguments its schema names, a
``prim::CallMethod`` on a submodule is reported (``enter`` / ``exit``) and walked in turn, and
the small set of list, tuple and control-flow nodes TorchScript emits is evaluated in Python.
The result is the one the module computes itself (the tests compare outputs bit for bit).

A method whose graph holds a node this runner does not know is run natively by TorchScript,
so its ops are still counted, attributed to that method's module as a whole. ``leaf(module)``
marks modules to run natively anyway (spiking neurons: their inside is one neuron update).
"""

from __future__ import annotations

import operator
from collections import ChainMap
from typing import Any, Callable

import torch

_STRUCTURAL = {
    "prim::Constant", "prim::GetAttr", "prim::CallMethod", "prim::CallFunction", "prim::ListConstruct",
    "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack", "prim::TupleIndex", "prim::DictConstruct",
    "prim::NumToTensor", "prim::unchecked_cast", "prim::Uninitialized", "prim::RaiseException", "prim::dtype",
    "prim::device", "prim::If", "prim::Loop", "prim::min", "prim::max", "prim::TupleSlice",
}
# JIT-only operators on Python values (sizes, lists, scalars); tensor overloads go through torch.ops
_PYTHON: dict[str, Callable[..., Any]] = {
    "aten::size": lambda t, d=None: list(t.shape) if d is None else t.shape[d], "aten::dim": lambda t: t.dim(),
    "aten::numel": lambda t: t.numel(), "aten::len": len, "aten::Int": int, "aten::Float": float,
    "aten::Bool": bool, "aten::ScalarImplicit": lambda t: t.item(), "aten::__getitem__": lambda c, i: c[i],
    "aten::__is__": operator.is_, "aten::__isnot__": operator.is_not, "aten::__not__": operator.not_,
    "aten::append": lambda seq, x: (seq.append(x), seq)[1], "aten::format": lambda f, *a: f.format(*a),
    "aten::warn": lambda *a: None, "aten::list": list, "aten::floordiv": operator.floordiv,
    "aten::__range_length": lambda lo, hi, step: max(0, -(-(hi - lo) // step)),
    "aten::__derive_index": lambda i, start, step: start + i * step,
}
_SCALAR: dict[str, Callable[..., Any]] = {
    "aten::add": operator.add, "aten::sub": operator.sub, "aten::mul": operator.mul, "aten::div": operator.truediv,
    "aten::eq": operator.eq, "aten::ne": operator.ne, "aten::lt": operator.lt, "aten::gt": operator.gt,
    "aten::le": operator.le, "aten::ge": operator.ge, "aten::neg": operator.neg, "aten::remainder": operator.mod,
}
_ALWAYS_PYTHON = {"aten::size", "aten::dim", "aten::numel", "aten::Int", "aten::Float", "aten::Bool",
                  "aten::ScalarImplicit", "aten::len", "aten::__getitem__", "aten::append", "aten::format",
                  "aten::warn", "aten::list", "aten::__is__", "aten::__isnot__", "aten::__not__",
                  "aten::__range_length", "aten::__derive_index"}


def _blocks_supported(block) -> bool:
    for node in block.nodes():
        kind = node.kind()
        if kind.startswith("prim::") and kind not in _STRUCTURAL:
            return False
        if kind == "prim::CallFunction":
            return False  # a scripted function: run natively with the method
        if not kind.startswith("prim::") and kind not in _PYTHON and node.schema() == "(no schema)":
            return False
        if not all(_blocks_supported(b) for b in node.blocks()):
            return False
    return True


def _operator(node) -> Callable[..., Any]:
    """The ``torch.ops`` overload a node calls, taking the node's inputs positionally."""
    schema = torch._C.parse_schema(node.schema())
    namespace, name = schema.name.split("::")
    op = getattr(getattr(getattr(torch.ops, namespace), name), schema.overload_name or "default")
    keyword = [arg.name if arg.kwarg_only else None for arg in schema.arguments]

    def call(*values):
        args = [v for v, k in zip(values, keyword) if k is None]
        kwargs = {k: v for v, k in zip(values, keyword) if k is not None}
        return op(*args, **kwargs)

    return call


class GraphRunner:
    def __init__(self, *, enter: Callable[[Any], None], exit: Callable[[Any, Any], None],
                 leaf: Callable[[Any], bool]) -> None:
        self.enter, self.exit, self.leaf = enter, exit, leaf
        self._supported: dict[tuple[str, str], bool] = {}
        self._ops: dict[Any, Callable[..., Any]] = {}

    def call(self, module, args: tuple, method: str = "forward"):
        """``module.method(*args)``, walking the graph where possible; reports the call itself."""
        self.enter(module)
        fn = getattr(module, method)
        graph = fn.graph
        key = (module._c._type().qualified_name(), method)
        if key not in self._supported:
            self._supported[key] = _blocks_supported(graph)
        if self.leaf(module) or not self._supported[key]:
            out = fn(*args)
        else:
            results = self._run_block(graph, [module, *args], ChainMap())
            out = results[0] if len(results) == 1 else tuple(results)
        self.exit(module, out)
        return out

    def _run_block(self, block, inputs: list, outer: ChainMap) -> list:
        """Run a block; a nested block (an if's branch, a loop's body) sees the values around it."""
        env = outer.new_child(dict(zip(block.inputs(), inputs)))
        for node in block.nodes():
            outputs = self._run_node(node, [env[v] for v in node.inputs()], env)
            env.update(zip(node.outputs(), outputs))
        return [env[v] for v in block.outputs()]

    def _run_node(self, node, ins: list, env: ChainMap) -> list:  # noqa: C901 - one branch per node kind
        kind = node.kind()
        if kind == "prim::Constant":
            return [node.output().toIValue()] if node.outputsSize() else []
        if kind == "prim::GetAttr":
            return [getattr(ins[0], node.s("name"))]
        if kind == "prim::CallMethod":
            return [self.call(ins[0], tuple(ins[1:]), node.s("name"))]
        if kind in ("prim::ListConstruct",):
            return [list(ins)]
        if kind == "prim::TupleConstruct":
            return [tuple(ins)]
        if kind == "prim::DictConstruct":
            return [dict(zip(ins[::2], ins[1::2]))]
        if kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            return list(ins[0])
        if kind == "prim::TupleIndex":
            return [ins[0][ins[1]]]
        if kind == "prim::TupleSlice":
            return [ins[0][node.i("beg"):node.i("end")]]
        if kind == "prim::NumToTensor":
            return [torch.scalar_tensor(ins[0])]
        if kind in ("prim::unchecked_cast",):
            return [ins[0]]
        if kind == "prim::Uninitialized":
            return [None]
        if kind == "prim::RaiseException":
            raise RuntimeError(str(ins[0]) if ins else "TorchScript raised an exception")
        if kind == "prim::dtype":
            return [ins[0].dtype]
        if kind == "prim::device":
            return [ins[0].device]
        if kind in ("prim::min", "prim::max"):
            pick = min if kind == "prim::min" else max
            return [pick(ins[0]) if len(ins) == 1 else pick(ins)]
        if kind == "prim::If":
            then_block, else_block = node.blocks()
            return self._run_block(then_block if ins[0] else else_block, [], env)
        if kind == "prim::Loop":
            return self._loop(node, ins, env)
        if kind in _ALWAYS_PYTHON:
            return [_PYTHON[kind](*ins)]
        if kind in _SCALAR and not any(isinstance(x, torch.Tensor) for x in ins):
            return [_SCALAR[kind](*ins)]
        if kind in _PYTHON and not any(isinstance(x, torch.Tensor) for x in ins):
            return [_PYTHON[kind](*ins)]
        op = self._ops.get(node)
        if op is None:
            op = self._ops[node] = _operator(node)
        out = op(*ins)
        return list(out) if node.outputsSize() > 1 else [out]

    def _loop(self, node, ins: list, env: ChainMap) -> list:
        body = next(iter(node.blocks()))
        trips, condition, carried = ins[0], ins[1], list(ins[2:])
        i = 0
        while condition and i < trips:
            results = self._run_block(body, [i, *carried], env)
            condition, carried = results[0], results[1:]
            i += 1
        return carried
