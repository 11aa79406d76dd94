"""Spike-aware operation counting for any torch model, at the aten dispatch level.

``count_ops(model, inputs)`` runs forward passes under a ``TorchDispatchMode`` that sees every
aten op with its real tensors (functional matmuls inside attention included) and attributes it
to the innermost module running. Modules are followed with forward hooks for eager modules and
for unflattened ``torch.export`` programs, and by walking the graph for TorchScript modules
(``energy.torchscript``), so one model gives the same per-layer counts from every file format.

What is counted (the handlers are in ``energy.handlers``):

* Only work that depends on the input. The counter tracks which tensors derive from the
  model's inputs; an op on weights and buffers alone (a weight transform, a scale computed
  from stored firing rates, shape arithmetic) is folded at deployment and not counted.
* Everything inside a spiking neuron module is one ``neuron_update`` per neuron and time step;
  its non-zero outputs are ``spikes``.
* With ``bn_folded`` (the default) BatchNorm is counted but treated as folded into the
  neighbouring synapse, so a conv fed by BatchNorm of spikes is charged on the spikes.
* An arithmetic op with no handler is listed in ``OpCounts.unsupported``: the counts are then
  incomplete, and every estimate built on them says so.

By default each sample runs on its own (``per_sample``), so an operand's class and a sample's
counts never depend on the other samples of the batch. Counts are per sample, all time steps
included.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from typing import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from snnas.energy.counts import EXTRA_KEYS, LayerCounts, OpCounts, OpRecord
from snnas.energy.handlers import FREE_OPS, HANDLERS
from snnas.energy.modules import ModuleInfo, describe, is_neuron, reset_state
from snnas.energy.operands import BINARY, TERNARY, Operand, classify
from snnas.energy.torchscript import GraphRunner

__all__ = ["count_ops", "is_neuron", "OpCounts", "LayerCounts", "OpRecord", "EXTRA_KEYS"]


def _tensors(value):
    """The tensors in an op's arguments or outputs (tuples, lists and dicts of them, nested)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _base_name(func) -> tuple[str, str]:
    name = func.overloadpacket.__name__
    return name, (name[:-1] if name.endswith("_") and not name.endswith("__") else name)


def _named(func, args: tuple, kwargs: dict) -> dict:
    """The op's arguments by schema name, defaults filled in."""
    named = {}
    for i, arg in enumerate(func._schema.arguments):
        if i < len(args):
            named[arg.name] = args[i]
        elif arg.name in kwargs:
            named[arg.name] = kwargs[arg.name]
        elif arg.has_default_value():
            named[arg.name] = arg.default_value
    return named


class _Counter(TorchDispatchMode):
    """One forward pass: the module stack, which tensors are data, and the counts per layer."""

    def __init__(self, infos: dict[int, ModuleInfo], root: nn.Module, *, effective: bool, bn_folded: bool) -> None:
        super().__init__()
        self.infos = infos
        self.root = infos[id(root)]
        self.effective = effective
        self.bn_folded = bn_folded
        self.stack: list[ModuleInfo] = []
        self.neuron_depth = 0
        self.layers: dict[str, LayerCounts] = {}
        self.unsupported: Counter = Counter()
        self._paused = 0
        self._data: dict[int, weakref.ref] = {}
        self._folded: dict[int, tuple[weakref.ref, torch.Tensor]] = {}

    # -------------------------------------------------------------- which tensors are data
    def mark(self, value) -> None:
        for t in _tensors(value):
            key = id(t)
            self._data[key] = weakref.ref(t, lambda ref, key=key: self._data.get(key) is ref and self._data.pop(key))

    def is_data(self, t: object) -> bool:
        ref = self._data.get(id(t)) if isinstance(t, torch.Tensor) else None
        return ref is not None and ref() is t

    # -------------------------------------------------------------- the Context of the handlers
    def _source(self, t: torch.Tensor) -> torch.Tensor:
        entry = self._folded.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else t

    def operand(self, t: torch.Tensor) -> Operand:
        return classify(self._source(t))

    def fold_bn(self, bn_input: torch.Tensor, bn_output: torch.Tensor) -> None:
        if not self.bn_folded or not isinstance(bn_output, torch.Tensor):
            return
        source = self._source(bn_input)
        if classify(source).is_event:  # BatchNorm of events: the next synapse sees the events
            self._folded[id(bn_output)] = (weakref.ref(bn_output), source)

    def _follow_fold(self, func, args: tuple, kwargs: dict, out) -> None:
        """A view or copy of a folded BatchNorm output maps to the same view of its events."""
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        source = self._source(args[0])
        if source is args[0] or out.numel() != args[0].numel():
            return
        try:
            mapped = func(source, *args[1:], **kwargs)
        except Exception:  # noqa: BLE001 - an op that cannot be replayed on the events just ends the fold
            return
        if isinstance(mapped, torch.Tensor) and mapped.shape == out.shape:
            self._folded[id(out)] = (weakref.ref(out), mapped)

    def layer(self, info: ModuleInfo | None = None) -> LayerCounts:
        info = info or (self.stack[-1] if self.stack else self.root)
        found = self.layers.get(info.name)
        if found is None:
            found = self.layers[info.name] = LayerCounts(info.name, info.type, len(self.layers), params=info.params)
        return found

    def record(self, rec: OpRecord) -> None:
        self.layer().records.append(rec)

    def add(self, key: str, count: float) -> None:
        self.layer().extras[key] += count

    @contextlib.contextmanager
    def paused(self):
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    # -------------------------------------------------------------- modules
    def enter(self, module: nn.Module) -> None:
        info = self.infos.get(id(module)) or ModuleInfo(type(module).__name__, type(module).__name__, False, 0)
        self.stack.append(info)
        if info.neuron:
            self.neuron_depth += 1

    def exit(self, module: nn.Module, output) -> None:
        info = self.stack.pop()
        if not info.neuron:
            return
        self.neuron_depth -= 1
        if self.neuron_depth == 0:
            with self.paused():
                spikes = _spike_output(output)
                if spikes is not None:
                    layer = self.layer(info)
                    layer.extras["neuron_updates"] += spikes.numel()
                    layer.extras["spikes"] += float((spikes != 0).sum())

    # -------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._paused:
            return out
        if not (any(self.is_data(t) for t in _tensors(args)) or any(self.is_data(t) for t in _tensors(kwargs))):
            return out  # works on weights, buffers and constants only: folded at deployment
        self.mark(out)
        name, base = _base_name(func)
        if self.neuron_depth and base not in SYNAPTIC_OPS:
            return out  # a neuron's own arithmetic is its neuron update; synapses inside it still count
        if self.neuron_depth and all(self.is_data(t) for t in _tensors((args, kwargs))):
            return out  # inside a neuron only products with a weight are synapses
        handler = (HANDLERS.get(name) or HANDLERS.get(base)) if func.namespace == "aten" else None
        if handler is not None:
            try:
                handler(self, _named(func, args, kwargs), out)
            except Exception as exc:  # noqa: BLE001 - an op the handler cannot read is reported, not guessed
                self.unsupported[f"{func.overloadpacket} ({type(exc).__name__})"] += 1
        elif func.namespace == "aten" and (name in FREE_OPS or base in FREE_OPS):
            self._follow_fold(func, args, kwargs, out)
        else:
            self.unsupported[str(func.overloadpacket)] += 1
        return out


# Ops that the dispatcher decomposes differently by backend and shape (flash, efficient or math
# attention): counted whole, by what they compute, before they decompose.
_WHOLE = {
    torch.nn.functional.scaled_dot_product_attention: "_scaled_dot_product_attention_math",
    torch.ops.aten.scaled_dot_product_attention: "_scaled_dot_product_attention_math",
    torch.ops.aten.scaled_dot_product_attention.default: "_scaled_dot_product_attention_math",
}
_SDPA_SCHEMA = torch.ops.aten.scaled_dot_product_attention.default


class _WholeOps(TorchFunctionMode):
    """Sees ops at the Python level, before decomposition; counts the ``_WHOLE`` ones as one op."""

    def __init__(self, counter: _Counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        counter = self.counter
        handler_name = _WHOLE.get(func) if not counter._paused and not counter.neuron_depth else None
        if handler_name is None:
            return func(*args, **kwargs)
        data = any(counter.is_data(t) for t in _tensors((args, kwargs)))
        with counter.paused():
            out = func(*args, **kwargs)
            if data:
                counter.mark(out)
                HANDLERS[handler_name](counter, _named(_SDPA_SCHEMA, args, kwargs), out)
        return out


def _spike_output(output) -> torch.Tensor | None:
    """A neuron's spikes: its first event-valued tensor output (snnTorch returns (spk, mem))."""
    tensors = list(_tensors(output))
    for t in tensors:
        if classify(t).kind in (BINARY, TERNARY):
            return t
    return tensors[0] if tensors else None


def _run(model: nn.Module, args: tuple, counter: _Counter) -> None:
    if isinstance(model, torch.jit.ScriptModule):
        runner = GraphRunner(enter=counter.enter, exit=counter.exit,
                             leaf=lambda m: counter.infos.get(id(m), ModuleInfo("", "", False, 0)).neuron)
        with torch.no_grad(), counter, _WholeOps(counter):
            return runner.call(model, args)
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(lambda m, a: counter.enter(m)))
        handles.append(module.register_forward_hook(lambda m, a, o: counter.exit(m, o)))
    try:
        with torch.no_grad(), counter, _WholeOps(counter):
            return model(*args)
    finally:
        for handle in handles:
            handle.remove()


# Weighted sums: counted even inside a neuron module, whose synapses they are (snnTorch's RLeaky and
# RSynaptic hold a recurrent Linear or conv, LinearLeaky and SLSTM their own weights); a spiking
# neuron's own update is element-wise and stays one ``neuron_update``.
SYNAPTIC_OPS = frozenset({"convolution", "_convolution", "mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv",
                          "linear", "mkldnn_rnn_layer", "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell"})

# The output does not derive from the input as torch saw it: the forward left torch for a moment
# (a NumPy encoder, ``.tolist()``, DLPack), and no work after that point was counted.
LEFT_TORCH = "the output does not derive from the input (the forward left torch: NumPy, .tolist(), DLPack)"


def _pass(model: nn.Module, args: tuple, infos: dict[int, ModuleInfo], **options) -> _Counter:
    reset_state(model)
    counter = _Counter(infos, model, **options)
    counter.mark(args)
    out = _run(model, args, counter)
    outputs = list(_tensors(out))
    if outputs and any(counter.is_data(t) for t in _tensors(args)) and not any(counter.is_data(t) for t in outputs):
        counter.unsupported[LEFT_TORCH] += 1
    return counter


def _samples(args: tuple, batch_dim: int, batch: int) -> list[tuple]:
    def pick(a, i):
        if isinstance(a, torch.Tensor) and a.dim() > batch_dim and a.shape[batch_dim] == batch:
            return a.narrow(batch_dim, i, 1)
        return a

    return [tuple(pick(a, i) for a in args) for i in range(batch)]


def _in_model_dtype(model: nn.Module, args: tuple) -> tuple:
    """Floating inputs in the dtype of a model whose floating parameters all share one (a float16
    model fed float32 images, as ``--input`` files and datasets hold them)."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        return args
    dtype = dtypes.pop()
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype else a
                 for a in args)


def count_ops(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor], *, batch_dim: int | None = 0,
              effective: bool = False, bn_folded: bool = True, per_sample: bool = True,
              module_types: Mapping[str, str] | None = None,
              progress: Callable[[int, int], None] | None = None) -> OpCounts:
    """Count forward passes of ``model`` on ``inputs``; counts are per sample.

    ``batch_dim`` is the batch axis of the inputs (1 for ``[T, B, C, H, W]`` event frames;
    None when the inputs are one sample without a batch axis).
    ``per_sample`` runs each sample on its own so that classes are decided per sample (a
    model that cannot take one sample, such as a ``torch.export`` file with a fixed batch size,
    runs the batch at once: ``OpCounts.per_sample`` then says False); ``per_sample=False`` runs
    the batch in one pass (faster; the counts agree whenever every sample's inputs are of one
    class, e.g. all real images). ``effective=True`` also counts
    NeuroBench's effective synaptic operations (non-zero input x non-zero weight).
    ``module_types`` names the classes of an unflattened ``torch.export`` program's modules
    (``energy.loading`` provides them). The model runs in eval mode without gradients, its
    spiking state reset before every pass and after the last one. ``progress(done, total)`` is
    called after every pass.
    """
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    args = _in_model_dtype(model, args)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    batch = 1
    if batch_dim is not None and tensors and tensors[0].dim() > batch_dim:
        batch = int(tensors[0].shape[batch_dim])
    if batch < 1:
        raise ValueError("the input holds no sample (batch of 0)")
    infos = describe(model, module_types)
    layers: dict[str, LayerCounts] = {}
    unsupported: Counter = Counter()
    was_training = model.training
    model.eval()
    per_sample = per_sample and batch > 1
    try:
        passes = _samples(args, batch_dim, batch) if per_sample else [args]
        for index, pass_args in enumerate(passes):
            try:
                counter = _pass(model, pass_args, infos, effective=effective, bn_folded=bn_folded)
            except RuntimeError:
                if not per_sample or index:
                    raise
                # a model that cannot take one sample (a torch.export file fixes its batch size):
                # the whole batch runs at once, and classes are decided per batch
                per_sample, passes = False, [args]
                counter = _pass(model, args, infos, effective=effective, bn_folded=bn_folded)
            for layer in sorted(counter.layers.values(), key=lambda lc: lc.order):
                if layer.name in layers:
                    layers[layer.name].absorb(layer)
                else:
                    layers[layer.name] = layer
            for op, calls in counter.unsupported.items():
                unsupported[op] = max(unsupported[op], calls)
            if progress is not None:
                progress(index + 1 if per_sample else 1, batch if per_sample else 1)
            if not per_sample:
                break
    finally:
        model.train(was_training)
        reset_state(model)
    per = 1.0 / batch
    for index, layer in enumerate(layers.values()):
        layer.order = index
        layer.records = [r.scaled(per) for r in layer.records]
        layer.extras = Counter({k: v * per for k, v in layer.extras.items()})
    params = sum(p.numel() for p in model.parameters())
    return OpCounts(list(layers.values()), batch, params, dict(unsupported), bn_folded, per_sample or batch == 1)
