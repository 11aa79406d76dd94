"""Building blocks shared by all model parts. Axis convention everywhere: ``[T, B, C, H, W]``."""

from __future__ import annotations

import torch
from torch import nn

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.neurons import make_neuron


def check_rank(x: torch.Tensor, rank: int, where: str) -> None:
    if x.dim() != rank:
        raise ValueError(f"{where}: expected a rank-{rank} tensor, got shape {tuple(x.shape)}")


def arch_neuron(arch: ArchConfig, *, v_threshold: float | None = None, kind: str | None = None) -> nn.Module:
    """The backbone's neuron (or ``kind``) with the architecture's surrogate gradient, time
    constant and ternary variant. ``v_threshold`` fixes the threshold of a neuron whose paper
    fixes it (the 0.5 after the attention product); otherwise the architecture's applies."""
    return make_neuron(kind or arch.neuron, v_threshold=arch.v_threshold if v_threshold is None else v_threshold,
                       surrogate=arch.surrogate, tau=arch.tau, ternary=arch.ternary)


class ConvBN(nn.Module):
    """Conv2d followed by BatchNorm2d, applied to every time step: ``[T,B,C,H,W] -> [T,B,C',H',W']``.

    A 1x1 ConvBN is the "Linear + BatchNorm1d over channels" of the token-based papers (same
    parameters, same arithmetic).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, *, stride: int = 1, groups: int = 1,
                 bias: bool = False, padding: int | None = None) -> None:
        super().__init__()
        pad = kernel // 2 if padding is None else padding
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))  # [T*B, C', H', W']
        return y.unflatten(0, (t, b))  # [T, B, C', H', W']


class SeqPool(nn.Module):
    """Max or average pooling (3x3, stride 2, pad 1) applied to every time step."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        else:
            raise ValueError(f"pool kind must be 'max' or 'avg', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        return self.pool(x.flatten(0, 1)).unflatten(0, (t, b))  # [T, B, C, H/2, W/2]


class SpikingBranch(nn.Module):
    """A residual branch whose spiking neuron sits where the residual style puts it.

    * ``residual="spike"`` (Spikformer): the branch sees the residual stream as is (spikes, or
      integer spike counts after spike + spike shortcuts) and ends with a neuron, so the
      branch output is spikes: ``out_neuron(body(x))``.
    * ``residual="membrane"`` (Spike-driven Transformer, SpikingResformer): the stream is real
      valued; the branch starts with a neuron and ends with BatchNorm:
      ``body(in_neuron(x))``.

    Subclasses implement ``body(s)``, mapping ``[T,B,C,H,W]`` spikes to real values.
    """

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        membrane = arch.residual == "membrane"
        self.in_neuron = arch_neuron(arch) if membrane else nn.Identity()
        self.out_neuron = nn.Identity() if membrane else arch_neuron(arch)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_neuron(self.body(self.in_neuron(x)))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[T, B, C, H, W] -> [T, B, heads, N, d]`` with N = H*W tokens and d = C / heads."""
    t, b, c, h, w = x.shape
    return x.reshape(t, b, heads, c // heads, h * w).transpose(-1, -2)  # [T, B, heads, N, d]


def merge_heads(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of ``split_heads``: ``[T, B, heads, N, d] -> [T, B, C, H, W]``."""
    t, b, heads, n, d = x.shape
    return x.transpose(-1, -2).reshape(t, b, heads * d, height, width)  # [T, B, C, H, W]
