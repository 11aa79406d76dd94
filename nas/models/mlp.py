"""Feed-forward branches: the MLPS registry.

* ``mlp``   Spikformer's MLP: fc1 (D -> rD) + BN, neuron, fc2 (rD -> D) + BN.
* ``gwffn`` SpikingResformer's group-wise spiking FFN:
            U = BN(Conv1x1_{C->rC}(S));  G = BN(Conv3x3_grouped(SN(U))) + U;  Z = BN(Conv1x1_{rC->C}(SN(G)))
            with groups of ``arch.group_width`` channels (64 in the paper) and an inner
            membrane shortcut.

Both are ``SpikingBranch`` bodies: the block adds the input or output neuron by residual style.
"""

from __future__ import annotations

import torch

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import ConvBN, SpikingBranch, arch_neuron
from snnas.nas.models.registries import MLPS


@MLPS.register("mlp")
class SpikformerMLP(SpikingBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        dim = arch.dims[stage]
        hidden = dim * arch.mlp_ratio
        self.fc1 = ConvBN(dim, hidden, 1, bias=arch.proj_bias)
        self.hidden_neuron = arch_neuron(arch)
        self.fc2 = ConvBN(hidden, dim, 1, bias=arch.proj_bias)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.hidden_neuron(self.fc1(s)))


@MLPS.register("gwffn")
class GWFFN(SpikingBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        dim = arch.dims[stage]
        hidden = dim * arch.mlp_ratio
        self.up = ConvBN(dim, hidden, 1, bias=arch.proj_bias)
        self.conv_neuron = arch_neuron(arch)
        self.conv = ConvBN(hidden, hidden, 3, groups=hidden // arch.group_width, bias=arch.proj_bias)
        self.down_neuron = arch_neuron(arch)
        self.down = ConvBN(hidden, dim, 1, bias=arch.proj_bias)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        u = self.up(s)  # [T, B, rC, H, W]
        g = self.conv(self.conv_neuron(u)) + u  # inner membrane shortcut
        return self.down(self.down_neuron(g))
