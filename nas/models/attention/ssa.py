"""SSA, Spiking Self-Attention (Zhou et al., "Spikformer", ICLR 2023).

    Q = SN(BN(X W_Q)),  K = SN(BN(X W_K)),  V = SN(BN(X W_V))          all binary
    Y = (Q K^T) V * s     (attn_order="qk_first", the CIFAR code; N x N map)
    Y = Q (K^T V) * s     (attn_order="kv_first", linear in the number of tokens N)
    SSA(X) = proj(SN_{V_th=0.5}(Y)),  s = 0.125

No softmax: every operand of both matmuls is a spike tensor, so the products are
additions (the energy counter charges coincidences). The projection is a 1x1 ConvBN
(= Linear + BatchNorm1d); the block adds the output neuron or not, by residual style.
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import ConvBN, SpikingBranch, arch_neuron, merge_heads, split_heads
from snnas.nas.models.registries import ATTENTION

SSA_SCALE = 0.125  # fixed attention scale of Spikformer
ATTN_THRESHOLD = 0.5  # threshold of the neuron after the attention product (Spikformer)


def spike_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: str) -> torch.Tensor:
    """Softmax-free attention ``[T,B,h,N,d] x3 -> [T,B,h,N,d]`` in the given matmul order."""
    if order == "qk_first":
        return (q @ k.transpose(-1, -2)) @ v  # [.., N, N] @ [.., N, d]
    return q @ (k.transpose(-1, -2) @ v)  # [.., N, d] @ [.., d, d]


class QKVBranch(SpikingBranch):
    """Shared part of the global attentions: Q/K/V 1x1 ConvBN projections and the output one."""

    q_neuron_kind: str | None = None  # None: the backbone neuron
    k_neuron_kind: str | None = None
    v_neuron_kind: str | None = None

    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        dim = arch.dims[stage]
        self.heads = arch.heads[stage]
        self.order = arch.attn_order
        self.q = ConvBN(dim, dim, 1, bias=arch.qkv_bias)
        self.k = ConvBN(dim, dim, 1, bias=arch.qkv_bias)
        self.v = ConvBN(dim, dim, 1, bias=arch.qkv_bias)
        self.q_neuron = arch_neuron(arch, kind=self.q_neuron_kind)
        self.k_neuron = arch_neuron(arch, kind=self.k_neuron_kind)
        self.v_neuron = arch_neuron(arch, kind=self.v_neuron_kind)
        self.proj = ConvBN(dim, dim, 1, bias=arch.proj_bias)

    def qkv(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neuron outputs Q, K, V, each ``[T, B, C, H, W]``."""
        return self.q_neuron(self.q(s)), self.k_neuron(self.k(s)), self.v_neuron(self.v(s))

    def qkv_heads(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q, K, V split into heads, each ``[T, B, heads, N, d]``."""
        q, k, v = self.qkv(s)
        return split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads)


@ATTENTION.register("ssa")
class SSA(QKVBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch, stage)
        self.attn_neuron = arch_neuron(arch, v_threshold=ATTN_THRESHOLD)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_heads(s)  # [T, B, h, N, d]
        y = spike_attention(q, k, v, self.order) * SSA_SCALE
        height, width = s.shape[-2:]
        return self.proj(self.attn_neuron(merge_heads(y, height, width)))
