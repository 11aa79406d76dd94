"""Spiking neurons: the NEURONS registry and the one place that wraps spikingjelly.

Every neuron is multi-step: it maps a tensor ``[T, ...]`` of input currents to an output of
the same shape, and keeps its membrane potential between calls until ``reset_net`` (from
``spikingjelly.activation_based.functional``) resets it. Models never reset themselves; the
trainer and the energy counter do.

Each registry entry is a factory ``(v_threshold=..., surrogate=...) -> nn.Module`` (the built-in
ones also take ``tau=``, and the ternary neuron ``variant=``) whose class carries ``OUTPUT_KIND``: ``"binary"`` ({0, 1}), ``"ternary"`` ({-1, 0, 1}) or
``"real"``. The energy counter classifies operands from the values it sees, not from this
attribute; the tests use it to check that spikes are what the paper says they are.

Conventions shared by the four seed papers (Spikformer, SpikingResformer, A2OS2A, LSFormer):
tau = 2, V_th = 1, hard reset to 0, decay_input=True, detach_reset=True. ArchConfig's ``tau`` and
``v_threshold`` change them for the backbone's neurons (Auto-Spikformer searches both).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from snnas.nas.models.registry import Registry

# spikingjelly registers custom ops at import time, and torch logs one line per op.
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

from spikingjelly.activation_based import base, neuron, surrogate  # noqa: E402

from snnas.nas.models.fused import fused_lif, fused_ternary  # noqa: E402

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

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU) -> None:
        super().__init__(
            tau=float(tau),
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

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU) -> None:
        del tau  # no leak
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

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU) -> None:
        super().__init__(
            init_tau=float(tau),
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


# Ternary neuron variants: (input scale b, membrane decay a, threshold factor c) of
#     U[t] = H[t-1] + b X[t];  S[t] = sign(U[t]) step(|U[t]| - c V_th);  H[t] = a U[t] (1 - |S[t]|)
# (hard reset to 0 on a spike of either sign). The sources differ, so each is offered:
TERNARY_VARIANTS = {
    # A2OS2A (Guo et al., CVPR 2025), its ternary LIF as written: U = H + X, beta = 1 - 1/tau
    "a2os2a": lambda tau: (1.0, 1.0 - 1.0 / tau, 1.0),
    # Ternary Spike (Guo et al., AAAI 2024), the first author's public code (yfguo91/Ternary-Spike,
    # models/spike_layer.py): mem = 0.25 mem + x, fires at |mem| >= 0.5 V_th; its decay is fixed
    "ternary_spike": lambda tau: (1.0, 0.25, 0.5),
    # snnas: the backbone LIF's charge (decay on the input, X / tau) with signed spikes
    "lif": lambda tau: (1.0 / tau, 1.0 - 1.0 / tau, 1.0),
}


class TernaryLIF(neuron.BaseNode):
    """Ternary LIF, spikes in {-1, 0, 1} (A2OS2A, Guo et al., CVPR 2025; Ternary Spike, AAAI 2024).

    U[t] = H[t-1] + b X[t]
    S[t] = sign(U[t]) * step(|U[t]| - c V_th)
    H[t] = V_reset * S[t] + a * U[t] * (1 - |S[t]|)

    with (b, a, c) from ``TERNARY_VARIANTS[variant]``: ``a2os2a`` (1, 1 - 1/tau, 1), the
    default; ``ternary_spike`` (1, 0.25, 0.5); ``lif`` (1/tau, 1 - 1/tau, 1). With V_reset = 0
    the membrane resets to 0 after a spike of either sign. The gradient of the step uses the
    configured surrogate on |U| - c V_th, carried through sign(U). A spikingjelly ``BaseNode``
    (membrane memory ``v``), so every tool that finds spikingjelly neurons finds it.
    """

    OUTPUT_KIND = "ternary"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU,
                 variant: str = "a2os2a") -> None:
        if variant not in TERNARY_VARIANTS:
            raise ValueError(f"unknown ternary variant {variant!r}; choose from {', '.join(TERNARY_VARIANTS)}")
        scale, beta, factor = TERNARY_VARIANTS[variant](float(tau))
        super().__init__(v_threshold=float(v_threshold) * factor, v_reset=V_RESET,
                         surrogate_function=_surrogate(surrogate), detach_reset=True, step_mode="m")
        self.variant, self.input_scale, self.beta = variant, scale, beta

    def extra_repr(self) -> str:
        variant, scale = getattr(self, "variant", "a2os2a"), getattr(self, "input_scale", 1.0)
        return f"{super().extra_repr()}, variant={variant}, input_scale={scale}, beta={self.beta}"

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:  # [T, ...] -> [T, ...]
        fused = fused_ternary(self, x_seq)  # training on CPU: the same numbers, one graph node
        if fused is not None:
            return fused
        v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x_seq[0], self.v)
        scale = getattr(self, "input_scale", 1.0)  # modules pickled by snnas <= 0.3 have none
        step = _heaviside if torch.jit.is_tracing() else self.surrogate_function
        spikes = []
        for x in x_seq:
            u = v + x if scale == 1.0 else v + x * scale
            s = torch.sign(u) * step(u.abs() - self.v_threshold)
            s_det = s.detach()  # detach_reset, as for the binary neurons
            v = V_RESET * s_det + self.beta * u * (1.0 - s_det.abs())
            spikes.append(s)
        self.v = v
        return torch.stack(spikes)


class ReLUNeuron(nn.Module):
    """The ReLU "neuron" A2OS2A uses for keys: real, non-negative, stateless."""

    OUTPUT_KIND = "real"

    def __init__(self, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU) -> None:
        super().__init__()
        del v_threshold, surrogate, tau  # accepted for a uniform factory signature

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.relu(x_seq)


NEURONS.register("lif")(LIF)
NEURONS.register("if")(IF)
NEURONS.register("plif")(PLIF)
NEURONS.register("ternary")(TernaryLIF)
NEURONS.register("relu")(ReLUNeuron)


def make_neuron(name: str, *, v_threshold: float = V_THRESHOLD, surrogate: str = "sigmoid", tau: float = TAU,
                ternary: str = "a2os2a") -> nn.Module:
    """Build the registered neuron ``name``. ``tau`` and the ternary ``variant`` are passed only
    when they differ from the defaults, so a plug-in neuron with the two-argument factory of
    earlier versions keeps working."""
    extra: dict = {}
    if float(tau) != TAU:
        extra["tau"] = tau
    if name == "ternary" and ternary != "a2os2a":
        extra["variant"] = ternary
    return NEURONS.get(name)(v_threshold=v_threshold, surrogate=surrogate, **extra)
