"""A2OS2A, Accurate Addition-Only Spiking Self-Attention (Guo et al., "Spiking Transformer:
Introducing Accurate Addition-Only Spiking Self-Attention for Transformer", CVPR 2025).

    Q = SN_binary(BN(X W_Q))    in {0, 1}       (the backbone's spiking neuron)
    K = ReLU(BN(X W_K))         real, >= 0
    V = SN_ternary(BN(X W_V))   in {-1, 0, 1}
    A2OS2A(Q, K, V) = proj(SN(Q K^T V))          no softmax, no scale

Binary Q makes Q K^T sums of selected K values and ternary V makes (Q K^T) V signed sums:
no real-by-real product. No scale: the paper's abstract says the method "eliminates the need for
softmax and scaling operations" (so ``attn_scale`` is not read here). No official code is
public: the output neuron (the backbone's neuron at threshold 1) and the projection (1x1 ConvBN)
are snnas's reading of the paper, which builds on the Spike-driven Transformer backbone
(membrane shortcut).

Q and V follow two readings, and they charge differently. Q is the backbone's LIF, as the
Spike-driven Transformer's official code has it (spikingjelly LIF, decay_input=True: the input
enters as X / tau). V is the ternary LIF as A2OS2A's equations write it (``ternary: a2os2a``:
U = H + X, the input enters whole). At tau = 2 a fresh V neuron therefore fires from |X| = 1 and
a fresh Q neuron from X = 2: V fires about twice as easily. ``ternary: lif`` makes them
consistent (V charges X / tau too); the zoo keeps the paper's equations (docs/models.md).
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.attention.ssa import QKVBranch, spike_attention
from snnas.nas.models.layers import arch_neuron, merge_heads
from snnas.nas.models.registries import ATTENTION


@ATTENTION.register("a2os2a")
class A2OS2A(QKVBranch):
    k_neuron_kind = "relu"
    v_neuron_kind = "ternary"

    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch, stage)
        self.attn_neuron = arch_neuron(arch)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        height, width = s.shape[-2:]
        q, k, v = self.qkv_heads(s)  # [T, B, h, N, d]
        y = spike_attention(q, k, v, self.order)
        return self.proj(self.attn_neuron(merge_heads(y, height, width)))
