"""Stems (patch embedding): the STEMS registry. ``[T, B, C_in, H, W] -> [T, B, dims[0], H', W']``
with H' = H / 2^stem_downsample. Each class validates the ArchConfig fields it depends on.

* ``sps``   Spiking Patch Splitting (Spikformer): 4 x [Conv3x3 (no bias) -> BN -> SN], channels
            C_in -> D/8 -> D/4 -> D/2 -> D, with pooling after the last ``stem_downsample``
            convs (2 on CIFAR, 4 on ImageNet); then the relative position embedding
            x = x_feat + SN(BN(Conv3x3(x_feat))). ``stem_pool="spool"`` replaces max pooling of
            spikes by LSFormer's response pooling (average of BN responses, then SN).
* ``scs``   Spiking Convolutional Stem (Spikformer V2). The paper describes it only as "with
            supplementary convolutional layers" and its layer list is not public; snnas's
            interpretation: Conv3x3 -> BN -> SN, then per 2x reduction a stride-2
            Conv3x3 -> BN -> SN followed by a supplementary stride-1 Conv3x3 -> BN -> SN.
* ``sdt``   Spike-driven Transformer's MS-SPS (Yao et al., NeurIPS 2023, official code
            BICLab/Spike-Driven-Transformer module/sps.py): three Conv3x3 -> BN -> SN rounds (max
            pooling of spikes after the pooled ones), then Conv3x3 -> BN (pooled before any
            neuron) giving real-valued x_feat, and the position embedding
            x = BN(Conv3x3(SN(x_feat))) + x_feat: real values for the membrane shortcut.
* ``spikingformer`` Spikingformer's tokenizer (Zhou et al., arXiv 2304.11954, official code):
            Conv3x3 -> BN, then four rounds of SN -> max pooling -> Conv3x3 -> BN (widths D/8 ->
            D/4 -> D/2 -> D -> D); no position residual; real-valued output. Four neurons, where
            SPS has five.
* ``qkformer`` QKFormer's first patch embedding (Zhou et al., NeurIPS 2024, official code
            imagenet/qkformer.py PatchEmbedInit): Conv3x3 (C_in -> D/2) -> BN -> MaxPool -> SN
            = x_feat; Conv3x3 (D/2 -> D) -> BN -> MaxPool -> SN -> Conv3x3 (D -> D) -> BN -> SN,
            plus the shortcut SN(BN(Conv1x1 stride 2 (x_feat))): spike + spike. Reduces by 4
            (stem_downsample 2); pair it with the ``qkformer`` downsampling between stages.
* ``conv7`` SpikingResformer ImageNet stem: Conv7x7 stride 2 (no bias) -> BN -> MaxPool3x3 stride 2
            (no neuron; the first block's neuron spikes). Needs stem_downsample = 2.
* ``conv3`` SpikingResformer CIFAR stem: Conv3x3 stride 1 -> BN. Needs stem_downsample = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from snnas.nas.models.arch import ArchConfig, ArchConfigError
from snnas.nas.models.layers import ConvBN, SeqPool, arch_neuron
from snnas.nas.models.registries import STEMS


class _ConvBNSpike(nn.Module):
    """ConvBN then neuron, with optional pooling of spikes (max) or responses (avg)."""

    def __init__(self, arch: ArchConfig, c_in: int, c_out: int, *, stride: int = 1, pool: str | None = None):
        super().__init__()
        self.conv = ConvBN(c_in, c_out, 3, stride=stride, bias=False)
        self.neuron = arch_neuron(arch)
        self.pool = SeqPool(pool) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool is None:
            return self.neuron(y)
        if isinstance(self.pool.pool, nn.MaxPool2d):
            return self.pool(self.neuron(y))  # max pooling of spikes (Spikformer)
        return self.neuron(self.pool(y))  # response pooling (LSFormer)


def _check_width(arch: ArchConfig) -> None:
    """The check of the stems whose first convolution is D/8 wide (they set ``width_multiple = 8``)."""
    if arch.dims[0] % 8 != 0:
        raise ArchConfigError("dims", f"stem {arch.stem} needs dims[0] divisible by 8, got {arch.dims[0]}")
    if not 0 <= arch.stem_downsample <= 4:
        raise ArchConfigError("stem_downsample", f"stem {arch.stem} supports 0..4 reductions, got {arch.stem_downsample}")


class _EighthsStem(nn.Module):
    """Stems whose widths go D/8, D/4, D/2, D over four convolutions, the last ``stem_downsample`` pooled."""

    width_multiple = 8  # read by the search space's checks (nas/space.py)

    @staticmethod
    def validate(arch: ArchConfig) -> None:
        _check_width(arch)

    @staticmethod
    def widths(arch: ArchConfig) -> list[int]:
        d = arch.dims[0]
        return [arch.in_channels, d // 8, d // 4, d // 2, d]


@STEMS.register("sps")
class SPS(_EighthsStem):
    NUM_CONVS = 4

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        d, widths = arch.dims[0], self.widths(arch)
        pool = "max" if arch.stem_pool == "maxpool" else "avg"
        first_pooled = self.NUM_CONVS - arch.stem_downsample
        self.convs = nn.Sequential(*[
            _ConvBNSpike(arch, widths[i], widths[i + 1], pool=pool if i >= first_pooled else None)
            for i in range(self.NUM_CONVS)
        ])
        self.rpe = ConvBN(d, d, 3, bias=False)
        self.rpe_neuron = arch_neuron(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.convs(x)  # [T, B, D, H', W'] spikes
        return feat + self.rpe_neuron(self.rpe(feat))  # spike + spike: values in {0, 1, 2}


@STEMS.register("sdt")
class SDTStem(_EighthsStem):
    """MS-SPS of the Spike-driven Transformer; the last ``stem_downsample`` rounds pool."""

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        d, widths = arch.dims[0], self.widths(arch)
        first_pooled = 4 - arch.stem_downsample
        self.convs = nn.Sequential(*[
            _ConvBNSpike(arch, widths[i], widths[i + 1], pool="max" if i >= first_pooled else None) for i in range(3)
        ])
        self.last = ConvBN(widths[3], d, 3, bias=False)
        self.last_pool = SeqPool("max") if arch.stem_downsample >= 1 else None
        self.rpe_neuron = arch_neuron(arch)
        self.rpe = ConvBN(d, d, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.last(self.convs(x))  # [T, B, D, H', W'] real (BN output)
        if self.last_pool is not None:
            feat = self.last_pool(feat)  # max pooling of BN responses, before the neuron
        return self.rpe(self.rpe_neuron(feat)) + feat  # real-valued


@STEMS.register("spikingformer")
class SpikingformerStem(_EighthsStem):
    """Spikingformer's tokenizer; the last ``stem_downsample`` rounds pool."""

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        widths = self.widths(arch)[1:] + [arch.dims[0]]
        self.first = ConvBN(arch.in_channels, widths[0], 3, bias=False)
        first_pooled = 4 - arch.stem_downsample
        self.rounds = nn.ModuleList()
        for i in range(4):
            layers = nn.Sequential()
            layers.add_module("neuron", arch_neuron(arch))
            if i >= first_pooled:
                layers.add_module("pool", SeqPool("max"))  # max pooling of spikes
            layers.add_module("conv", ConvBN(widths[i], widths[i + 1], 3, bias=False))
            self.rounds.append(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        for layers in self.rounds:
            x = layers(x)
        return x  # [T, B, D, H', W'] real (BN output)


@STEMS.register("scs")
class SCS(nn.Module):
    width_multiple = 8  # its first convolution is max(D >> n, D // 8) wide

    @staticmethod
    def validate(arch: ArchConfig) -> None:
        _check_width(arch)

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        d, n = arch.dims[0], arch.stem_downsample
        width = max(d >> n, d // 8)
        layers = [_ConvBNSpike(arch, arch.in_channels, width)]
        for j in range(n):
            out = d >> (n - 1 - j)
            layers.append(_ConvBNSpike(arch, width, out, stride=2))
            layers.append(_ConvBNSpike(arch, out, out))  # supplementary conv
            width = out
        if width != d:  # n == 0: lift to the embedding width
            layers.append(_ConvBNSpike(arch, width, d))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class _PoolThenSpike(nn.Module):
    """ConvBN -> max pooling of the BN responses -> neuron (QKFormer's order)."""

    def __init__(self, arch: ArchConfig, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBN(c_in, c_out, 3, bias=False)
        self.pool = SeqPool("max")
        self.neuron = arch_neuron(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.pool(self.conv(x)))


class StridedShortcut(nn.Module):
    """SN(BN(Conv1x1, stride 2)): QKFormer's patch-embedding shortcut."""

    def __init__(self, arch: ArchConfig, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBN(c_in, c_out, 1, stride=2, bias=False)
        self.neuron = arch_neuron(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.conv(x))


@STEMS.register("qkformer")
class QKFormerStem(nn.Module):
    width_multiple = 2  # its first stage is D/2 wide

    @staticmethod
    def validate(arch: ArchConfig) -> None:
        if arch.stem_downsample != 2:
            raise ArchConfigError("stem_downsample", f"stem qkformer reduces by 4 (stem_downsample 2), got {arch.stem_downsample}")
        if arch.dims[0] % 2:
            raise ArchConfigError("dims", f"stem qkformer needs an even dims[0], got {arch.dims[0]}")

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        d = arch.dims[0]
        self.first = _PoolThenSpike(arch, arch.in_channels, d // 2)
        self.second = _PoolThenSpike(arch, d // 2, d)
        self.third = _ConvBNSpike(arch, d, d)
        self.shortcut = StridedShortcut(arch, d // 2, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.first(x)  # [T, B, D/2, H/2, W/2] spikes
        return self.third(self.second(feat)) + self.shortcut(feat)  # spike + spike, [T, B, D, H/4, W/4]


@STEMS.register("conv7")
class Conv7Stem(nn.Module):
    @staticmethod
    def validate(arch: ArchConfig) -> None:
        if arch.stem_downsample != 2:
            raise ArchConfigError("stem_downsample", f"stem conv7 reduces by 4 (stem_downsample 2), got {arch.stem_downsample}")

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.conv = ConvBN(arch.in_channels, arch.dims[0], 7, stride=2, bias=False)
        self.pool = SeqPool("max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


@STEMS.register("conv3")
class Conv3Stem(nn.Module):
    @staticmethod
    def validate(arch: ArchConfig) -> None:
        if arch.stem_downsample != 0:
            raise ArchConfigError("stem_downsample", f"stem conv3 does not downsample (stem_downsample 0), got {arch.stem_downsample}")

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.conv = ConvBN(arch.in_channels, arch.dims[0], 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
