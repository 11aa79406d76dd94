"""Q-K attention of QKFormer (Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K
Attention", NeurIPS 2024; layer order as the official code, zhouchenlin2096/QKFormer
imagenet/qkformer.py, and spikingjelly 2.0's ``QKAttention``).

    Q, K = SN(BN(X W_Q)), SN(BN(X W_K))                   binary, per head [d, N]
    ``qk``         token attention:   A = SN_{V_th=0.5}(sum over the d channels of Q)   [1, N]
    ``qk_channel`` channel attention: A = SN_{V_th=0.5}(sum over the N tokens of Q)     [d, 1]
    QK(X) = BN(Conv1x1(A * K))

Two spike projections instead of three, and no product of two spike matrices: the attention
vector A masks K (linear in N). QKFormer uses token attention in its first two stages and
Spikformer's SSA in the last; the hierarchical stems it pairs with are ``nas.models.stems``
``qkformer`` and ``nas.models.pooling`` ``qkformer``. The block adds the output neuron or not
by residual style (QKFormer uses the spike shortcut).
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.attention.ssa import ATTN_THRESHOLD
from snnas.nas.models.layers import ConvBN, SpikingBranch, arch_neuron, merge_heads, split_heads
from snnas.nas.models.registries import ATTENTION


class _QKAttention(SpikingBranch):
    sum_over = -1  # axis of [T, B, h, N, d] summed into the attention vector

    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        dim = arch.dims[stage]
        self.heads = arch.heads[stage]
        self.q = ConvBN(dim, dim, 1, bias=arch.qkv_bias)
        self.k = ConvBN(dim, dim, 1, bias=arch.qkv_bias)
        self.q_neuron = arch_neuron(arch)
        self.k_neuron = arch_neuron(arch)
        self.attn_neuron = arch_neuron(arch, v_threshold=ATTN_THRESHOLD)
        self.proj = ConvBN(dim, dim, 1, bias=arch.proj_bias)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        height, width = s.shape[-2:]
        q = split_heads(self.q_neuron(self.q(s)), self.heads)  # [T, B, h, N, d] binary
        k = split_heads(self.k_neuron(self.k(s)), self.heads)
        a = self.attn_neuron(q.sum(dim=self.sum_over, keepdim=True))  # token [.., N, 1] / channel [.., 1, d]
        return self.proj(merge_heads(a * k, height, width))


@ATTENTION.register("qk")
class QKTokenAttention(_QKAttention):
    sum_over = -1  # over the head's d channels: one gate per token


@ATTENTION.register("qk_channel")
class QKChannelAttention(_QKAttention):
    sum_over = -2  # over the N tokens: one gate per channel
