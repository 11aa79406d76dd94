"""Fused multi-step neurons for CPU training: one autograd node per neuron call instead of one per time step.

On CPU spikingjelly 2.0 runs a neuron as a Python loop over time steps that autograd records op
by op (a charge, a surrogate spike and a reset per step, each a node of the graph), and its
backward walks them again. Here the forward loop runs without recording and keeps the charged
potential h[t]; the backward is written out in one reverse loop, with the same formulas
(spikingjelly's surrogate gradients, ``_surrogate_gradient``, and aten's sigmoid backward) in
the order autograd evaluates them, so outputs and gradients are identical to spikingjelly's
reference, bit for bit (the tests compare them), and training follows the same trajectory.

Covered: hard reset to a constant with the reset detached (every neuron snnas builds), decay on
the input or not, the surrogate kinds spikingjelly implements natively. Anything else, CUDA,
evaluation without gradients, TorchScript tracing and torch.export use spikingjelly's own path.
"""

from __future__ import annotations

import torch

from spikingjelly._ops.surrogate import _surrogate_gradient, _surrogate_spec


def _charge(x, v, k, decay_input: bool, reset: float):
    """The charged potential, spikingjelly's expressions: ``k`` is tau (LIF, a float: divide) or
    sigmoid(w) (PLIF, a tensor: multiply)."""
    if isinstance(k, torch.Tensor):
        return v + (x - (v - reset)) * k if decay_input else v - (v - reset) * k + x
    return v + (x - (v - reset)) / k if decay_input else v - (v - reset) / k + x


class _LIFSeq(torch.autograd.Function):
    """LIF (``k`` the float tau) or PLIF (``k`` the tensor sigmoid(w)) over ``x_seq [T, ...]`` from ``v``."""

    @staticmethod
    def forward(ctx, x_seq, v, tau_or_w, decay_input, threshold, reset, alpha, surrogate_id):
        learnable = isinstance(tau_or_w, torch.Tensor)
        k = tau_or_w.sigmoid() if learnable else tau_or_w  # PLIF: sigmoid(w), as the reference computes it
        spikes, charged, v0 = [], [], v
        for x in x_seq:
            h = _charge(x, v, k, decay_input, reset)
            spike = (h - threshold >= 0).to(x.dtype)
            v = spike * reset + (1.0 - spike) * h  # the reset is detached: no gradient through the spike
            spikes.append(spike)
            charged.append(h)
        h_seq, s_seq = torch.stack(charged), torch.stack(spikes)
        ctx.save_for_backward(x_seq, v0, h_seq, s_seq, *([k] if learnable else []))
        ctx.options = (None if learnable else k, decay_input, threshold, reset, alpha, surrogate_id)
        return s_seq, v

    @staticmethod
    def backward(ctx, g_spikes, g_v):
        x_seq, v0, h_seq, s_seq, *learned = ctx.saved_tensors
        tau, decay_input, threshold, reset, alpha, surrogate_id = ctx.options
        k = learned[0] if learned else None
        g_x = torch.empty_like(h_seq)
        carry, g_w = g_v, None  # carry: the gradient reaching v[t] from the steps after t
        for t in range(h_seq.shape[0] - 1, -1, -1):
            g_h = g_spikes[t] * _surrogate_gradient(h_seq[t] - threshold, alpha, surrogate_id)
            if carry is not None:
                g_h = g_h + carry * (1.0 - s_seq[t])
            if k is None:
                g_x[t] = g_h / tau if decay_input else g_h
                carry = g_h - g_h / tau
                continue
            v_prev = v0 if t == 0 else s_seq[t - 1] * reset + (1.0 - s_seq[t - 1]) * h_seq[t - 1]
            # as autograd: the product's gradient for k summed to k's shape, then sigmoid's backward,
            # the steps' contributions added in the order they arrive (last step first)
            product = g_h * (x_seq[t] - (v_prev - reset)) if decay_input else (-g_h) * (v_prev - reset)
            g_w_t = torch.ops.aten.sigmoid_backward(product.sum_to_size(k.shape), k)
            g_w = g_w_t if g_w is None else g_w + g_w_t
            g_x[t] = g_h * k if decay_input else g_h
            carry = g_h - g_h * k
        return g_x, carry, g_w, None, None, None, None, None


def fused_lif(node, x_seq: torch.Tensor, *, learnable: bool = False) -> torch.Tensor | None:
    """A spikingjelly LIF (or PLIF, ``learnable``) node's multi-step forward, fused; None when the
    case is not covered and spikingjelly's own path must run."""
    spec = _surrogate_spec(node.surrogate_function)
    covered = (spec is not None and node.detach_reset and isinstance(node.v_reset, float) and not node.store_v_seq
               and x_seq.device.type == "cpu" and x_seq.dtype == torch.float32 and torch.is_grad_enabled()
               and not torch.jit.is_tracing() and not torch.compiler.is_compiling())
    if not covered:
        return None
    v = node.v if isinstance(node.v, torch.Tensor) else torch.full_like(x_seq[0], float(node.v))
    if v.shape != x_seq.shape[1:]:
        return None
    surrogate_id, alpha = spec
    spikes, node.v = _LIFSeq.apply(x_seq, v, node.w if learnable else node.tau, node.decay_input, node.v_threshold, node.v_reset, alpha,
                                   surrogate_id)
    return spikes


class _TernarySeq(torch.autograd.Function):
    """The ternary LIF of ``nas.models.neurons.TernaryLIF`` over ``x_seq [T, ...]``, its formulas in its order."""

    @staticmethod
    def forward(ctx, x_seq, v, threshold, beta, reset, surrogate_backward, alpha, scale):
        spikes, potentials = [], []
        for x in x_seq:
            u = v + x if scale == 1.0 else v + x * scale
            s = torch.sign(u) * (u.abs() - threshold >= 0).to(u)
            v = reset * s + beta * u * (1.0 - s.abs())  # the reset is detached
            spikes.append(s)
            potentials.append(u)
        u_seq, s_seq = torch.stack(potentials), torch.stack(spikes)
        ctx.save_for_backward(u_seq, s_seq)
        ctx.options = (threshold, beta, surrogate_backward, alpha, scale)
        return s_seq, v

    @staticmethod
    def backward(ctx, g_spikes, g_v):
        u_seq, s_seq = ctx.saved_tensors
        threshold, beta, surrogate_backward, alpha, scale = ctx.options
        g_x = torch.empty_like(u_seq)
        carry = g_v
        for t in range(u_seq.shape[0] - 1, -1, -1):
            u = u_seq[t]
            sign = torch.sign(u)
            g_u = surrogate_backward(g_spikes[t] * sign, u.abs() - threshold, alpha) * sign
            if carry is not None:
                g_u = g_u + carry * (1.0 - s_seq[t].abs()) * beta
            g_x[t] = g_u if scale == 1.0 else g_u * scale
            carry = g_u
        return g_x, carry, None, None, None, None, None, None


def fused_ternary(node, x_seq: torch.Tensor) -> torch.Tensor | None:
    """``TernaryLIF.forward`` fused, or None when the case is not covered."""
    surrogate_backward = getattr(type(node.surrogate_function), "backward", None)
    covered = (surrogate_backward is not None and x_seq.device.type == "cpu" and x_seq.dtype == torch.float32
               and torch.is_grad_enabled() and not torch.jit.is_tracing() and not torch.compiler.is_compiling())
    if not covered:
        return None
    v = node.v if isinstance(node.v, torch.Tensor) else torch.full_like(x_seq[0], float(node.v))
    if v.shape != x_seq.shape[1:]:
        return None
    spikes, node.v = _TernarySeq.apply(x_seq, v, node.v_threshold, node.beta, node.v_reset,
                                       surrogate_backward, node.surrogate_function.alpha,
                                       getattr(node, "input_scale", 1.0))
    return spikes
