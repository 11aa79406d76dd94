"""Spike-aware operation counting for any torch model, at the aten dispatch level.

``count_ops(model, inputs)`` runs one forward pass under a ``TorchDispatchMode`` that sees every
aten op with its real tensors (functional matmuls inside attention included) and attributes it
to the innermost module running (forward pre/post hooks keep a stack of module names). A table
of small handlers (op -> counts) does the counting, as fvcore's flop counter does; an op that
has no handler and is not known to be free is listed in ``OpCounts.unsupported``, never
silently counted as zero.

Synaptic ops (conv, linear, matmul) keep one ``OpRecord`` each, with the dense count
(fvcore's convention: one per multiply-add, bias excluded), the operand classes and rates, and
the exact event-driven count:

* real x real                   -> ``mac``             = dense
* event x weight (conv, linear) -> ``ac`` / ``ac_signed`` / ``ac_multi`` by the input's class,
                                   exactly sum(levels) x fan-out: a conv is re-run with a ones
                                   kernel (one output channel per group), so padded borders
                                   and strides are exact
* event x real matmul           -> sum(levels of the event operand) x the other dimension
* event x event matmul          -> ``ac_coincidence``: the exact number of coinciding non-zero
                                   pairs, sum_k colsum(A)[k] * rowsum(B)[k]

Everything inside a spiking neuron module is one ``neuron_update`` per neuron and time step.
Counts are divided by the batch size: an ``OpCounts`` is per sample (all T steps included).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from energy.operands import BINARY, MULTILEVEL, REAL, TERNARY, Operand, classify, worst

aten = torch.ops.aten

CHARGE_BY_KIND = {BINARY: "ac", TERNARY: "ac_signed", MULTILEVEL: "ac_multi", REAL: "mac"}
AC_KEYS = ("ac", "ac_signed", "ac_multi", "ac_coincidence")
EXTRA_KEYS = ("neuron_updates", "spikes", "residual_adds", "masks", "reductions", "scalings", "bn", "pool", "activations")


@dataclass
class OpRecord:
    """One synaptic op (conv, linear or matmul) as counted, for one forward pass."""

    op: str  # "conv" | "linear" | "matmul"
    dense: float  # dense multiply-adds (ANN equivalent), bias excluded
    bias: float  # bias additions
    kinds: tuple[str, str]  # operand classes: (input, weight) or (left, right)
    rates: tuple[float, float]  # fraction of non-zeros of each operand
    charge: str  # "mac" | "ac" | "ac_signed" | "ac_multi" | "ac_coincidence"
    exact: float  # operations actually performed, event-driven
    in_numel: float = 0.0  # elements of the (event) input operand
    out_numel: float = 0.0  # elements of the output
    effective: float | None = None  # NeuroBench: non-zero input x non-zero weight pairs

    @property
    def event_rate(self) -> float:
        """Rate of the spike operand the papers multiply dense counts by (min of two spike operands)."""
        event = [r for k, r in zip(self.kinds, self.rates) if k != REAL]
        return min(event) if event else 1.0

    def scaled(self, factor: float) -> "OpRecord":
        eff = None if self.effective is None else self.effective * factor
        return OpRecord(self.op, self.dense * factor, self.bias * factor, self.kinds, self.rates, self.charge,
                        self.exact * factor, self.in_numel * factor, self.out_numel * factor, eff)


@dataclass
class LayerCounts:
    """Counts of one module (per sample once ``OpCounts`` is built)."""

    name: str
    type: str
    order: int
    records: list[OpRecord] = field(default_factory=list)
    extras: Counter = field(default_factory=Counter)  # EXTRA_KEYS -> count
    in_nnz: float = 0.0
    in_numel: float = 0.0
    params: int = 0  # parameters owned by this module itself

    def total(self, key: str) -> float:
        if key == "macs":
            return sum(r.exact for r in self.records if r.charge == "mac")
        if key == "acs":
            return sum(r.exact for r in self.records if r.charge in AC_KEYS)
        if key in AC_KEYS:
            return sum(r.exact for r in self.records if r.charge == key)
        if key == "dense":
            return sum(r.dense for r in self.records)
        if key == "bias":
            return sum(r.bias for r in self.records)
        if key == "rate_dense":
            return sum(r.dense * r.event_rate for r in self.records if r.charge != "mac")
        return float(self.extras.get(key, 0.0))

    @property
    def in_rate(self) -> float | None:
        """Fraction of non-zero elements over the inputs of this layer's synaptic ops."""
        return self.in_nnz / self.in_numel if self.in_numel else None

    @property
    def operand(self) -> str | None:
        kinds = [r.kinds[0] if r.op != "matmul" else worst(*r.kinds) for r in self.records]
        return worst(*kinds) if kinds else None


@dataclass
class OpCounts:
    """Per-sample counts of one model on one input."""

    layers: list[LayerCounts]
    batch_size: int
    params: int
    unsupported: dict[str, int]  # aten op -> calls that could not be counted

    def total(self, key: str) -> float:
        return sum(layer.total(key) for layer in self.layers)

    def synaptic_layers(self) -> list[LayerCounts]:
        return [layer for layer in self.layers if layer.records]


# ----------------------------------------------------------------------------- neurons
def is_neuron(module: nn.Module) -> bool:
    """Spiking neurons: spikingjelly nodes, snnTorch neurons, and any spikingjelly stateful module
    (one with registered memories) none of whose children is stateful."""
    names = {cls.__name__ for cls in type(module).__mro__}
    if "BaseNode" in names or "SpikingNeuron" in names:
        return True
    return bool(getattr(module, "_memories", None)) and \
        not any(getattr(child, "_memories", None) for child in module.modules() if child is not module)


# ----------------------------------------------------------------------------- free ops
FREE_OPS = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "clone", "copy_", "copy",
    "detach", "select", "slice", "unbind", "stack", "cat", "split", "split_with_sizes", "squeeze", "unsqueeze",
    "repeat", "im2col", "col2im", "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "fill_", "fill", "_to_copy", "to", "alias", "lift_fresh", "contiguous", "rand", "randn",
    "_local_scalar_dense", "flatten", "unflatten", "as_strided", "new_empty", "new_zeros", "new_full",
    "index_select", "gather", "narrow", "chunk", "_reshape_alias", "expand_as", "unfold", "roll", "flip",
    "constant_pad_nd", "pad", "max_pool2d_with_indices_backward", "set_", "resize_", "empty_strided",
    "lift_fresh_copy", "zero_", "is_nonzero", "eq", "ne", "ge", "gt", "le", "lt", "logical_not", "where",
    "masked_fill", "arange", "_unsafe_index",
}


def _op_name(func) -> str:
    return func._schema.name.split("::")[-1]


def _numel(x) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 1


def _is_scalar(x) -> bool:
    return not isinstance(x, torch.Tensor) or x.numel() == 1


# ----------------------------------------------------------------------------- counter
class _Counter(TorchDispatchMode):
    def __init__(self, model: nn.Module, *, effective: bool) -> None:
        super().__init__()
        self.model = model
        self.effective = effective
        self.stack: list[nn.Module] = []
        self.names = {m: n or "(model)" for n, m in model.named_modules()}
        self.layers: dict[str, LayerCounts] = {}
        self.unsupported: Counter = Counter()
        self.neuron_depth = 0
        self.scripted = isinstance(model, torch.jit.ScriptModule)
        self.handlers: dict[str, Callable] = {
            "convolution": self._conv, "mm": self._mm, "addmm": self._addmm, "bmm": self._bmm,
            "baddbmm": self._baddbmm,
            "native_batch_norm": self._bn, "_native_batch_norm_legit": self._bn,
            "_native_batch_norm_legit_no_training": self._bn, "batch_norm": self._bn,
            "add": self._add, "sub": self._add, "mul": self._mul, "div": self._scale, "rsub": self._add,
            "sum": self._reduce, "mean": self._reduce, "amax": self._reduce, "max_pool2d_with_indices": self._pool,
            "avg_pool2d": self._pool, "adaptive_avg_pool2d": self._adaptive_pool, "relu": self._act,
            "sigmoid": self._act, "tanh": self._act, "gelu": self._act, "abs": self._act, "sign": self._act,
            "clamp_min": self._act, "clamp": self._act, "rsqrt": self._act, "sqrt": self._act, "neg": self._act,
            "_softmax": self._act, "exp": self._act, "heaviside": self._act, "maximum": self._act,
        }

    # -------------------------------------------------------------- module stack
    def layer(self, op: str | None = None) -> LayerCounts:
        module = self.stack[-1] if self.stack else self.model
        name = self.names.get(module, type(module).__name__)
        if self.scripted and op is not None:  # no module hooks in TorchScript: one row per synaptic op
            name = f"{op}.{sum(1 for lc in self.layers.values() if lc.records)}"
        if name not in self.layers:
            own = sum(p.numel() for p in module.parameters(recurse=False))
            self.layers[name] = LayerCounts(name, type(module).__name__, len(self.layers), params=own)
        return self.layers[name]

    def pre_hook(self, module, args):
        self.stack.append(module)
        if is_neuron(module):
            if self.neuron_depth == 0:
                x = args[0] if args else None
                self.layer().extras["neuron_updates"] += _numel(x)
            self.neuron_depth += 1

    def post_hook(self, module, args, output):
        if is_neuron(module):
            self.neuron_depth -= 1
            if self.neuron_depth == 0 and isinstance(output, torch.Tensor):
                self.layer().extras["spikes"] += float((output != 0).sum())
        self.stack.pop()

    # -------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.neuron_depth == 0:
            name = _op_name(func)
            # in-place arithmetic (x += y) is counted like its out-of-place twin
            handler = self.handlers.get(name) or self.handlers.get(name.rstrip("_"))
            if handler is not None:
                handler(args, out)
            elif name not in FREE_OPS and name.rstrip("_") not in FREE_OPS:
                self.unsupported[str(func.overloadpacket)] += 1
        return out

    # -------------------------------------------------------------- synaptic ops
    def _record(self, rec: OpRecord, inp: Operand, out) -> None:
        rec.in_numel, rec.out_numel = float(inp.numel), float(_numel(out))
        layer = self.layer(rec.op)
        layer.records.append(rec)
        layer.in_nnz += inp.nnz
        layer.in_numel += inp.numel

    def _conv(self, args, out):
        x, w, bias = args[0], args[1], args[2]
        stride, padding, dilation, transposed, _, groups = args[3:9]
        if transposed:
            self.unsupported["aten.convolution (transposed)"] += 1
            return
        fan_in = w.shape[1] * math.prod(w.shape[2:])  # Cin/groups * kernel
        dense = float(out.numel() * fan_in)
        inp = classify(x)
        if inp.kind == REAL:
            exact = dense
        else:  # sum of input levels under every output position, once per output channel
            ones = torch.ones((groups, w.shape[1], *w.shape[2:]), dtype=inp.levels.dtype, device=x.device)
            hits = F.conv2d(inp.levels, ones, None, stride, padding, dilation, groups) if w.dim() == 4 else \
                F.conv1d(inp.levels, ones, None, stride, padding, dilation, groups)
            exact = float(hits.sum()) * (w.shape[0] // groups)
        eff = None
        if self.effective:
            conv = F.conv2d if w.dim() == 4 else F.conv1d
            eff = float(conv((x != 0).to(w.dtype), (w != 0).to(w.dtype), None, stride, padding, dilation, groups).sum())
        bias_adds = float(out.numel()) if bias is not None else 0.0
        self._record(OpRecord("conv", dense, bias_adds, (inp.kind, REAL), (inp.rate, 1.0),
                              CHARGE_BY_KIND[inp.kind], exact, effective=eff), inp, out)

    def _matmul(self, a, b, bias_adds: float, out):
        module = self.stack[-1] if self.stack else None
        n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
        batch = a.numel() // (n * k)
        dense = float(batch * n * k * m)
        if isinstance(module, nn.Linear):  # the layer's weight is one operand
            weight_first = b.dim() == 2 and a.dim() == 2 and a.shape == module.weight.shape[::-1] \
                and a.data_ptr() == module.weight.data_ptr()
            act, w = (b, a) if weight_first else (a, b)
            inp = classify(act)
            exact = dense if inp.kind == REAL else float(inp.levels.sum()) * (m if act is a else n)
            eff = None
            if self.effective:
                eff = float(((a != 0).to(a.dtype) @ (b != 0).to(b.dtype)).sum())
            self._record(OpRecord("linear", dense, bias_adds, (inp.kind, REAL), (inp.rate, 1.0),
                                  CHARGE_BY_KIND[inp.kind], exact, effective=eff), inp, out)
            return
        left, right = classify(a), classify(b)
        if left.kind == REAL and right.kind == REAL:
            charge, exact = "mac", dense
        elif right.kind == REAL:
            charge, exact = CHARGE_BY_KIND[left.kind], float(left.levels.sum()) * m
        elif left.kind == REAL:
            charge, exact = CHARGE_BY_KIND[right.kind], float(right.levels.sum()) * n
        else:  # both spikes: coinciding non-zero pairs along the contracted dimension
            charge = "ac_coincidence"
            exact = float((left.levels.sum(-2) * right.levels.sum(-1)).sum())
        event = left if left.kind != REAL or right.kind == REAL else right
        self._record(OpRecord("matmul", dense, bias_adds, (left.kind, right.kind), (left.rate, right.rate),
                              charge, exact), event, out)

    def _mm(self, args, out):
        self._matmul(args[0], args[1], 0.0, out)

    def _bmm(self, args, out):
        self._matmul(args[0], args[1], 0.0, out)

    def _addmm(self, args, out):
        self._matmul(args[1], args[2], float(out.numel()), out)

    def _baddbmm(self, args, out):
        self._matmul(args[1], args[2], float(out.numel()), out)

    # -------------------------------------------------------------- other ops
    def _bn(self, args, out):
        self.layer().extras["bn"] += _numel(args[0])

    def _add(self, args, out):
        a, b = args[0], args[1] if len(args) > 1 else None
        key = "residual_adds" if not _is_scalar(a) and not _is_scalar(b) and a.shape == b.shape else "scalings"
        self.layer().extras[key] += _numel(out[0] if isinstance(out, tuple) else out)

    def _mul(self, args, out):
        a, b = args[0], args[1]
        if not _is_scalar(a) and not _is_scalar(b) and a.shape == b.shape and \
                (classify(a).kind == BINARY or classify(b).kind == BINARY):
            self.layer().extras["masks"] += _numel(out)
        else:
            self.layer().extras["scalings"] += _numel(out)

    def _scale(self, args, out):
        self.layer().extras["scalings"] += _numel(out)

    def _reduce(self, args, out):
        self.layer().extras["reductions"] += _numel(args[0])

    def _pool(self, args, out):
        result = out[0] if isinstance(out, tuple) else out
        kernel = args[1] if len(args) > 1 else (1, 1)
        self.layer().extras["pool"] += _numel(result) * math.prod(kernel)

    def _adaptive_pool(self, args, out):
        self.layer().extras["pool"] += _numel(args[0])

    def _act(self, args, out):
        self.layer().extras["activations"] += _numel(args[0])


def count_ops(model: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor], *, batch_size: int | None = None,
              effective: bool = False) -> OpCounts:
    """Count one forward pass of ``model`` on ``inputs``; counts are per sample.

    ``batch_size`` defaults to ``inputs.shape[0]``; pass it for inputs whose batch axis is not
    first (e.g. ``[T, B, C, H, W]`` event frames). ``effective=True`` also counts NeuroBench's
    effective synaptic operations (non-zero input x non-zero weight), at the cost of re-running
    each conv and linear. TorchScript modules accept no Python hooks: their ops are counted
    exactly but reported one row per synaptic op, and neuron internals appear as elementwise
    ops (prefer a torch.export file or an snnas model). The model runs in eval mode without gradients; its neurons are reset
    before the pass (spikingjelly's ``reset_net``) so counts do not depend on earlier calls.
    """
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    if batch_size is None:
        batch_size = int(args[0].shape[0]) if args and args[0].dim() > 0 else 1
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _reset_neurons(model)
    counter = _Counter(model, effective=effective)
    handles = []
    for module in ([] if counter.scripted else model.modules()):  # TorchScript refuses Python hooks
        handles.append(module.register_forward_pre_hook(counter.pre_hook))
        handles.append(module.register_forward_hook(counter.post_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(*args)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        _reset_neurons(model)
    per_sample = 1.0 / batch_size
    layers = []
    for layer in sorted(counter.layers.values(), key=lambda lc: lc.order):
        layer.records = [r.scaled(per_sample) for r in layer.records]
        layer.extras = Counter({k: v * per_sample for k, v in layer.extras.items()})
        layers.append(layer)
    from fvcore.nn import parameter_count  # per-module counts; "" is the whole model

    params = int(parameter_count(model).get("", 0))
    return OpCounts(layers, batch_size, params, dict(counter.unsupported))


def _reset_neurons(model: nn.Module) -> None:
    for module in model.modules():
        reset = getattr(module, "reset", None)
        if callable(reset) and is_neuron(module):
            reset()
