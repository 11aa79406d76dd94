"""Which elements of a batched tensor belong to which sample: per-sample counts from one batched pass.

A *layout* ``(outer, inner)`` says that a tensor of ``outer * B * inner`` elements, read in
row-major order, is ``[outer, B, inner]``: sample ``b`` holds ``x.reshape(outer, B, inner)[:, b]``,
in the order its own forward would hold it. ``[B, C, H, W]`` is ``(1, C*H*W)``; spikingjelly's
``[T, B, ...]`` and ``[T*B, ...]`` are both ``(T, ...)``; attention's ``[B, heads, N, d]`` and
``[B*heads, N, d]`` are both ``(1, heads*N*d)``.

The counter gives the model's inputs their layout and derives every output's from its inputs'
with the rules below (``infer``): an op that moves or combines elements without mixing samples
keeps the batch in one axis, as ``(dim, a, c)``: that axis is ``[a, B, c]``. An op without a rule
(or one that mixes samples: a sum over the batch axis, BatchNorm on batch statistics, a product
contracting the batch) leaves its output without a layout, and a pass that later uses such a
tensor is *not separable*: ``count_ops`` then runs each sample on its own, as it always did.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

Layout = tuple[int, int]  # (outer, inner)
Form = tuple[int, int, int]  # (dim, a, c): the axis holding the batch is [a, B, c]


class NotSeparable(Exception):
    """The batched pass cannot give per-sample counts (a tensor mixes or hides its samples)."""


def input_layout(t: torch.Tensor, batch_dim: int, batch: int) -> Optional[Layout]:
    if t.dim() <= batch_dim or t.shape[batch_dim] != batch:
        return None
    return math.prod(t.shape[:batch_dim]), math.prod(t.shape[batch_dim + 1:])


def to_form(shape, layout: Layout, batch: int) -> Optional[Form]:
    """The axis of ``shape`` that holds the batch of ``layout``, or None when the batch spans axes."""
    outer, inner = layout
    before = 1
    for d, size in enumerate(shape):
        if outer < before * size:
            if outer % before or size % ((outer // before) * batch):
                return None
            a = outer // before
            c = size // (a * batch)
            return (d, a, c) if c * math.prod(shape[d + 1:]) == inner else None
        before *= size
    return None


def from_form(shape, form: Form, batch: int) -> Optional[Layout]:
    d, a, c = form
    if d < 0 or d >= len(shape) or shape[d] != a * batch * c:
        return None
    return math.prod(shape[:d]) * a, c * math.prod(shape[d + 1:])


def split(t: torch.Tensor, layout: Layout, batch: int) -> torch.Tensor:
    """``t`` as ``[outer, B, inner]``."""
    return t.reshape(layout[0], batch, layout[1])


def sample(t: torch.Tensor, layout: Layout, batch: int, index: int) -> torch.Tensor:
    """Sample ``index`` of ``t``, shaped as that sample's own forward shapes it."""
    form = to_form(t.shape, layout, batch)
    if form is None:
        raise NotSeparable(f"a tensor of shape {tuple(t.shape)} holds its batch across axes")
    d, a, c = form
    shape = (*t.shape[:d], a * c, *t.shape[d + 1:])
    return split(t, layout, batch)[:, index].reshape(shape)


# ----------------------------------------------------------------------------- the rules
FormOf = Callable[[object], Optional[Form]]  # a data tensor's form; None for weights and constants
Rule = Callable[[dict, torch.Tensor, FormOf], Optional[Form]]  # (named args, first output, form_of)


def _arg_tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _arg_tensors(item)


def _dims(value, ndim: int) -> list[int]:
    dims = [value] if isinstance(value, int) else list(value or [])
    return [d % ndim if ndim else 0 for d in dims]


def _one(named: dict, key: str, form_of: FormOf) -> tuple[Optional[torch.Tensor], Optional[Form]]:
    t = named.get(key)
    return (t, form_of(t)) if isinstance(t, torch.Tensor) else (None, None)


def _agree(forms) -> Optional[Form]:
    found = None
    for form in forms:
        if form is None or (found is not None and form != found):
            return None
        found = form
    return found


def broadcast(named: dict, out: torch.Tensor, form_of: FormOf) -> Optional[Form]:
    """Element-wise with broadcasting: each data operand's batch axis lands on the same output axis."""
    forms = []
    for t in _arg_tensors(list(named.values())):
        form = form_of(t)
        if form is not None:
            d = form[0] + out.dim() - t.dim()
            forms.append((d, form[1], form[2]) if d >= 0 and out.shape[d] == t.shape[form[0]] else None)
    return _agree(forms) if forms else None


def same_order(named: dict, out: torch.Tensor, form_of: FormOf) -> Optional[Form]:
    """Views, reshapes and copies keep the row-major order: the layout is kept whatever the shape."""
    t = next(_arg_tensors([named.get("self", named.get("input"))]), None)
    form = form_of(t) if t is not None else None
    if form is None or out.numel() != t.numel():
        return None
    return t  # type: ignore[return-value] - the input: its layout itself (see infer)


def _along(keyword: str, default=None, *, removes: bool = False) -> Rule:
    """An op along ``dim`` (softmax, cumsum, sort, a reduction): fine unless ``dim`` is the batch axis."""
    def rule(named, out, form_of):
        t, form = _one(named, "self", form_of)
        if form is None:
            t, form = _one(named, "input", form_of)
        if form is None:
            return None
        dims = named.get(keyword, default)
        if dims is None or (not isinstance(dims, int) and len(dims) == 0):
            return None  # every axis: mixes samples
        dims = _dims(dims, t.dim())
        if form[0] in dims:
            return None
        keep = bool(named.get("keepdim", False)) or not removes
        d = form[0] - (0 if keep else sum(1 for x in set(dims) if x < form[0]))
        return d, form[1], form[2]
    return rule


def _permute(named, out, form_of):
    t, form = _one(named, "self", form_of)
    if form is None:
        return None
    if "dims" in named:
        order = _dims(named["dims"], t.dim())
    else:
        order = list(range(t.dim()))
        if "dim0" in named:
            i, j = _dims([named["dim0"], named["dim1"]], t.dim())
            order[i], order[j] = order[j], order[i]
        else:
            order.reverse()  # t
    return order.index(form[0]), form[1], form[2]


def _repeat(named, out, form_of):
    t, form = _one(named, "self", form_of)
    if form is None:
        return None
    repeats = list(named["repeats"])
    d = form[0] + len(repeats) - t.dim()
    return d, form[1] * int(repeats[d]), form[2]


def _select(named, out, form_of):
    t, form = _one(named, "self", form_of)
    if form is None or _dims(named.get("dim", 0), t.dim())[0] == form[0]:
        return None
    dim = _dims(named.get("dim", 0), t.dim())[0]
    return form[0] - (1 if dim < form[0] else 0), form[1], form[2]


def _slicing(named, out, form_of):
    """slice, narrow, index_select, split, chunk, unbind's pieces along another axis."""
    t, form = _one(named, "self", form_of)
    if form is None or _dims(named.get("dim", 0), t.dim())[0] == form[0]:
        return None
    return form


def _cat(named, out, form_of):
    tensors = [t for t in named["tensors"] if isinstance(t, torch.Tensor) and t.numel()]
    dim = _dims(named.get("dim", 0), max(t.dim() for t in tensors))[0]
    forms = [form_of(t) for t in tensors]
    data = [f for f in forms if f is not None]
    if not data:
        return None
    if all(f[0] != dim for f in data):
        return _agree(data)
    if len(data) != len(tensors) or len({(f[0], f[2]) for f in data}) != 1:
        return None
    return data[0][0], sum(f[1] for f in data), data[0][2]


def _stack(named, out, form_of):
    form = _agree([form_of(t) for t in named["tensors"]])
    if form is None:
        return None
    dim = _dims(named.get("dim", 0), out.dim())[0]
    return form[0] + (1 if dim <= form[0] else 0), form[1], form[2]


def _leading(keys: tuple[str, ...], trailing: int) -> Rule:
    """Ops that work on the last ``trailing`` axes of their first input (pooling, padding, norms)."""
    def rule(named, out, form_of):
        t, form = None, None
        for key in keys:
            t, form = _one(named, key, form_of)
            if t is not None:
                break
        if form is None or form[0] >= t.dim() - trailing or out.dim() != t.dim():
            return None
        if any(form_of(x) is not None for x in _arg_tensors(list(named.values())) if x is not t):
            return None
        return form
    return rule


def _pad(named, out, form_of):
    t, form = _one(named, "self", form_of)
    if form is None:
        return None
    return form if form[0] < t.dim() - len(named["pad"]) // 2 else None


def _layer_norm(named, out, form_of):
    t, form = _one(named, "input", form_of)
    if form is None or form[0] >= t.dim() - len(named["normalized_shape"]):
        return None
    return form if all(form_of(x) is None for x in (named.get("weight"), named.get("bias"))) else None


def _batch_norm(named, out, form_of):
    """BatchNorm on running statistics is element-wise (per channel); on the batch's statistics it mixes."""
    if named.get("training", named.get("train", False)):
        return None
    x, form = _one(named, "input", form_of)
    return form if form is not None and form[0] == 0 and x.dim() > 1 else None


def _conv(named, out, form_of):
    """Convolutions, group norm, im2col and col2im: the batch in the first axis stays there."""
    x, form = _one(named, "input" if "input" in named else "self", form_of)
    if form is None or form[0] != 0:
        return None
    return form if all(form_of(t) is None for t in _arg_tensors(list(named.values())) if t is not x) else None


def _product(left_key: str, right_key: str, bias_key: Optional[str] = None) -> Rule:
    """``left [..., n, k] @ right [..., k, m]``: the batch may sit in the batch axes, in n or in m."""
    def rule(named, out, form_of):
        forms = []
        for key, row in ((left_key, True), (right_key, False)):
            t, form = _one(named, key, form_of)
            if form is None:
                continue
            d = form[0] - t.dim()  # from the end
            if d == (-1 if row else -2):
                return None  # the contracted axis: samples mix
            forms.append((out.dim() + d, form[1], form[2]))
        if bias_key is not None and form_of(named.get(bias_key)) is not None:
            forms.append(broadcast({"b": named[bias_key]}, out, form_of))
        return _agree(forms) if forms else None
    return rule


def _attention(named, out, form_of):
    q, form = _one(named, "query", form_of)
    if form is None or form[0] >= q.dim() - 1:
        return None
    for key in ("key", "value"):
        t, other = _one(named, key, form_of)
        if other is not None and (form[0] >= q.dim() - 2 or other != (form[0] + t.dim() - q.dim(), *form[1:])):
            return None
    return form if q.dim() == out.dim() else None


def _new_like(named, out, form_of):
    t, form = _one(named, "self", form_of)
    return t if form is not None and tuple(out.shape) == tuple(t.shape) else None


def _linear(named, out, form_of):
    if form_of(named.get("weight")) is not None:
        return None
    return _product("input", "weight", "bias")(named, out, form_of)


_DIM_OPS = {"_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax", "glu", "logsumexp"}
_ELEMENTWISE = (
    "add", "sub", "rsub", "mul", "div", "true_divide", "square", "addcmul", "addcdiv", "lerp", "logical_and",
    "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "where", "masked_fill", "copy",
    "fill", "zero", "neg", "positive", "logical_not", "bitwise_not", "isnan", "isinf", "isfinite", "isposinf",
    "isneginf", "expand", "broadcast_to", "fmod", "remainder", "pow", "float_power")
_SAME_ORDER = (
    "view", "_unsafe_view", "reshape", "_reshape_alias", "view_as", "squeeze", "unsqueeze", "flatten", "unflatten",
    "clone", "contiguous", "_to_copy", "to", "type_as", "_to_dim_order_copy", "detach", "alias", "lift",
    "lift_fresh", "lift_fresh_copy", "resolve_conj", "resolve_neg", "conj", "_conj", "_conj_physical", "_neg_view",
    "dropout", "native_dropout", "feature_dropout", "alpha_dropout", "view_copy", "detach_copy", "alias_copy",
    "_unsafe_view_copy", "squeeze_copy", "unsqueeze_copy", "empty_like", "zeros_like", "ones_like", "full_like",
    "rand_like", "randn_like", "randint_like", "bernoulli")
_REDUCTIONS = ("sum", "mean", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean", "std_mean",
               "linalg_vector_norm", "norm", "nansum", "count_nonzero", "any", "all", "argmax", "argmin",
               "logsumexp", "aminmax")
_POOLS = {"max_pool1d": 1, "max_pool2d": 2, "max_pool3d": 3, "max_pool2d_with_indices": 2,
          "max_pool3d_with_indices": 3, "avg_pool1d": 1, "avg_pool2d": 2, "avg_pool3d": 3,
          "_adaptive_avg_pool2d": 2, "_adaptive_avg_pool3d": 3, "adaptive_avg_pool1d": 1, "adaptive_max_pool1d": 1,
          "adaptive_max_pool2d": 2, "adaptive_max_pool3d": 3, "upsample_nearest1d": 1, "upsample_nearest2d": 2,
          "upsample_nearest3d": 3, "_upsample_nearest_exact1d": 1, "_upsample_nearest_exact2d": 2,
          "_upsample_nearest_exact3d": 3, "upsample_linear1d": 1, "upsample_bilinear2d": 2,
          "upsample_trilinear3d": 3, "upsample_bicubic2d": 2, "reflection_pad1d": 1, "reflection_pad2d": 2,
          "reflection_pad3d": 3, "replication_pad1d": 1, "replication_pad2d": 2, "replication_pad3d": 3,
          "pixel_shuffle": 3, "pixel_unshuffle": 3, "tril": 2, "triu": 2}


def _rules() -> dict[str, Rule]:
    from snnas.energy.handlers import ACTIVATION_OPS, NONLINEAR_OPS

    rules: dict[str, Rule] = {name: broadcast for name in (*_ELEMENTWISE, *ACTIVATION_OPS, *NONLINEAR_OPS)}
    rules.update({name: same_order for name in _SAME_ORDER})
    rules.update({name: _along("dim", -1) for name in _DIM_OPS})
    rules.update({name: _along("dim", removes=True) for name in _REDUCTIONS})
    rules.update({name: _leading(("self", "input"), n) for name, n in _POOLS.items()})
    rules.update({name: _along("dim", -1) for name in ("cumsum", "cumprod", "logcumsumexp", "sort", "argsort", "topk")})
    rules.update({"flip": _along("dims"), "roll": _along("dims"), "permute": _permute, "transpose": _permute,
                  "t": _permute, "repeat": _repeat, "select": _select, "unbind": _select, "slice": _slicing,
                  "narrow": _slicing, "index_select": _slicing, "split": _slicing, "split_with_sizes": _slicing,
                  "unsafe_split": _slicing, "unsafe_split_with_sizes": _slicing, "chunk": _slicing,
                  "unsafe_chunk": _slicing, "tensor_split": _slicing, "cat": _cat, "concat": _cat, "stack": _stack,
                  "constant_pad_nd": _pad, "native_layer_norm": _layer_norm, "native_group_norm": _conv, "im2col": _conv, "col2im": _conv,
                  "convolution": _conv, "_convolution": _conv, "mm": _product("self", "mat2"),
                  "bmm": _product("self", "mat2"), "addmm": _product("mat1", "mat2", "self"),
                  "baddbmm": _product("batch1", "batch2", "self"), "linear": _linear,
                  "new_zeros": _new_like, "new_ones": _new_like, "new_empty": _new_like, "new_full": _new_like})
    for name in ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                 "batch_norm", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm"):
        rules[name] = _batch_norm
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                 "_scaled_dot_product_attention_math", "scaled_dot_product_attention", "_native_multi_head_attention"):
        rules[name] = _attention
    return rules


RULES = _rules()


def infer(name: str, base: str, named: dict, outputs: list[torch.Tensor], form_of: FormOf,
          layout_of: Callable[[torch.Tensor], Optional[Layout]], batch: int) -> list[Optional[Layout]]:
    """The layout of each output of one op (None where no rule keeps the samples apart)."""
    rule = RULES.get(name) or RULES.get(base)
    found = rule(named, outputs[0], form_of) if rule is not None and outputs else None
    if found is None:
        return [None] * len(outputs)
    if isinstance(found, torch.Tensor):  # the input's layout, element order kept
        layout = layout_of(found)
        return [layout if t.numel() == found.numel() else None for t in outputs]
    return [from_form(t.shape, found, batch) for t in outputs]
