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
  its non-zero outputs are ``spikes``. A neuron is a framework's neuron class (``energy.modules``)
  or any module that behaves as one: a threshold whose result, through a reset, reaches the same
  threshold again at the next step (state carried across calls or across a loop inside one call),
  with every op of that loop inside the module. Behaviour is watched on the tensors themselves,
  so it is found alike in every file format, whatever the class is called
  (``OpCounts.behavioural_neurons`` names them).
* With ``bn_folded`` (the default) BatchNorm is counted but treated as folded into the
  neighbouring synapse, so a conv fed by BatchNorm of spikes is charged on the spikes.
* An arithmetic op with no handler is listed in ``OpCounts.unsupported``: the counts are then
  incomplete, and every estimate built on them says so.

By default (``per_sample``) an operand's class and a sample's counts never depend on the other
samples of the batch. One batched pass gives them: the counter knows which elements of every
tensor belong to which sample (``energy.samples``), decides each operand's class per sample and
counts an op whose samples differ in class sample by sample. A model whose pass mixes samples
(BatchNorm on batch statistics, a sum over the batch) or uses an op without a batch rule runs
each sample on its own instead, and ``OpCounts.per_sample_loop`` says why. Counts are per sample,
all time steps included.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import replace
from collections import Counter
from typing import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from snnas.energy.counts import EXTRA_KEYS, LayerCounts, OpCounts, OpRecord
from snnas.energy.handlers import FREE_OPS, HANDLERS
from snnas.energy.modules import ModuleInfo, describe, is_neuron, reset_state
from snnas.energy.operands import REAL, Operand, classify, classify_samples
from snnas.energy.samples import NotSeparable, Layout, infer, input_layout, sample, split, to_form
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

    def __init__(self, infos: dict[int, ModuleInfo], root: nn.Module, *, effective: bool, bn_folded: bool,
                 batch: int = 0) -> None:
        super().__init__()
        self.batch = batch  # > 1: one pass of a batch, counted sample by sample (energy.samples)
        self._layouts: dict[int, tuple[weakref.ref, Layout | None, str]] = {}
        self._pending: list | None = None  # what a handler records, kept until its samples agree
        self._mixed = False  # a handler met an operand whose samples differ in class
        self._replaying: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.not_separable = ""
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
        # which thresholds a tensor descends from, each with the module path every op since then ran in
        self._lineage: dict[int, tuple[weakref.ref, dict[tuple, tuple[str, ...]]]] = {}
        self.behavioural: set[str] = set()  # modules found to behave as neurons (threshold, reset, again)

    # -------------------------------------------------------------- which tensors are data
    def mark(self, value) -> None:
        for t in _tensors(value):
            key = id(t)
            self._data[key] = weakref.ref(t, lambda ref, key=key: self._data.get(key) is ref and self._data.pop(key))

    def is_data(self, t: object) -> bool:
        if self._replaying is not None and id(t) in self._replaying:
            return True
        ref = self._data.get(id(t)) if isinstance(t, torch.Tensor) else None
        return ref is not None and ref() is t

    # -------------------------------------------------------------- the Context of the handlers
    def _source(self, t: torch.Tensor) -> torch.Tensor:
        entry = self._folded.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else t

    def operand(self, t: torch.Tensor) -> Operand:
        if self._replaying is not None:
            entry = self._replaying.get(id(t))
            return classify(entry[1] if entry is not None else t)
        source = self._source(t)
        layout = self.layout(t) if self.batch else None
        if layout is None:
            self._mixed = self._mixed or bool(self.batch)  # a tensor made inside a handler: count per sample
            return classify(source)
        found = classify_samples(source, layout[0], self.batch, layout[1])
        self._mixed = self._mixed or not found.uniform
        return found

    def fold_bn(self, bn_input: torch.Tensor, bn_output: torch.Tensor) -> None:
        if not self.bn_folded or not isinstance(bn_output, torch.Tensor) or self._replaying is not None:
            return
        source = self._source(bn_input)
        layout = self.layout(bn_input) if self.batch else None
        if layout is None:
            if classify(source).is_event:  # BatchNorm of events: the next synapse sees the events
                self._folded[id(bn_output)] = (weakref.ref(bn_output), source)
            return
        found = classify_samples(source, layout[0], self.batch, layout[1])
        if found.uniform:
            if found.is_event:
                self._folded[id(bn_output)] = (weakref.ref(bn_output), source)
            return
        events = torch.tensor([k != REAL for k in found.sample_kinds], device=source.device).view(1, -1, 1)
        folded = torch.where(events, split(source, layout, self.batch), split(bn_output, layout, self.batch))
        self._folded[id(bn_output)] = (weakref.ref(bn_output), folded.reshape(bn_output.shape))

    @property
    def samples(self) -> int:
        """How many samples the op being counted holds (a weight is counted once per sample)."""
        return self.batch if self.batch and self._replaying is None else 1

    # -------------------------------------------------------------- which elements are which sample's
    def layout(self, t: torch.Tensor) -> Layout | None:
        entry = self._layouts.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def set_layout(self, t: torch.Tensor, layout: Layout | None, made_by: str) -> None:
        key = id(t)
        self._layouts[key] = (weakref.ref(t, lambda ref, key=key: self._layouts.get(key, (None,))[0] is ref
                                          and self._layouts.pop(key)), layout, made_by)

    def form_of(self, t: object):
        if not isinstance(t, torch.Tensor) or not t.numel() or not self.is_data(t):
            return None
        return to_form(t.shape, self.layout(t), self.batch)

    def _refuse(self, reason: str) -> None:
        self.not_separable = self.not_separable or reason
        raise NotSeparable(self.not_separable)

    def _check_inputs(self, name: str, inputs) -> None:
        """Every data tensor an op reads must have its samples apart (a layout)."""
        for t in _tensors(inputs):
            if t.numel() and self.is_data(t) and (self.layout(t) is None or self.form_of(t) is None):
                entry = self._layouts.get(id(t))
                made_by = entry[2] if entry is not None and entry[0]() is t else "an input without the batch axis"
                self._refuse(f"{made_by} mixes the samples or has no per-sample rule (read by {name})")

    def _infer(self, name: str, base: str, named: dict, out) -> None:
        outputs = list(_tensors(out))
        layouts = infer(name, base, named, outputs, self.form_of, self.layout, self.batch)
        for t, layout in zip(outputs, layouts):
            self.set_layout(t, layout, name)

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
        if self._pending is not None:
            self._pending.append((self.layer(), rec))
        else:
            self.layer().records.append(rec)

    def add(self, key: str, count: float) -> None:
        if self._pending is not None:
            self._pending.append((self.layer(), key, count))
        else:
            self.layer().extras[key] += count

    # -------------------------------------------------------------- one handler, sample by sample if need be
    def handle(self, handler, named: dict, out) -> None:
        if not self.batch:
            handler(self, named, out)
            return
        self._pending, self._mixed = [], False
        try:
            handler(self, named, out)
        except Exception:
            self._apply(self._pending)
            raise
        finally:
            pending, self._pending = self._pending, None
        self._apply(self._replay(handler, named, out) if self._mixed else pending)

    def _apply(self, pending: list | None) -> None:
        self._pending = None
        for entry in pending or ():
            if len(entry) == 2:
                entry[0].records.append(entry[1])
            else:
                entry[0].extras[entry[1]] += entry[2]

    def _replay(self, handler, named: dict, out) -> list:
        """The op counted on each sample's own slices, merged as the per-sample passes merge them."""
        merged = None
        for index in range(self.batch):
            self._replaying = {}
            try:
                one_named = {k: self._sample_of(v, index) for k, v in named.items()}
                one_out = self._sample_of(out, index)
                self._pending = []
                handler(self, one_named, one_out)
                pending = self._pending
            finally:
                self._pending, self._replaying = None, None
            merged = pending if merged is None else _merge_pending(merged, pending)
        return merged or []

    def _sample_of(self, value, index: int):
        if isinstance(value, (tuple, list)):
            return type(value)(self._sample_of(v, index) for v in value)
        if not isinstance(value, torch.Tensor) or not value.numel() or not self.is_data(value):
            return value
        layout = self.layout(value)
        if layout is None:
            self._refuse("an op whose samples differ in class reads a tensor without its samples apart")
        one = sample(value, layout, self.batch, index)
        source = self._source(value)
        self._replaying[id(one)] = (one, one if source is value else sample(source, layout, self.batch, index))
        return one

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
                updates, spikes = self._spikes(list(_tensors(output)))
                if updates:
                    layer = self.layer(info)
                    layer.extras["neuron_updates"] += updates
                    layer.extras["spikes"] += spikes

    def _spikes(self, tensors: list[torch.Tensor]) -> tuple[float, float]:
        """Neuron updates and spikes of a neuron's outputs: its first event-valued tensor output
        (snnTorch returns (spk, mem)), chosen per sample."""
        if not tensors:
            return 0.0, 0.0
        if not self.batch or len(tensors) == 1:
            spikes = _spike_output(tensors)
            return float(spikes.numel()), float((spikes != 0).sum())
        self._check_inputs("a neuron's outputs", tensors)
        rows = [split(t, self.layout(t), self.batch).transpose(0, 1).reshape(self.batch, -1) for t in tensors]
        chosen = [next((r[i] for r in rows if _is_event(r[i])), rows[0][i]) for i in range(self.batch)]
        return float(sum(c.numel() for c in chosen)), float(sum(int((c != 0).sum()) for c in chosen))

    # -------------------------------------------------------------- neurons by what they do
    def _lineage_of(self, t) -> dict[tuple, tuple[str, ...]]:
        entry = self._lineage.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0]() is t else {}

    def _follow_thresholds(self, base: str, args: tuple, kwargs: dict, out) -> None:
        """Carry each tensor's thresholds forward; a threshold reached again from its own output
        (spike, reset, integrate, spike) makes the innermost module holding that loop a neuron."""
        inherited = [found for found in map(self._lineage_of, _tensors((args, kwargs))) if found] \
            if self._lineage else []
        if not inherited and base not in THRESHOLDS:
            return  # the common case: nothing here descends from a threshold
        path = tuple(info.name for info in self.stack)
        lineage: dict[tuple, tuple[str, ...]] = {}
        for found in inherited:
            for site, seen in found.items():
                lineage[site] = _common(_common(seen, path), lineage.get(site, path))
        if base in THRESHOLDS and path:
            site = (path[-1], base, _threshold_key(args, self.is_data), tuple(getattr(out, "shape", ())))
            loop = lineage.get(site)
            if loop is not None and len(loop) > 1:  # the whole model is never one neuron
                self.behavioural.add(loop[-1])
            lineage[site] = path
        if lineage:
            for t in _tensors(out):
                key = id(t)
                self._lineage[key] = (weakref.ref(t, lambda ref, key=key: self._lineage.get(key, (None,))[0] is ref
                                                  and self._lineage.pop(key)), lineage)

    # -------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._paused:
            return out
        if not (any(self.is_data(t) for t in _tensors(args)) or any(self.is_data(t) for t in _tensors(kwargs))):
            return out  # works on weights, buffers and constants only: folded at deployment
        name, base = _base_name(func)
        if func.namespace == "aten" and base in SHAPE_ONLY:
            return out  # zeros shaped like the input hold none of its values: a constant, as from a buffer
        self.mark(out)
        named = None
        if self.batch:
            self._check_inputs(str(func.overloadpacket), (args, kwargs))
            named = _named(func, args, kwargs)
            self._infer(name, base, named, out)
        if not self.neuron_depth:
            self._follow_thresholds(base, args, kwargs, out)
        if self.neuron_depth and base not in SYNAPTIC_OPS:
            return out  # a neuron's own arithmetic is its neuron update; synapses inside it still count
        if self.neuron_depth and all(self.is_data(t) for t in _tensors((args, kwargs))):
            return out  # inside a neuron only products with a weight are synapses
        handler = (HANDLERS.get(name) or HANDLERS.get(base)) if func.namespace == "aten" else None
        if handler is not None:
            try:
                self.handle(handler, named if named is not None else _named(func, args, kwargs), out)
            except NotSeparable:
                raise
            except Exception as exc:  # noqa: BLE001 - an op the handler cannot read is reported, not guessed
                self.unsupported[f"{func.overloadpacket} ({type(exc).__name__})"] += 1
        elif func.namespace == "aten" and (name in FREE_OPS or base in FREE_OPS):
            self._follow_fold(func, args, kwargs, out)
        else:
            self.unsupported[str(func.overloadpacket)] += 1
        return out


# New tensors that take only the shape of their argument (an initial state of zeros shaped like the
# input): constants, so work on them is folded whether the model made them from the input or, as a
# torch.export program may, from a stored buffer.
SHAPE_ONLY = frozenset({"empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like",
                        "randint_like", "new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided"})

# A spike is a comparison with a threshold (or a Heaviside step) of a value carried forward.
THRESHOLDS = frozenset({"gt", "ge", "lt", "le", "heaviside"})


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    """The longest common prefix of two module paths."""
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return a if n == len(a) else a[:n]


def _threshold_key(args: tuple, is_data) -> tuple:
    """What a comparison compares with: a number, a stored tensor (by shape) or another data tensor."""
    other = args[1] if len(args) > 1 else None
    if isinstance(other, torch.Tensor):
        if is_data(other):
            return ("data",)
        return ("tensor", tuple(other.shape), other.item() if other.numel() == 1 else None)
    return ("number", other)


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
                named = _named(_SDPA_SCHEMA, args, kwargs)
                if counter.batch:
                    counter._check_inputs("scaled_dot_product_attention", (args, kwargs))
                    counter._infer("scaled_dot_product_attention", "scaled_dot_product_attention", named, out)
                counter.handle(HANDLERS[handler_name], named, out)
        return out


def _merge_pending(first: list, second: list) -> list:
    """What one op recorded on two samples: records merged in place, as ``LayerCounts.absorb`` merges
    the passes' records; additions kept (a sample may add under another key)."""
    records = [entry for entry in first if len(entry) == 2], [entry for entry in second if len(entry) == 2]
    if len(records[0]) != len(records[1]) or any(a[0] is not b[0] for a, b in zip(*records)):
        raise NotSeparable("an op recorded differently on two samples")
    merged = [(a[0], a[1].merged(b[1])) for a, b in zip(*records)]
    return merged + [entry for entry in first + second if len(entry) == 3]


def _is_event(t: torch.Tensor) -> bool:
    """Binary or ternary, as ``classify`` finds them: every magnitude exactly 0 or 1."""
    magnitude = (t if t.is_floating_point() else t.float()).abs()
    return bool((magnitude.eq(0) | magnitude.eq(1)).all())


def _spike_output(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A neuron's spikes: its first event-valued tensor output (snnTorch returns (spk, mem))."""
    return tensors[0] if len(tensors) == 1 else next((t for t in tensors if _is_event(t)), tensors[0])


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


def _pass(model: nn.Module, args: tuple, infos: dict[int, ModuleInfo], *, batch_dim: int | None = None,
          batch: int = 0, **options) -> _Counter:
    """One forward pass under the counter; with ``batch`` > 1, counted sample by sample (raises
    ``NotSeparable`` when the pass mixes samples)."""
    reset_state(model)
    counter = _Counter(infos, model, batch=batch, **options)
    counter.mark(args)
    if batch:
        for a in args:
            if isinstance(a, torch.Tensor):
                counter.set_layout(a, input_layout(a, batch_dim, batch), "an input without the batch axis")
    out = _run(model, args, counter)
    if counter.not_separable:  # raised inside the forward and caught there
        raise NotSeparable(counter.not_separable)
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


def _batched(model: nn.Module, args: tuple, infos, batch_dim: int, batch: int, options: dict) -> tuple[list, str]:
    """The batch in one pass with per-sample classes, or (no passes, why not)."""
    try:
        return [_pass(model, args, infos, batch_dim=batch_dim, batch=batch, **options)], ""
    except NotSeparable as exc:
        return [], str(exc)
    except RuntimeError as exc:  # the model does not take the batch at once: the samples one by one
        return [], f"the batch does not run at once ({type(exc).__name__})"


def _loop(model: nn.Module, args: tuple, infos, batch_dim: int | None, batch: int, per_sample: bool,
          options: dict, progress) -> tuple[list, bool]:
    """One pass per sample (or the batch at once when ``per_sample`` is False or one sample cannot
    run alone); returns the passes' counters and whether they were per sample."""
    counters = []
    passes = _samples(args, batch_dim, batch) if per_sample else [args]
    for index, pass_args in enumerate(passes):
        try:
            counters.append(_pass(model, pass_args, infos, **options))
        except RuntimeError:
            if not per_sample or index:
                raise
            # a model that cannot take one sample (a torch.export file fixes its batch size):
            # the whole batch runs at once, and classes are decided per batch
            per_sample = False
            counters.append(_pass(model, args, infos, **options))
        if progress is not None:
            progress(index + 1 if per_sample else 1, batch if per_sample else 1)
        if not per_sample:
            break
    return counters, per_sample


def _merge(counters: list) -> tuple[dict[str, LayerCounts], Counter]:
    layers: dict[str, LayerCounts] = {}
    unsupported: Counter = Counter()
    for counter in counters:
        for layer in sorted(counter.layers.values(), key=lambda lc: lc.order):
            if layer.name in layers:
                layers[layer.name].absorb(layer)
            else:
                layers[layer.name] = layer
        for op, calls in counter.unsupported.items():
            unsupported[op] = max(unsupported[op], calls)
    return layers, unsupported


def count_ops(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor], *, batch_dim: int | None = 0,
              effective: bool = False, bn_folded: bool = True, per_sample: bool = True,
              per_sample_loop: bool = False, module_types: Mapping[str, str] | None = None,
              progress: Callable[[int, int], None] | None = None) -> OpCounts:
    """Count forward passes of ``model`` on ``inputs``; counts are per sample.

    ``batch_dim`` is the batch axis of the inputs (1 for ``[T, B, C, H, W]`` event frames;
    None when the inputs are one sample without a batch axis).
    ``per_sample`` decides classes per sample: in one batched pass that knows which elements are
    which sample's, or, where that pass would mix samples (``OpCounts.per_sample_loop`` then says
    why) or with ``per_sample_loop=True``, with one pass per sample. A model that cannot take one
    sample (a ``torch.export`` file with a fixed batch size) runs the batch at once, classes per
    batch: ``OpCounts.per_sample`` then says False. ``per_sample=False`` decides classes per batch
    tensor (the counts agree whenever every sample's inputs are of one class, e.g. all real
    images). ``effective=True`` also counts NeuroBench's effective synaptic operations (non-zero
    input x non-zero weight). ``module_types`` names the classes of an unflattened
    ``torch.export`` program's modules (``energy.loading`` provides them). The model runs in eval
    mode without gradients, its spiking state reset before every pass and after the last one.
    ``progress(done, total)`` is called after every pass.
    """
    args = _in_model_dtype(model, (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs))
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    batch = 1
    if batch_dim is not None and tensors and tensors[0].dim() > batch_dim:
        batch = int(tensors[0].shape[batch_dim])
    if batch < 1:
        raise ValueError("the input holds no sample (batch of 0)")
    infos = describe(model, module_types)
    options = {"effective": effective, "bn_folded": bn_folded}
    was_training = model.training
    model.eval()
    asked = per_sample and batch > 1
    behavioural: set[str] = set()
    try:
        while True:
            counters, why, per_sample = [], "", asked
            if per_sample and not per_sample_loop:
                counters, why = _batched(model, args, infos, batch_dim, batch, options)
                if counters and progress is not None:
                    progress(batch, batch)
            if not counters:
                counters, per_sample = _loop(model, args, infos, batch_dim, batch, per_sample, options, progress)
            found = set().union(*(c.behavioural for c in counters)) - behavioural
            if not found:
                break
            # modules that behave as neurons: counted again with them as neurons (once per new find)
            behavioural |= found
            infos = {key: replace(info, neuron=True) if info.name in behavioural else info
                     for key, info in infos.items()}
    finally:
        model.train(was_training)
        reset_state(model)
    result = _result(model, counters, batch, bn_folded, per_sample,
                     (why or "per_sample_loop=True") if per_sample and len(counters) > 1 else "")
    result.behavioural_neurons = tuple(sorted(behavioural))
    return result


def _result(model: nn.Module, counters: list, batch: int, bn_folded: bool, per_sample: bool, loop: str) -> OpCounts:
    layers, unsupported = _merge(counters)
    per = 1.0 / batch
    for index, layer in enumerate(layers.values()):
        layer.order = index
        layer.records = [r.scaled(per) for r in layer.records]
        layer.extras = Counter({k: v * per for k, v in layer.extras.items()})
    params = sum(p.numel() for p in model.parameters())
    return OpCounts(list(layers.values()), batch, params, dict(unsupported), bn_folded, per_sample or batch == 1,
                    per_sample_loop=loop)
