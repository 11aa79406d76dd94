"""SDSA, Spike-Driven Self-Attention (Yao et al., "Spike-driven Transformer", NeurIPS 2023;
layer order as the official code, BICLab/Spike-Driven-Transformer module/ms_conv.py, and
spikingjelly 2.0's ``SpikeDrivenSelfAttention``).

    Q, K, V = SN(BN(X W_Q)), SN(BN(X W_K)), SN(BN(X W_V))        binary, per head [N, d]
    A = SN_{V_th=0.5}( sum over tokens of (K * V) )              binary, per head [1, d]
    SDSA(X) = BN(Conv1x1(Q * A))

No matrix product: K * V and Q * A are masks (a binary operand selects), the token sum is
additions, so the cost is linear in the number of tokens N. The official code also declares a
"talking heads" Conv1d that its forward pass never uses; it is left out here (h^2 weights per
block, below the papers' rounding of parameter counts). The block adds the output neuron or
not by residual style (the Spike-driven Transformer uses the membrane shortcut).
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.attention.ssa import ATTN_THRESHOLD, QKVBranch
from snnas.nas.models.layers import arch_neuron, merge_heads
from snnas.nas.models.registries import ATTENTION


@ATTENTION.register("sdsa")
class SDSA(QKVBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch, stage)
        self.attn_neuron = arch_neuron(arch, v_threshold=ATTN_THRESHOLD)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        height, width = s.shape[-2:]
        q, k, v = self.qkv_heads(s)  # [T, B, h, N, d]
        a = self.attn_neuron((k * v).sum(dim=-2, keepdim=True))  # [T, B, h, 1, d] binary
        return self.proj(merge_heads(q * a, height, width))
