"""Parameter counts under the conventions papers use.

* ``all``    every trainable parameter, BatchNorm affine included (Spikformer's tables).
* ``no_bn``  BatchNorm affine parameters excluded, as if folded into the preceding layer
             (SpikingResformer's tables for Ti and S).
"""

from __future__ import annotations

from torch import nn

CONVENTIONS = ("all", "no_bn")


def count_parameters(model: nn.Module, *, convention: str = "all") -> int:
    """Number of trainable parameters of ``model`` under ``convention``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown parameter convention {convention!r}; choose from {', '.join(CONVENTIONS)}")
    total = 0
    for module in model.modules():
        if convention == "no_bn" and isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
    return total
