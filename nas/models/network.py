"""The spiking vision transformer assembled from an ArchConfig: ``build_model(arch)``.

    input [B, C, H, W] (repeated T times) or [T, B, C, H, W] (event frames)
    -> stem -> stage 0 blocks -> (downsample -> stage i blocks) ... -> mean over T and space
    -> Linear -> logits [B, classes]
    (``head_neuron``: mean over space -> neuron -> Linear at every step -> mean over T, the
    Spike-driven Transformer's head, so the classifier sees spikes)
    (``sum_channel``: the sum of the input channels joins them before the stem, as
    SpikingResformer's DVS pipeline feeds ON, OFF and ON + OFF event counts)

Block: ``x = x + attention(x); x = x + mlp(x)``; what the branches see (spikes or membrane
values) follows ``arch.residual`` (see ``SpikingBranch``). The classifier is applied once to
the mean over time and space, which equals the papers' per-step classifier averaged over T
(both are linear).
"""

from __future__ import annotations

import torch
from torch import nn

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.layers import arch_neuron
from snnas.nas.models.registries import ATTENTION, DOWNSAMPLE, MLPS, STEMS, check_parts


class Block(nn.Module):
    def __init__(self, arch: ArchConfig, stage: int) -> None:
        super().__init__()
        self.attn = ATTENTION.get(arch.attention[stage])(arch, stage)
        self.mlp = MLPS.get(arch.mlp)(arch, stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, C, H, W]
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikingTransformer(nn.Module):
    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.arch = arch
        # the stem's convolution takes one channel more when the channel sum joins the input
        self.stem = STEMS.get(arch.stem)(arch.replace(in_channels=arch.in_channels + 1) if arch.sum_channel else arch)
        self.stages = nn.ModuleList()
        for i, depth in enumerate(arch.depths):
            stage = nn.Sequential()
            if i > 0:
                stage.add_module("downsample", DOWNSAMPLE.get(arch.downsample)(arch, i))
            for j in range(depth):
                stage.add_module(f"block{j}", Block(arch, i))
            self.stages.append(stage)
        self.head_neuron = arch_neuron(arch) if arch.head_neuron else None
        self.head = nn.Linear(arch.dims[-1], arch.num_classes, bias=arch.head_bias)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Check the input and return ``[T, B, C, H, W]`` frames (images repeated T times)."""
        a = self.arch
        if x.dim() == 4:  # [B, C, H, W] static images: direct coding
            x = x.unsqueeze(0).repeat(a.time_steps, 1, 1, 1, 1)  # [T, B, C, H, W]
        elif x.dim() != 5:
            raise ValueError(f"expected [B, C, H, W] images or [T, B, C, H, W] frames, got shape {tuple(x.shape)}")
        if x.shape[2] != a.in_channels or x.shape[3] != a.img_size or x.shape[4] != a.img_size:
            raise ValueError(
                f"expected {a.in_channels} channels of {a.img_size}x{a.img_size}, got shape {tuple(x.shape)}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.frames(x)
        if self.arch.sum_channel:
            x = torch.cat([x, x.sum(dim=2, keepdim=True)], dim=2)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        if self.head_neuron is not None:
            spikes = self.head_neuron(x.mean(dim=(3, 4)))  # [T, B, C] spikes
            return self.head(spikes).mean(dim=0)  # classifier on spikes at every step -> [B, classes]
        return self.head(x.mean(dim=(0, 3, 4)))  # [T, B, C, H, W] -> [B, C] -> [B, classes]


def build_model(arch: ArchConfig) -> SpikingTransformer:
    """Build the network an ArchConfig describes (on the CPU; move it with ``.to(device)``).
    Raises ``ArchConfigError`` naming the field when a part it names is not registered."""
    check_parts(arch)
    return SpikingTransformer(arch)
