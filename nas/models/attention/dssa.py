"""DSSA, Dual Spike Self-Attention (Shi, Hao & Yu, "SpikingResformer", CVPR 2024).

    S  = spikes of the residual stream                       [T, B, C, H, W], binary
    Y  = BN(Conv_{p x p, stride p, C -> 2C}(S))             real; per head split into Y1, Y2 [d, N']
    A  = SN((Y1^T S) * c1)                                   [N', HW] binary attention map
    O  = SN((Y2 A) * c2)                                     [d, HW] binary
    DSSA(S) = BN(Conv1x1(O))
    c1 = 1 / sqrt(r_S * d),   c2 = 1 / sqrt(r_A * N'),   N' = HW / p^2

Every matmul has one spike operand ("dual spike"), so it is addition-only. r_S and r_A are
per-head firing rates of S and A, kept as buffers: initialised from the first training batch,
then an exponential moving average (momentum 0.999) updated in training only and frozen in
eval. Before any training step (a freshly built model evaluated as is) the current batch's
rates are used and nothing is stored; ``calibrate_rates`` stores them from one batch instead,
as the first training step would. Without this scaling the paper reports no convergence.

Whether the buffers hold rates is mirrored in a Python flag, so that evaluation has no branch
on a tensor's value (``torch.export`` and TorchScript tracing then see one fixed path).
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import ConvBN, SpikingBranch, arch_neuron
from snnas.nas.models.registries import ATTENTION

RATE_MOMENTUM = 0.999  # EMA momentum of the firing-rate buffers (SpikingResformer)
MIN_RATE = 1e-6  # guards 1/sqrt(rate) when a layer is silent


@ATTENTION.register("dssa")
class DSSA(SpikingBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        dim = arch.dims[stage]
        self.heads = arch.heads[stage]
        self.patch = arch.patch_sizes[stage]
        self.w = ConvBN(dim, 2 * dim, self.patch, stride=self.patch, padding=0, bias=arch.qkv_bias)
        self.attn_neuron = arch_neuron(arch)
        self.o_neuron = arch_neuron(arch)
        self.proj = ConvBN(dim, dim, 1, bias=arch.proj_bias)
        self.register_buffer("rate_s", torch.zeros(self.heads))
        self.register_buffer("rate_a", torch.zeros(self.heads))
        self.register_buffer("rates_initialised", torch.zeros((), dtype=torch.bool))
        self._initialised = False  # mirrors the buffer: evaluation branches on a Python value

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialised = bool(self.rates_initialised)

    def _rate(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Per-head firing rate of ``x`` [T, B, h, *, *]: batch value in training, EMA in eval.
        In eval with stored rates nothing is computed from ``x`` (the energy counter would charge
        an unused mean, which a traced or exported program drops)."""
        stored = getattr(self, name)
        if not self.training and self._initialised:
            return stored.clone()
        batch_rate = x.detach().abs().float().mean(dim=(0, 1, 3, 4))  # [h]
        if self.training:
            if self._initialised:
                stored.mul_(RATE_MOMENTUM).add_(batch_rate, alpha=1 - RATE_MOMENTUM)
            else:
                stored.copy_(batch_rate)
            return stored.clone()
        return batch_rate

    def body(self, s: torch.Tensor) -> torch.Tensor:
        t, b, c, height, width = s.shape
        d = c // self.heads
        y = self.w(s)  # [T, B, 2C, H/p, W/p]
        n_prime = y.shape[-1] * y.shape[-2]
        y = y.reshape(t, b, self.heads, 2 * d, n_prime)  # [T, B, h, 2d, N']
        y1, y2 = y[:, :, :, :d], y[:, :, :, d:]  # each [T, B, h, d, N']
        x = s.reshape(t, b, self.heads, d, height * width)  # [T, B, h, d, HW]

        c1 = (self._rate("rate_s", x) * d).clamp_min(MIN_RATE).rsqrt().view(1, 1, -1, 1, 1)
        a = self.attn_neuron((y1.transpose(-1, -2) @ x) * c1)  # [T, B, h, N', HW]
        c2 = (self._rate("rate_a", a) * n_prime).clamp_min(MIN_RATE).rsqrt().view(1, 1, -1, 1, 1)
        if self.training:
            self.rates_initialised.fill_(True)
            self._initialised = True
        o = self.o_neuron((y2 @ a) * c2)  # [T, B, h, d, HW]
        return self.proj(o.reshape(t, b, c, height, width))


def calibrate_rates(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Store firing rates from the batch ``x`` in every DSSA whose buffers hold none yet, as the
    first training step would, leaving the rest of the model in eval mode. Returns their number."""
    from spikingjelly.activation_based.functional import reset_net

    fresh = [m for m in model.modules() if isinstance(m, DSSA) and not m._initialised]
    if not fresh:
        return 0
    was_training = model.training
    model.eval()
    for module in fresh:
        module.training = True  # this module only: its BatchNorms keep their running statistics
    try:
        with torch.no_grad():
            reset_net(model)
            model(x)
    finally:
        model.train(was_training)
        reset_net(model)
    return len(fresh)
