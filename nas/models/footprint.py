"""How much memory a network needs, worked out before it is built.

An architecture description is a few bytes; the network it describes can need terabytes (a 1 KB
model file within ``nas.models.arch.LIMITS`` describes 2e11 parameters). ``footprint`` builds the network
on PyTorch's ``meta`` device, where tensors have shapes but no storage, and runs one sample
through it: the parameter count is exact, the activation figures are the bytes the forward pass
holds at its peak (inference) and in all (what autograd keeps for a backward pass, an upper
bound). ``check_fits`` compares them with the memory this machine has (or ``SNNAS_MAX_MEMORY``) and
refuses in one line before anything real is allocated.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from snnas.nas.models.arch import ArchConfig

log = logging.getLogger(__name__)

MEMORY_ENV = "SNNAS_MAX_MEMORY"  # bytes, or a number with K, M, G or T (powers of 1024)
_FLOAT_BYTES = 4
_TRAINING_COPIES = 4  # weights, gradients and AdamW's two moments


class ModelTooLarge(ValueError):
    """A network would not fit in memory; the message says how much it needs and how much there is."""


@dataclass(frozen=True)
class Footprint:
    parameters: int
    parameter_bytes: int
    peak_activation_bytes_per_sample: int  # live at once in one inference forward pass
    total_activation_bytes_per_sample: int  # every op output of one forward pass (kept for backward)

    def need_bytes(self, *, batch_size: int, training: bool) -> int:
        if training:
            return self.parameter_bytes * _TRAINING_COPIES + self.total_activation_bytes_per_sample * batch_size
        return self.parameter_bytes + self.peak_activation_bytes_per_sample * batch_size


class _Tally(TorchDispatchMode):
    """Bytes of every op output, and the most alive at once (outputs die with their last reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = self.total = 0

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and not tensor._is_view():
                nbytes = tensor.numel() * tensor.element_size()
                self.live += nbytes
                self.total += nbytes
                weakref.finalize(tensor, self._freed, nbytes)
        self.peak = max(self.peak, self.live)
        return out


@functools.lru_cache(maxsize=64)
def footprint(arch: ArchConfig) -> Footprint:
    """Parameters and activation bytes of ``arch``'s network, from a build on the meta device."""
    from snnas.nas.models import build_model

    with torch.device("meta"):
        model = build_model(arch)
    parameters = sum(p.numel() for p in model.parameters())
    tally = _Tally()
    try:  # one image; event frames [T, 1, C, H, W] hold as many values as an image repeated T times
        x = torch.empty(1, arch.in_channels, arch.img_size, arch.img_size, device="meta")
        with torch.no_grad(), tally:
            model(x)
    except Exception as exc:  # noqa: BLE001 - an op without a meta kernel: parameters still bound the model
        log.debug("meta forward of %s failed (%s); activation memory not estimated", arch, exc)
    return Footprint(parameters, parameters * _FLOAT_BYTES, tally.peak, tally.total)


def memory_limit_bytes() -> int:
    """``SNNAS_MAX_MEMORY`` if set, else the memory this machine has available now (the same reading
    the data limits use: Linux MemAvailable, else free pages), else its physical memory."""
    from snnas.energy.untrusted import available_memory, parse_size

    if os.environ.get(MEMORY_ENV):
        size = parse_size(os.environ[MEMORY_ENV])
        if size is None:
            raise ModelTooLarge(f"{MEMORY_ENV}={os.environ[MEMORY_ENV]!r}: not a size (bytes, or a number with K, "
                                "M, G or T)")
        return size
    return available_memory() or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:,.0f} MiB"


def check_fits(arch: ArchConfig, *, batch_size: int = 1, training: bool = False, what: str = "the network") -> Footprint:
    """The footprint of ``arch``; raises ``ModelTooLarge`` when a batch of ``batch_size`` would not
    fit in ``memory_limit_bytes()`` (training counts gradients, optimiser state and saved activations)."""
    found = footprint(arch)
    need = found.need_bytes(batch_size=batch_size, training=training)
    limit = memory_limit_bytes()
    if need > limit:
        task = f"training with batches of {batch_size}" if training else f"a forward pass of {batch_size} sample(s)"
        raise ModelTooLarge(f"{what}: {found.parameters:,} parameters, about {_gib(need)} for {task}, more than the "
                            f"{_gib(limit)} this machine has available (set {MEMORY_ENV} to change the limit)")
    return found
