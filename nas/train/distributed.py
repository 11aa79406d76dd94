"""Training on several processes (``torchrun``): the process group, each rank's share of a
global batch, batch norm synchronised across ranks, and sums of metrics over ranks.

snnas keeps the training data in memory, so every rank holds the whole data set and the same
random generators; every rank draws the same epoch order and augments the same global batch,
then trains on its own contiguous slice of it (rank r takes the r-th of ``world`` near-equal
slices). The global batch (``--batch-size``) is therefore the same on any number of ranks, and
with ``SyncedBatchNorm`` (statistics over the global batch) and each rank's loss weighted by its
share, the gradient DistributedDataParallel averages is the gradient of the one-process run: the
numbers differ only by the order floating-point sums are added in.

torch's own ``SyncBatchNorm`` refuses CPU tensors, so the gloo backend could not use it;
``SyncedBatchNorm`` works on both, adding its sums over ranks with an ``all_reduce`` whose
backward adds the gradients over ranks (as SyncBatchNorm's backward does).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
from torch import nn

TIMEOUT_ENV = "SNNAS_DIST_TIMEOUT"  # seconds a rank waits in a collective before it gives up
DEFAULT_TIMEOUT_S = 900


class DistError(RuntimeError):
    """This rank cannot join the run (a GPU it should use is not there)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in a distributed run."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous slice of a global batch of ``n`` (the first ``n % world`` ranks take one more)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))


def from_env(environ=None) -> Dist | None:
    """The run torchrun started this process in (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or None."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        world, rank, local = int(env["WORLD_SIZE"]), int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={env['WORLD_SIZE']!r}, RANK={env['RANK']!r}: not whole numbers") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} with WORLD_SIZE={world}: a rank must lie in [0, WORLD_SIZE)")
    return Dist(rank, world, local)


def start(dist: Dist, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on the CPU); returns this rank's device
    (``cuda:LOCAL_RANK`` on CUDA). A rank waits at most ``SNNAS_DIST_TIMEOUT`` seconds in a collective."""
    import torch.distributed as td

    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    if device.type == "cuda":
        if dist.local_rank >= torch.cuda.device_count():
            raise DistError(f"LOCAL_RANK={dist.local_rank}: only {torch.cuda.device_count()} CUDA devices are "
                            "visible; start at most one process per GPU")
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not td.is_initialized():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout,
                              rank=dist.rank, world_size=dist.world)
    return device


def stop() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def active() -> bool:
    import torch.distributed as td

    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


def barrier() -> None:
    import torch.distributed as td

    if active():
        td.barrier()


def sums(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over every rank (unchanged on one process)."""
    if not active():
        return list(values)
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return [float(v) for v in t.cpu()]


def same_buffers(model: nn.Module) -> None:
    """Every rank takes rank 0's buffers (batch norm's running statistics), as DDP does before a forward."""
    if not active():
        return
    import torch.distributed as td

    for buffer in model.buffers():
        td.broadcast(buffer.data, src=0)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when several ranks train, else itself."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over every rank; the gradient of each rank's copy is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as td

        out = tensor.clone()
        td.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as td

        out = grad.contiguous().clone()
        td.all_reduce(out)
        return out


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch, over every rank; the
    same parameters and buffers (and state-dict keys) as the ``BatchNorm1d/2d/3d`` it replaces.
    In eval mode, or on one process, it is that batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        all_reduce = _SumOverRanks.apply
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() // max(1, x.shape[1])], dtype=xf.dtype, device=x.device)
        totals = all_reduce(torch.cat([xf.sum(dims), count]))
        n = totals[-1].detach()
        mean = totals[:-1] / n
        centred = xf - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / n  # two passes, as accurate as batch norm's own
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        self._update_running(mean.detach(), var.detach(), float(n))
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        if not self.track_running_stats or self.running_mean is None:
            return
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        unbiased = var * (n / max(1.0, n - 1))
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every plain BatchNorm1d/2d/3d replaced, in place, by a ``SyncedBatchNorm``
    sharing its parameters and buffers (the state dict keeps its keys)."""
    if type(module) in BATCH_NORMS:
        synced = SyncedBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        for name in ("weight", "bias"):
            setattr(synced, name, getattr(module, name))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            synced.register_buffer(name, getattr(module, name))
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, sync_batchnorm(child))
    return module
