"""Saving one model every way users save it, and reading each file back the way ``snnas energy`` does."""

from __future__ import annotations

from pathlib import Path

import torch
from spikingjelly.activation_based.functional import reset_net
from torch import nn

from snnas.energy.loading import load_module_file

FORMATS = ("eager", "pickle", "export", "torchscript")


def awake(model: nn.Module, seed: int = 1) -> nn.Module:
    """BatchNorm statistics that make a randomly initialised spiking network fire (10-60% of neurons)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None:
            module.running_var.copy_(0.01 + 0.05 * torch.rand(module.running_var.shape, generator=generator))
            module.running_mean.copy_(-0.1 * torch.rand(module.running_mean.shape, generator=generator))
    return model.eval()


def save_every_way(model: nn.Module, x: torch.Tensor, folder: Path, *, batch_dim: int = 0) -> dict:
    """format -> (module as loaded from its file, module types or None)."""
    model.eval()
    reset_net(model)
    loaded = {"eager": (model, None)}
    torch.save(model, folder / "model.pkl")
    loaded["pickle"] = (load_module_file(folder / "model.pkl", trust_pickle=True).module, None)
    reset_net(model)
    program = torch.export.export(model, (x,), dynamic_shapes=({batch_dim: torch.export.Dim.AUTO},))
    torch.export.save(program, folder / "model.pt2")
    export = load_module_file(folder / "model.pt2")
    loaded["export"] = (export.module, export.module_types)
    reset_net(model)
    torch.jit.trace(model, (x,), check_trace=False).save(str(folder / "model.ts"))
    loaded["torchscript"] = (load_module_file(folder / "model.ts").module, None)
    reset_net(model)
    return loaded
