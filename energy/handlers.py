"""The op table: one small handler per aten op that does arithmetic, and the ops that do none.

Every handler gets the counting context, the op's arguments by schema name, and its output.
An op that does arithmetic on data and has no handler here is *unsupported*: the counter lists
it and every estimate built on the counts is marked incomplete. ``FREE_OPS`` holds the ops that
only move, view, create or check data; they are never counted and never warned about.

Synaptic ops keep one ``OpRecord`` each:

* real x real                    -> ``mac``             = dense
* event x weight (conv, linear)  -> ``ac`` / ``ac_signed`` / ``ac_multi`` by the input's class,
                                    exactly sum(levels) x fan-out: a conv is re-run with a ones
                                    kernel, so padded borders, strides and transposed convs are exact
* event x real matmul            -> sum(levels of the event operand) x the other dimension
* event x event matmul           -> ``ac_coincidence``: coinciding non-zero pairs (level-weighted)
* attention (SDPA, multi-head)   -> one record per product (Q K^T, then P V), masks honoured

A "weight" is an operand that does not depend on the model's input (the counter tracks which
tensors do), so a Linear is recognised in every file format, whatever op carries it.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from snnas.energy.counts import OpRecord
from snnas.energy.operands import BINARY, MULTILEVEL, REAL, TERNARY, Operand

aten = torch.ops.aten

CHARGE_BY_KIND = {BINARY: "ac", TERNARY: "ac_signed", MULTILEVEL: "ac_multi", REAL: "mac"}


class Context(Protocol):
    effective: bool  # also count NeuroBench's effective ops
    samples: int  # samples the op holds: a weight operand is counted once per sample

    def operand(self, t: torch.Tensor) -> Operand: ...  # classify (BatchNorm folding aware)
    def is_data(self, t: object) -> bool: ...  # depends on the model's input
    def record(self, rec: OpRecord) -> None: ...
    def add(self, key: str, count: float) -> None: ...
    def fold_bn(self, bn_input: torch.Tensor, bn_output: torch.Tensor) -> None: ...


Handler = Callable[[Context, dict, object], None]


def _numel(x) -> float:
    return float(x.numel()) if isinstance(x, torch.Tensor) else 1.0


def _first(out) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# ----------------------------------------------------------------------------- synaptic ops
def _counting_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype counts are computed in: float32 for float32 and half models (every per-element count
    is a whole number below 2**24, exact there; float16 overflows at 65,504 and bfloat16 rounds
    above 256), float64 for float64 models. Sums are then taken in float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _conv(ctx: Context, a: dict, out) -> None:
    x, w, bias = a["input"], a["weight"], a.get("bias")
    stride, padding, dilation = a["stride"], a["padding"], a["dilation"]
    transposed, output_padding, groups = bool(a.get("transposed", False)), a.get("output_padding"), a["groups"]
    output_padding = output_padding if output_padding is not None else [0] * (w.dim() - 2)
    kernel = math.prod(w.shape[2:])
    if transposed:  # weight [C_in, C_out / groups, k...]: each input element reaches C_out/groups * k outputs
        dense = float(x.numel() * w.shape[1] * kernel)
        fan_out = w.shape[1]
    else:  # weight [C_out, C_in / groups, k...]
        dense = float(out.numel() * w.shape[1] * kernel)
        fan_out = w.shape[0] // groups
    inp = ctx.operand(x)
    exact = dense
    if inp.levels is not None:
        if transposed:  # one ones-kernel channel per input channel: taps that land in the output
            ones = torch.ones((x.shape[1], 1, *w.shape[2:]), dtype=inp.levels.dtype, device=x.device)
            hits = aten.convolution(inp.levels, ones, None, stride, padding, dilation, True, output_padding,
                                    x.shape[1])
        else:  # one ones-kernel channel per group: levels under every output position
            ones = torch.ones((groups, w.shape[1], *w.shape[2:]), dtype=inp.levels.dtype, device=x.device)
            hits = aten.convolution(inp.levels, ones, None, stride, padding, dilation, False, output_padding, groups)
        exact = float(hits.sum(dtype=torch.float64)) * fan_out
    effective = None
    if ctx.effective:
        exact_type = _counting_dtype(w.dtype)  # a count per output element, exact in this dtype
        effective = float(aten.convolution((x != 0).to(exact_type), (w != 0).to(exact_type), None, stride, padding,
                                           dilation, transposed, output_padding, groups).sum(dtype=torch.float64))
    bias_adds = _numel(out) if bias is not None else 0.0
    weight = float(w.numel()) * ctx.samples
    ctx.record(OpRecord("conv", dense, bias_adds, (inp.kind, REAL), (inp.nnz, weight), (float(inp.numel), weight), {CHARGE_BY_KIND[inp.kind]: exact},
                        _numel(out), effective))


def _reuse(t: torch.Tensor, batch: int) -> float:
    """How often each element of ``t`` is used when its batch dims broadcast to ``batch`` products."""
    return batch / max(1, math.prod(t.shape[:-2]))


def _product(ctx: Context, left: torch.Tensor, right: torch.Tensor, bias_adds: float, out,
             data: tuple[bool, bool] | None = None) -> None:
    """``left [..., n, k] @ right [..., k, m]`` (batch dims broadcast); an operand that does not
    depend on the input (``data`` False) is a weight, and the product then a linear layer."""
    n, k, m = left.shape[-2], left.shape[-1], right.shape[-1]
    batch = math.prod(torch.broadcast_shapes(left.shape[:-2], right.shape[:-2]))
    dense = float(batch * n * k * m)
    data_left, data_right = data if data is not None else (ctx.is_data(left), ctx.is_data(right))
    effective = None
    if ctx.effective:
        effective = float(((left != 0).to(torch.float64) @ (right != 0).to(torch.float64)).sum())
    if data_left != data_right:  # one operand is a weight: a linear layer
        act_tensor, weight = (left, right) if data_left else (right, left)
        act = ctx.operand(act_tensor)
        fan_out = m if data_left else n
        exact = dense if act.levels is None else float(act.levels.sum(dtype=torch.float64)) * fan_out * _reuse(act_tensor, batch)
        weights = float(weight.numel()) * ctx.samples
        ctx.record(OpRecord("linear", dense, bias_adds, (act.kind, REAL), (act.nnz, weights), (float(act.numel), weights), {CHARGE_BY_KIND[act.kind]: exact},
                            _numel(out), effective))
        return
    lo, ro = ctx.operand(left), ctx.operand(right)
    if lo.levels is None and ro.levels is None:
        charge, exact = "mac", dense
    elif ro.levels is None:  # each event of the left operand accumulates one row of the right
        charge, exact = CHARGE_BY_KIND[lo.kind], float(lo.levels.sum(dtype=torch.float64)) * m * _reuse(left, batch)
    elif lo.levels is None:
        charge, exact = CHARGE_BY_KIND[ro.kind], float(ro.levels.sum(dtype=torch.float64)) * n * _reuse(right, batch)
    else:  # both events: coinciding non-zero pairs along the contracted dimension, level-weighted
        charge = "ac_coincidence"
        exact = float((lo.levels.to(torch.float64) @ ro.levels.to(torch.float64)).sum())
    ctx.record(OpRecord("matmul", dense, bias_adds, (lo.kind, ro.kind), (lo.nnz, ro.nnz),
                        (float(lo.numel), float(ro.numel)), {charge: exact}, _numel(out), effective))


def _mm(ctx, a, out):
    _product(ctx, a["self"], a["mat2"], 0.0, out)


def _addmm(ctx, a, out):
    _product(ctx, a["mat1"], a["mat2"], _numel(out), out)


def _bmm(ctx, a, out):
    _product(ctx, a["self"], a["mat2"], 0.0, out)


def _baddbmm(ctx, a, out):
    _product(ctx, a["batch1"], a["batch2"], _numel(out), out)


def _addbmm(ctx, a, out):
    _product(ctx, a["batch1"], a["batch2"], _numel(out), out)


def _mv(ctx, a, out):
    mat, vec = a["self"], a["vec"]
    _product(ctx, mat, vec.unsqueeze(-1), 0.0, out, (ctx.is_data(mat), ctx.is_data(vec)))


def _addmv(ctx, a, out):
    mat, vec = a["mat"], a["vec"]
    _product(ctx, mat, vec.unsqueeze(-1), _numel(out), out, (ctx.is_data(mat), ctx.is_data(vec)))


def _dot(ctx, a, out):
    x, y = a["self"], a["tensor"]
    _product(ctx, x.unsqueeze(0), y.unsqueeze(-1), 0.0, out, (ctx.is_data(x), ctx.is_data(y)))


# ----------------------------------------------------------------------------- attention
def _allowed(q: torch.Tensor, k: torch.Tensor, mask, causal: bool) -> torch.Tensor:
    """Boolean ``[..., L, S]`` of the query-key pairs an attention computes."""
    length, source = q.shape[-2], k.shape[-2]
    allowed = torch.ones(length, source, dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed.tril()
    if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
        allowed = allowed & mask
    return allowed


def _attention_products(ctx: Context, q, k, v, allowed: torch.Tensor, out) -> None:
    """Q K^T over the allowed pairs, softmax, then P V: two records and the softmax elements."""
    if k.shape[-3:-2] != q.shape[-3:-2] and q.dim() >= 3 and k.dim() >= 3:  # grouped-query attention
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
    batch = math.prod(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]))
    length, source, dim, dim_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    pairs = allowed.expand(*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), length, source).to(torch.float64)
    qo, ko, vo = ctx.operand(q), ctx.operand(k), ctx.operand(v)
    cq = qo.levels.to(torch.float64) if qo.levels is not None else torch.ones(q.shape, dtype=torch.float64)
    ck = ko.levels.to(torch.float64) if ko.levels is not None else torch.ones(k.shape, dtype=torch.float64)
    events = [o.kind for o in (qo, ko) if o.levels is not None]
    charge = "mac" if not events else ("ac_coincidence" if len(events) == 2 else CHARGE_BY_KIND[events[0]])
    qk = float((pairs * (cq @ ck.transpose(-1, -2))).sum())
    ctx.record(OpRecord("matmul", float(batch * length * source * dim), 0.0, (qo.kind, ko.kind), (qo.nnz, ko.nnz),
                        (float(qo.numel), float(ko.numel)), {charge: qk}, float(batch * length * source)))
    ctx.add("nonlinear", float(pairs.sum()))  # softmax
    ctx.add("scalings", float(pairs.sum()))  # 1/sqrt(d), folded
    cv = vo.levels.to(torch.float64) if vo.levels is not None else torch.ones(v.shape, dtype=torch.float64)
    av = float((pairs @ cv).sum())
    ctx.record(OpRecord("matmul", float(batch * length * source * dim_v), 0.0, (REAL, vo.kind),
                        (float(pairs.sum()), vo.nnz), (float(pairs.numel()), float(vo.numel)),
                        {CHARGE_BY_KIND[vo.kind]: av}, _numel(_first(out))))


def _sdpa(ctx, a, out):
    q, k, v = a["query"], a["key"], a["value"]
    _attention_products(ctx, q, k, v, _allowed(q, k, a.get("attn_mask"), bool(a.get("is_causal", False))), out)


def _native_mha(ctx, a, out):
    """nn.MultiheadAttention's fused inference path: three input projections, attention, output projection."""
    query, key, value = a["query"], a["key"], a["value"]
    embed, heads = int(a["embed_dim"]), int(a["num_head"])
    weight, bias = a["qkv_weight"], a["qkv_bias"]
    projected = []
    for x, w, b in zip((query, key, value), weight.chunk(3), bias.chunk(3) if bias is not None else (None,) * 3):
        y = torch.nn.functional.linear(x, w, b)
        _product(ctx, x.reshape(-1, embed), w.t(), _numel(y) if b is not None else 0.0, y, (ctx.is_data(x), False))
        projected.append(y.reshape(*y.shape[:-1], heads, embed // heads).transpose(-2, -3))  # [B, h, L, d]
    q, k, v = projected
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # [B, h, L, d]
    _attention_products(ctx, q, k, v, _allowed(q, k, a.get("mask"), False), attended)
    merged = attended.transpose(-2, -3).reshape(-1, embed)
    _product(ctx, merged, a["proj_weight"].t(), _numel(merged) if a.get("proj_bias") is not None else 0.0, out,
             (True, False))


# ----------------------------------------------------------------------------- element-wise
def _binary_elementwise(ctx: Context, a: dict, out, *, both_data: str) -> None:
    x, y = a.get("self", a.get("input")), a.get("other")
    result = _first(out)
    if ctx.is_data(x) and ctx.is_data(y):
        ctx.add(both_data, _numel(result))
    else:  # a constant operand: scalar, per-channel scale or shift, embedding -> folded
        ctx.add("scalings", _numel(result))


def _add(ctx, a, out):
    _binary_elementwise(ctx, a, out, both_data="residual_adds")


def _div(ctx, a, out):
    _binary_elementwise(ctx, a, out, both_data="products")


def _mul(ctx, a, out):
    x, y = a.get("self"), a.get("other")
    if ctx.is_data(x) and ctx.is_data(y):
        selecting = any(ctx.operand(t).kind in (BINARY, TERNARY) for t in (x, y))
        ctx.add("masks" if selecting else "products", _numel(_first(out)))
    else:
        ctx.add("scalings", _numel(_first(out)))


def _logical(ctx, a, out):
    _binary_elementwise(ctx, a, out, both_data="masks")


# ----------------------------------------------------------------------------- recurrent layers
_RNN_GATES = {0: 1, 1: 1, 2: 4, 3: 3}  # mkldnn modes: RNN_RELU, RNN_TANH, LSTM, GRU


def _mkldnn_rnn_layer(ctx, a, out):
    """One direction of one layer of ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` on the CPU: the input
    projection of every step (event-aware, as a linear layer), the hidden projection (the state is
    real: dense MACs), and the gates' non-linearities and products."""
    x, w_ih, w_hh = a["input"], a["weight0"], a["weight1"]
    gates = w_ih.shape[0]  # gate count x hidden size
    hidden = a["hidden_size"]
    states = _first(out)  # [T, B, H] (or [B, T, H]): h_t, which h_{t-1} equals in class and size
    bias_adds = float(x.shape[0] * x.shape[1] * gates) if a.get("has_biases") else 0.0
    _product(ctx, x.reshape(-1, x.shape[-1]), w_ih.t(), bias_adds, states.reshape(-1, hidden).new_empty(0),
             (True, False))
    _product(ctx, states.reshape(-1, hidden), w_hh.t(), bias_adds, states.new_empty(0), (True, False))
    steps = float(states.shape[0] * states.shape[1])
    ctx.add("nonlinear", steps * (gates + (hidden if _RNN_GATES.get(a["mode"], 1) == 4 else 0)))
    ctx.add("products", steps * hidden * {4: 3, 3: 3}.get(_RNN_GATES.get(a["mode"], 1), 0))


# ----------------------------------------------------------------------------- accumulating writes
def _index_put(ctx, a, out):
    """``x[indices] = values`` moves data; with ``accumulate`` every value is added in."""
    if a.get("accumulate"):
        where = tuple(slice(None) if i is None else i for i in a["indices"])
        ctx.add("reductions", float(a["self"][where].numel()))


def _scatter(ctx, a, out):
    """``scatter`` moves data; with ``reduce`` ('add', 'multiply') each indexed element combines."""
    reduce = a.get("reduce")
    if reduce is not None:
        ctx.add("products" if reduce in ("multiply", "prod") else "reductions", _numel(a["index"]))


def _scatter_reduce(ctx, a, out):
    ctx.add("products" if a.get("reduce") == "prod" else "reductions", _numel(a["index"]))


def _index_add(ctx, a, out):
    ctx.add("reductions", _numel(a["source"]))


def _col2im(ctx, a, out):
    """``F.fold``: every column element is added into the image it overlaps."""
    ctx.add("reductions", _numel(a["self"]))


def _per_output(key: str) -> Handler:
    def handler(ctx, a, out):
        ctx.add(key, _numel(_first(out)))
    return handler


def _per_input(key: str) -> Handler:
    def handler(ctx, a, out):
        ctx.add(key, _numel(a.get("self", a.get("input"))))
    return handler


def _window(ctx, a, out):
    kernel = a.get("kernel_size") or [1]
    ctx.add("pool", _numel(_first(out)) * math.prod(kernel))


def _batch_norm(ctx, a, out):
    x = a["input"]
    if a.get("training", a.get("train", False)):  # statistics of this input (instance norm, or no
        ctx.add("norm", _numel(x))  # running statistics): depends on the data, not foldable
        return
    ctx.add("bn", _numel(x))
    ctx.fold_bn(x, _first(out))


def _interpolate(taps: int) -> Handler:
    def handler(ctx, a, out):
        ctx.add("products", _numel(_first(out)) * taps)
    return handler


def _log2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _sort(ctx, a, out):
    """A comparison sort: n log2 n comparisons along the sorted dimension."""
    x = a["self"]
    n = x.shape[a.get("dim", -1)] if x.dim() else 1
    ctx.add("activations", _numel(x) * _log2(n))


def _topk(ctx, a, out):
    """A heap of k along the dimension: n log2 k comparisons."""
    ctx.add("activations", _numel(a["self"]) * _log2(int(a["k"]) + 1))


def _fft(ctx, a, out):
    """An FFT over the transformed dimensions: n log2 n complex products."""
    x = a["self"]
    n = math.prod(x.shape[d] for d in a["dim"]) if a.get("dim") else x.numel()
    ctx.add("products", _numel(x) * _log2(n))


def _cdist(ctx, a, out):
    """Pairwise distances of ``x1 [.., P, M]`` and ``x2 [.., R, M]``: a product per pair and feature."""
    _product(ctx, a["x1"], a["x2"].transpose(-1, -2), 0.0, out)


def _pdist(ctx, a, out):
    x = a["self"]
    ctx.add("products", _numel(_first(out)) * x.shape[-1])


def _embedding_bag(ctx, a, out):
    """Each bag sums the rows its indices pick: one addition per index and feature."""
    ctx.add("reductions", _numel(a["indices"]) * a["weight"].shape[-1])


# Backward ops of the Core ATen opset: never run by a forward pass without gradients; if one is seen
# it is reported as unsupported like any op without a handler.
BACKWARD_OPS = frozenset({
    "_adaptive_avg_pool2d_backward", "avg_pool2d_backward", "convolution_backward", "embedding_dense_backward",
    "max_pool2d_with_indices_backward", "native_group_norm_backward", "native_layer_norm_backward",
})


HANDLERS: dict[str, Handler] = {
    # synaptic
    "convolution": _conv, "_convolution": _conv, "mm": _mm, "addmm": _addmm, "bmm": _bmm, "baddbmm": _baddbmm,
    "addbmm": _addbmm, "mv": _mv, "addmv": _addmv, "dot": _dot, "vdot": _dot,
    # attention
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa, "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa, "_scaled_dot_product_cudnn_attention": _sdpa,
    "_scaled_dot_product_attention_math": _sdpa, "scaled_dot_product_attention": _sdpa,
    "_native_multi_head_attention": _native_mha,
    # normalisation
    "native_batch_norm": _batch_norm, "_native_batch_norm_legit": _batch_norm,
    "_native_batch_norm_legit_no_training": _batch_norm, "batch_norm": _batch_norm,
    "_batch_norm_with_update": _per_input("norm"), "_batch_norm_no_update": _batch_norm,
    "cudnn_batch_norm": _batch_norm, "miopen_batch_norm": _batch_norm,
    "native_layer_norm": _per_input("norm"), "native_group_norm": _per_input("norm"),
    "_fused_rms_norm": _per_input("norm"), "rms_norm": _per_input("norm"),
    # element-wise with two operands
    "add": _add, "sub": _add, "rsub": _add, "mul": _mul, "div": _div, "true_divide": _div,
    "square": _per_output("products"), "addcmul": _per_output("products"), "addcdiv": _per_output("products"), "lerp": _per_output("products"),
    "logical_and": _logical, "logical_or": _logical, "logical_xor": _logical, "bitwise_and": _logical,
    "bitwise_or": _logical, "bitwise_xor": _logical,
    # pooling and reductions
    "max_pool1d": _window, "max_pool2d": _window, "max_pool3d": _window, "max_pool2d_with_indices": _window,
    "max_pool3d_with_indices": _window, "avg_pool1d": _window, "avg_pool2d": _window, "avg_pool3d": _window,
    "_adaptive_avg_pool2d": _per_input("pool"), "_adaptive_avg_pool3d": _per_input("pool"),
    "adaptive_avg_pool1d": _per_input("pool"), "adaptive_max_pool1d": _per_input("pool"),
    "adaptive_max_pool2d": _per_input("pool"), "adaptive_max_pool3d": _per_input("pool"),
    "upsample_linear1d": _interpolate(2), "upsample_bilinear2d": _interpolate(4),
    "upsample_trilinear3d": _interpolate(8), "upsample_bicubic2d": _interpolate(16),
    "mkldnn_rnn_layer": _mkldnn_rnn_layer,
    # the rest of the Core ATen opset that computes
    "sort": _sort, "topk": _topk, "_fft_r2c": _fft, "_fft_c2r": _fft, "_fft_c2c": _fft, "_cdist_forward": _cdist,
    "_pdist_forward": _pdist, "_embedding_bag": _embedding_bag, "grid_sampler_2d": _interpolate(4),
    "fmod": _per_output("products"), "remainder": _per_output("products"),
    # writes that may accumulate
    "index_put": _index_put, "_index_put_impl": _index_put, "scatter": _scatter, "scatter_add": _scatter_reduce,
    "scatter_reduce": _scatter_reduce, "index_add": _index_add, "col2im": _col2im,
}
for _name in ("sum", "mean", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean", "std_mean",
              "linalg_vector_norm", "norm", "cumsum", "cumprod", "argmax", "argmin", "aminmax", "nansum",
              "count_nonzero", "any", "all"):
    HANDLERS[_name] = _per_input("reductions")
ACTIVATION_OPS = ("relu", "relu6", "clamp", "clamp_min", "clamp_max", "abs", "sign", "sgn", "maximum",
              "minimum", "fmax", "fmin", "hardtanh", "leaky_relu", "threshold", "heaviside", "round", "floor",
              "ceil", "trunc", "frac", "hardsigmoid", "hardswish", "hardshrink", "softshrink", "prelu",
              "_prelu_kernel", "rrelu", "eq", "ne", "ge", "gt", "le", "lt", "signbit")
NONLINEAR_OPS = ("exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sigmoid", "tanh", "gelu", "silu", "mish",
              "softplus", "elu", "selu", "celu", "erf", "erfc", "erfinv", "sqrt", "rsqrt", "reciprocal", "pow",
              "float_power", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh",
              "acosh", "atanh", "_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax", "logsumexp", "logit",
              "glu", "log_sigmoid_forward", "xlogy", "hypot", "special_erfcx")
for _name in ACTIVATION_OPS:
    HANDLERS[_name] = _per_output("activations")
for _name in NONLINEAR_OPS:
    HANDLERS[_name] = _per_output("nonlinear")

# Ops that move, view, create or check data: never counted, never reported.
FREE_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "_reshape_alias", "view_as", "permute", "transpose", "t", "numpy_T", "mT",
    "adjoint", "movedim", "moveaxis", "swapaxes", "swapdims", "expand", "expand_as", "broadcast_to", "clone",
    "copy_", "copy", "detach", "alias", "lift", "lift_fresh", "lift_fresh_copy", "contiguous", "_to_copy", "to",
    "type_as", "_to_dim_order_copy", "resolve_conj", "resolve_neg", "conj", "_conj", "select", "slice",
    "narrow", "unbind", "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk",
    "tensor_split", "chunk", "stack", "cat", "concat",
    "concatenate", "hstack", "vstack", "squeeze", "unsqueeze", "flatten", "unflatten", "as_strided", "repeat",
    "repeat_interleave", "tile", "index_select", "gather", "take", "index", "_unsafe_index", "masked_fill", "masked_select", "masked_scatter", "where", "roll", "flip",
    "fliplr", "flipud", "rot90", "unfold", "im2col", "diagonal", "select_scatter", "slice_scatter",
    "diagonal_scatter", "as_strided_scatter", "diag", "diag_embed", "tril", "triu",
    "constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
    "replication_pad2d", "replication_pad3d", "circular_pad1d", "circular_pad2d", "circular_pad3d",
    "_pad_circular", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "embedding", "one_hot", "empty",
    "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "new_zeros", "ones",
    "ones_like", "new_ones", "full", "full_like", "new_full", "fill", "fill_", "zero_", "scalar_tensor",
    "arange", "linspace", "logspace", "eye", "rand", "rand_like", "randn", "randn_like", "randint",
    "randint_like", "randperm", "normal", "uniform", "bernoulli", "exponential", "multinomial", "dropout",
    "native_dropout", "feature_dropout", "alpha_dropout", "set_", "resize_", "resize_as_", "_local_scalar_dense",
    "item", "equal", "is_same_size", "is_nonzero", "isnan", "isinf", "isfinite", "isposinf", "isneginf",
    "logical_not", "bitwise_not", "neg", "positive", "sym_size", "sym_numel", "sym_stride", "sym_storage_offset",
    "_assert_tensor_metadata", "_assert_async", "_assert_scalar", "_functional_assert_async",
    "_functional_assert_scalar", "sym_constrain_range", "sym_constrain_range_for_size", "_make_dep_token",
    "nonzero", "view_as_real", "view_as_complex", "_neg_view", "_conj_physical", "_foreach_copy",
    "detach_copy", "alias_copy", "view_copy", "permute_copy", "expand_copy", "slice_copy", "select_copy",
    "transpose_copy", "unsqueeze_copy", "squeeze_copy", "t_copy", "unfold_copy", "split_copy",
    "split_with_sizes_copy", "as_strided_copy", "_unsafe_view_copy", "unbind_copy", "diagonal_copy",
})
