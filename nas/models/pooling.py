"""Downsampling between stages: the DOWNSAMPLE registry. Each halves the feature map and maps
``dims[stage-1]`` to ``dims[stage]`` channels.

* ``conv``    SpikingResformer: BN(Conv3x3, stride 2) on spikes.
* ``maxpool`` Spikformer-style: BN(Conv3x3), then max pooling (3x3, stride 2) of the spikes
              (in membrane style, of the BN responses, since the neuron comes first).
* ``spool``   Spiking Response Pooling (LSFormer, snnas interpretation; the formula is not
              public): BN(Conv3x3), average the responses of each 3x3 region (stride 2),
              then spike. Every response in the region contributes, where max pooling keeps
              only the strongest.
* ``qkformer`` QKFormer's patch embedding stage (official code PatchEmbeddingStage):
              Conv3x3 -> BN -> MaxPool -> SN -> Conv3x3 -> BN -> SN, plus the shortcut
              SN(BN(Conv1x1 stride 2)) of the input: spike + spike, as QKFormer's spike-shortcut
              blocks expect (with the membrane style the next block's neuron reads the sum).
"""

from __future__ import annotations

import torch
from torch import nn

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import ConvBN, SeqPool, SpikingBranch
from snnas.nas.models.registries import DOWNSAMPLE


@DOWNSAMPLE.register("conv")
class ConvDownsample(SpikingBranch):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        self.conv = ConvBN(arch.dims[stage - 1], arch.dims[stage], 3, stride=2, bias=False)

    def body(self, s: torch.Tensor) -> torch.Tensor:
        return self.conv(s)


class _PoolDownsample(SpikingBranch):
    pool_kind = "max"
    pool_spikes = True  # True: neuron then pool (max pooling of spikes); False: pool then neuron

    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__(arch)
        self.conv = ConvBN(arch.dims[stage - 1], arch.dims[stage], 3, bias=False)
        self.pool = SeqPool(self.pool_kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.in_neuron(x))
        if self.pool_spikes:
            return self.pool(self.out_neuron(y))
        return self.out_neuron(self.pool(y))


@DOWNSAMPLE.register("maxpool")
class MaxPoolDownsample(_PoolDownsample):
    pool_kind = "max"
    pool_spikes = True


@DOWNSAMPLE.register("spool")
class SPoolingDownsample(_PoolDownsample):
    pool_kind = "avg"
    pool_spikes = False


@DOWNSAMPLE.register("qkformer")
class QKFormerDownsample(nn.Module):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__()
        from snnas.nas.models.stems import StridedShortcut, _ConvBNSpike, _PoolThenSpike

        c_in, c_out = arch.dims[stage - 1], arch.dims[stage]
        self.first = _PoolThenSpike(arch, c_in, c_out)
        self.second = _ConvBNSpike(arch, c_out, c_out)
        self.shortcut = StridedShortcut(arch, c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x)) + self.shortcut(x)  # [T, B, C', H/2, W/2]
