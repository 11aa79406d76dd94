"""Spiking neurons: the NEURONS registry and the one place that wraps spikingjelly.

Every neuron is multi-step: it maps a tensor ``[T, ...]`` of input currents to an output of
the same shape, and keeps its membrane potential between calls until ``reset_net`` (from
``spikingjelly.activation_based.functional``) resets it. Models never reset themselves; the
trainer and the energy counter do.

Each registry entry is a factory ``(v_threshold=..., surrogate=...) -> nn.Module`` whose
class carries ``OUTPUT_KIND``: ``"binary"`` ({0, 1}), ``"ternary"`` ({-1, 0, 1}) or
``"real"``. The energy counter classifies operands from the values it sees, not from this
attribute; the tests use it to check that spikes are what the paper says they are.

Conventions shared by the four seed papers (Spikformer, SpikingResformer, A2OS2A, LSFormer):
tau = 2, V_th = 1, hard reset to 0, decay_input=True, detach_reset=True.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from nas.registry import Registry

# spikingjelly registers custom ops at import time, and torch logs one line per op.
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

from spikingjelly.activation_based import base, neuron, surrogate  # noqa: E402

from nas.models.fused import fused_lif, fused_ternary  # noqa: E402

TAU = 2.0  # membrane time constant shared by all seed papers
V_THRESHOLD = 1.0  # firing threshold shared by all seed papers
V_RESET = 0.0  # hard reset value

SURROGATES: Registry[type] = Registry("surrogate")
SURROGATES.register("sigmoid")(surrogate.Sigmoid)  # Spikformer
SURROGATES.register("atan")(surrogate.ATan)  # SpikingResformer

NEURONS: Registry = Registry("neuron")


def _surrogate(name: str):
    return SURROGATES.get(name)()


class LIF(neuron.LIFNode):
    """Leaky integrate-and-fire: H = V + (X - V)/tau, S = step(H - V_th), hard reset.
    Trains through the fused neuron on CPU (``nas.models.fused``): same numbers, fewer graph nodes."""

    OUTPUT_KIND = "binary"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> None:
        super().__init__(
            tau=TAU,
            decay_input=True,
            v_threshold=v_threshold,
            v_reset=V_RESET,
            surrogate_function=_surrogate(surrogate),
            detach_reset=True,
            step_mode="m",
        )

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        fused = fused_lif(self, x_seq) if not args and not kwargs else None
        return fused if fused is not None else super().multi_step_forward(x_seq, *args, **kwargs)


class IF(neuron.IFNode):
    """Integrate-and-fire without leak: H = V + X."""

    OUTPUT_KIND = "binary"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> None:
        super().__init__(
            v_threshold=v_threshold,
            v_reset=V_RESET,
            surrogate_function=_surrogate(surrogate),
            detach_reset=True,
            step_mode="m",
        )


class PLIF(neuron.ParametricLIFNode):
    """Parametric LIF (Fang et al., ICCV 2021): a learnable time constant, initialised at 2."""

    OUTPUT_KIND = "binary"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> None:
        super().__init__(
            init_tau=TAU,
            decay_input=True,
            v_threshold=v_threshold,
            v_reset=V_RESET,
            surrogate_function=_surrogate(surrogate),
            detach_reset=True,
            step_mode="m",
        )


def _heaviside(x: torch.Tensor) -> torch.Tensor:
    """The surrogates' forward value, for TorchScript tracing (which cannot record their autograd)."""
    return (x >= 0).to(x)


class TernaryLIF(neuron.BaseNode):
    """Ternary LIF of the A2OS2A Spiking Transformer (Guo et al., CVPR 2025), spikes in {-1, 0, 1}.

    U[t] = H[t-1] + X[t]
    S[t] = sign(U[t]) * step(|U[t]| - V_th)
    H[t] = V_reset * S[t] + beta * U[t] * (1 - |S[t]|),   beta = 1 - 1/tau

    With V_reset = 0 the membrane resets to 0 after a spike of either sign. The gradient of
    the step uses the configured surrogate on |U| - V_th, carried through sign(U). A spikingjelly
    ``BaseNode`` (membrane memory ``v``), so every tool that finds spikingjelly neurons finds it.
    """

    OUTPUT_KIND = "ternary"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> None:
        super().__init__(v_threshold=float(v_threshold), v_reset=V_RESET, surrogate_function=_surrogate(surrogate),
                         detach_reset=True, step_mode="m")
        self.beta = 1.0 - 1.0 / TAU

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:  # [T, ...] -> [T, ...]
        fused = fused_ternary(self, x_seq)  # training on CPU: the same numbers, one graph node
        if fused is not None:
            return fused
        v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x_seq[0], self.v)
        step = _heaviside if torch.jit.is_tracing() else self.surrogate_function
        spikes = []
        for x in x_seq:
            u = v + x
            s = torch.sign(u) * step(u.abs() - self.v_threshold)
            s_det = s.detach()  # detach_reset, as for the binary neurons
            v = V_RESET * s_det + self.beta * u * (1.0 - s_det.abs())
            spikes.append(s)
        self.v = v
        return torch.stack(spikes)


class ReLUNeuron(nn.Module):
    """The ReLU "neuron" A2OS2A uses for keys: real, non-negative, stateless."""

    OUTPUT_KIND = "real"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> None:
        super().__init__()
        del v_threshold, surrogate  # accepted for a uniform factory signature

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.relu(x_seq)


NEURONS.register("lif")(LIF)
NEURONS.register("if")(IF)
NEURONS.register("plif")(PLIF)
NEURONS.register("ternary")(TernaryLIF)
NEURONS.register("relu")(ReLUNeuron)


def make_neuron(name: str, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid") -> nn.Module:
    """Build the registered neuron ``name``."""
    return NEURONS.get(name)(v_threshold=v_threshold, surrogate=surrogate)
