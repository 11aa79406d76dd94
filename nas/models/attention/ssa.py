"""SSA, Spiking Self-Attention (Zhou et al., "Spikformer", ICLR 2023).

    Q = SN(BN(X W_Q)),  K = SN(BN(X W_K)),  V = SN(BN(X W_V))          all binary
    Y = (Q K^T) V * s     (attn_order="qk_first", the CIFAR code; N x N map)
    Y = Q (K^T V) * s     (attn_order="kv_first", linear in the number of tokens N)
    SSA(X) = proj(SN_{V_th=0.5}(Y)),  s = arch.attn_scale

s is fixed (``attn_scale``, 0.125 by default) or, with ``attn_scale_learnable``, a learned
parameter per layer starting at ``attn_scale``. The official Spikformer code fixes it at 0.125
(ZK-Zhou/spikformer imagenet/model.py, cifar10/model.py) and at 0.25 for CIFAR10-DVS
(cifar10dvs/model.py); Spikingformer and QKFormer's SSA stage keep 0.125 (see ``nas.models.zoo``).
No softmax: every operand of both matmuls is a spike tensor, so the products are
additions (the energy counter charges coincidences). The projection is a 1x1 ConvBN
(= Linear + BatchNorm1d); the block adds the output neuron or not, by residual style.
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import ConvBN, SpikingBranch, arch_neuron, merge_heads, split_heads
from snnas.nas.models.registries import ATTENTION

SSA_SCALE = 0.125  # Spikformer's attention scale: ArchConfig.attn_scale's default
ATTN_THRESHOLD = 0.5  # threshold of the neuron after the attention product (Spikformer)


def spike_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: str) -> torch.Tensor:
    """Softmax-free attention ``[T,B,h,N,d] x3 -> [T,B,h,N,d]`` in the given matmul order."""
    if order == "qk_first":
        return (q @ k.transpose(-1, -2)) @ v  # [.., N, N] @ [.., N, d]
    return q @ (k.transpose(-1, -2) @ v)  # [.., N, d] @ [.., d, d]


def set_attention_scale(module: torch.nn.Module, arch: ArchConfig) -> None:
    """``module.scale``: ``arch.attn_scale`` as a fixed number, or a learned parameter starting
    there (``attn_scale_learnable``). A module pickled before the field has none: it computes with
    Spikformer's 0.125, as it did (the forward passes read ``getattr(self, "scale", SSA_SCALE)``)."""
    if arch.attn_scale_learnable:
        module.scale = torch.nn.Parameter(torch.tensor(float(arch.attn_scale)))
    else:
        module.scale = float(arch.attn_scale)


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
        set_attention_scale(self, arch)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_heads(s)  # [T, B, h, N, d]
        y = spike_attention(q, k, v, self.order) * getattr(self, "scale", SSA_SCALE)
        height, width = s.shape[-2:]
        return self.proj(self.attn_neuron(merge_heads(y, height, width)))
