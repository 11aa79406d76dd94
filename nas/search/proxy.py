"""Proxies that rank candidates: short training on real data, and the SAHD zero-cost score.

``train_proxy`` trains a candidate for a fixed number of steps with the same seed, the same
batches and the same held-out split for every candidate, measures held-out accuracy, then
counts its operations on held-out samples (real firing rates of the trained network).
``sahd_score`` is SNASNet's sparsity-aware Hamming distance score (Kim et al., ECCV 2022),
computed on a fresh copy of the candidate, so it has no side effect on training.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from snnas.energy.counting import OpCounts, count_ops, is_neuron
from snnas.nas.models.arch import ArchConfig
from snnas.nas.data import ProxySplit, model_input
from snnas.nas.models import build_model
from snnas.nas.models.attention.dssa import calibrate_rates


class CandidateFailed(RuntimeError):
    """A candidate could not be evaluated (NaN loss, out of memory, ...); the search goes on."""


@dataclass(frozen=True)
class ProxySettings:
    steps: int = 100  # optimiser steps per training run
    batch_size: int = 32
    lr: float = 1e-2  # AdamW peak learning rate: linear warm-up, then cosine decay to zero
    warmup_fraction: float = 0.1  # share of the steps spent warming up
    bn_init_gain: float = 2.0  # batch-norm scale at the start of training (scale_batch_norms); 1 = PyTorch's
    weight_decay: float = 0.01
    seed: int = 0  # init seed and batch order of the first run, identical for every candidate (run r: seed + r)
    eval_batch: int = 250
    energy_samples: int = 64  # held-out samples the operations are counted on
    zero_cost_batch: int = 32
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated instead; 0 = off
    runs: int = 2  # independent short trainings per candidate (seeds seed, seed + 1, ...), scores averaged
    score: str = "likelihood"  # the search's objective: likelihood (exp of minus the mean held-out
    #                            cross-entropy over the runs) or accuracy (mean held-out accuracy)

    def identity(self) -> dict:
        """The settings as stored with a study and a benchmark run: fields added after a study was
        made are left out while they hold their default (off), so older studies still resume."""
        out = asdict(self)
        for name, default in ADDED_LATER.items():
            if out.get(name) == default:
                out.pop(name)
        return out


ADDED_LATER = {"ema": 0.0, "runs": 1, "score": "accuracy"}  # field -> the value that reproduces what came before it
SCORES = ("likelihood", "accuracy")
# The proxy before the two-run likelihood default (v0.2): one 200-step run, ranked by accuracy.
SINGLE_RUN = dict(steps=200, runs=1, score="accuracy")


@dataclass
class ProxyResult:
    accuracy: float  # held-out top-1, in [0, 1]
    loss: float  # mean training loss over the last 10 steps
    counts: OpCounts  # per-sample counts on held-out data
    train_time_s: float
    eval_time_s: float
    count_time_s: float
    zero_cost: float | None = None
    score_time_s: float = 0.0  # the SAHD score
    val_loss: float = float("nan")  # held-out mean cross-entropy
    soft_accuracy: float = float("nan")  # held-out mean probability of the right class
    model: nn.Module | None = None  # the trained network, when asked for (keep_model=True)
    runs: int = 1  # trainings averaged into accuracy, val_loss and soft_accuracy

    @property
    def likelihood(self) -> float:
        """exp(-held-out cross-entropy): the geometric-mean probability given to the right class."""
        return math.exp(-self.val_loss) if math.isfinite(self.val_loss) else float("nan")

    def objective(self, score: str) -> float:
        return self.likelihood if score == "likelihood" else self.accuracy


def _lr(step: int, s: ProxySettings) -> float:
    warmup = round(s.warmup_fraction * s.steps)
    if step < warmup:
        return s.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, s.steps - warmup)
    return s.lr * 0.5 * (1 + math.cos(math.pi * progress))


def build_candidate(arch: ArchConfig, *, seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch).to(device)


def scale_batch_norms(model: nn.Module, gain: float) -> None:
    """Set every batch-norm scale to ``gain`` before proxy training.

    Why while ranking: after a freshly initialised batch norm the input current X of a
    LIF neuron (tau = 2, decay_input) is ~N(0, 1) and the first step fires only when X/2 > V_th = 1,
    i.e. for P(X > 2) = 2.3% of inputs, and deeper layers see sparser input still. Short
    training then spends its steps waking the network up, and which candidate wakes first is
    close to chance. A scale of 2 puts ~16% above threshold, near the rates of trained spiking
    transformers, in the spirit of fluctuation-driven initialisation (Rossbroich, Gygax & Zenke,
    2022). The architecture is unchanged, and the SAHD score still sees PyTorch's initialisation,
    as in SNASNet. benchmarks/proxy_fidelity.py measures the effect on the ranking.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
                module.weight.fill_(gain)


def train(model: nn.Module, split: ProxySplit, settings: ProxySettings, device: torch.device,
          on_step: Callable[[int, int], None] | None = None) -> float:
    """Train in place for ``settings.steps`` steps; returns the mean loss of the last 10 steps.
    ``on_step(done, steps)`` is called after every step (progress displays)."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    order = torch.Generator().manual_seed(settings.seed)
    n = len(split.train_y)
    losses: list[float] = []
    model.train()
    average = _Average(model, settings.ema) if settings.ema > 0 else None
    for step in range(settings.steps):
        idx = torch.randint(n, (min(settings.batch_size, n),), generator=order)
        x, y = split.train_x[idx].to(device), split.train_y[idx].to(device)
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, settings)
        functional.reset_net(model)
        loss = F.cross_entropy(model(model_input(x)), y)
        if not torch.isfinite(loss):
            raise CandidateFailed(f"training loss became {loss.item()} at step {step}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if average is not None:
            average.update(model, step)
        if on_step is not None:
            on_step(step + 1, settings.steps)
    if average is not None:
        average.copy_to(model)
    return sum(losses[-10:]) / max(1, len(losses[-10:]))


class _Average:
    """Exponential moving average of a model's parameters and buffers (batch-norm statistics).

    The decay ramps up as min(decay, (1 + step) / (10 + step)), so early weights fade quickly."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = [p.detach().clone() for p in model.parameters()]
        self.buffers = [b.detach().clone() for b in model.buffers() if b.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.params, [p.detach() for p in model.parameters()], 1 - decay)
        current = [b for b in model.buffers() if b.dtype.is_floating_point]
        if current:
            torch._foreach_lerp_(self.buffers, current, 1 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for p, a in zip(model.parameters(), self.params):
            p.copy_(a)
        for b, a in zip([b for b in model.buffers() if b.dtype.is_floating_point], self.buffers):
            b.copy_(a)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, device: torch.device) -> float:
    return _correct(model, x, y, batch=batch, device=device) / len(y)


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, device: torch.device) -> int:
    return int(_tally(model, x, y, batch=batch, device=device)[0])


def _judge(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[right answers, summed cross-entropy, summed probability of the right class] of a batch."""
    logits, y = logits.float().cpu(), y.cpu()
    log_p = F.log_softmax(logits, dim=1)
    right = log_p.gather(1, y[:, None]).squeeze(1)
    return torch.stack([(logits.argmax(dim=1) == y).sum().double(), -right.sum().double(), right.exp().sum().double()])


def _tally(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, device: torch.device) -> torch.Tensor:
    model.eval()
    total = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(y), batch):
        functional.reset_net(model)
        total += _judge(model(model_input(x[start:start + batch].to(device))), y[start:start + batch])
    functional.reset_net(model)
    return total


@torch.no_grad()
def evaluate(model: nn.Module, split: ProxySplit, settings: ProxySettings,
             device: torch.device) -> tuple[dict, OpCounts, float]:
    """Held-out scores and per-sample counts in one pass over the held-out images.

    The first ``energy_samples`` images run under the counter (which runs the model as
    ``accuracy`` does: eval mode, neurons reset first); their predictions are scored with the
    rest, so no image runs twice. Returns ({accuracy, val_loss, soft_accuracy}, counts, seconds
    of the counted part).
    """
    n = max(1, min(settings.energy_samples, len(split.val_y)))
    seen: dict[str, torch.Tensor] = {}
    handle = model.register_forward_hook(lambda module, args, output: seen.__setitem__("logits", output))
    start = time.perf_counter()
    try:
        counted = model_input(split.val_x[:n].to(device))
        counts = count_ops(model, counted, batch_dim=counted.dim() - 4, per_sample=False)  # real digits: one class
    finally:
        handle.remove()
    count_s = time.perf_counter() - start
    total = _judge(seen["logits"], split.val_y[:n])
    total += _tally(model, split.val_x[n:], split.val_y[n:], batch=settings.eval_batch, device=device)
    right, loss, prob = (float(v) / len(split.val_y) for v in total)
    return {"accuracy": right, "val_loss": loss, "soft_accuracy": prob}, counts, count_s


@torch.no_grad()
def sahd_score(model: nn.Module, batches: list[torch.Tensor]) -> float:
    """SNASNet's score: log|det K| with K accumulated over every neuron layer and time step.

    For binary patterns x_i (one sample's spikes at one layer and step, length N_A), firing
    fraction s_i and Hamming distance d_H(i, j):
        K_ij += N_A - 0.5 * d_H(i, j) / (s_i (1 - s_j) + (1 - s_i) s_j + 1e-3)
    Score = log|det(K / number of accumulations)|, averaged over the batches. Neurons run in
    training mode (batch statistics) on a copy of the model.
    """
    probe = copy.deepcopy(model).train()
    scores = []
    for x in batches:
        b = x.shape[0]
        kernel = torch.zeros(b, b, dtype=torch.float64)
        seen = [0]

        def hook(module, args, out):
            spikes = out.detach().abs().double()  # [T, B, ...]
            for t in range(spikes.shape[0]):
                p = spikes[t].reshape(b, -1).clamp(max=1.0)
                n_a = p.shape[1]
                s = p.mean(dim=1)
                hamming = p @ (1 - p).T + (1 - p) @ p.T
                norm = s[:, None] * (1 - s[None, :]) + (1 - s[:, None]) * s[None, :]
                kernel.add_(n_a - 0.5 * hamming / (norm + 1e-3))
                seen[0] += 1

        handles = [m.register_forward_hook(hook) for m in probe.modules() if is_neuron(m)]
        functional.reset_net(probe)
        probe(model_input(x))
        for h in handles:
            h.remove()
        if seen[0] == 0:
            raise CandidateFailed("no spiking neuron found for the zero-cost score")
        scores.append(float(torch.linalg.slogdet(kernel / seen[0])[1]))
    return sum(scores) / len(scores)


def zero_cost_batches(split: ProxySplit, settings: ProxySettings) -> list[torch.Tensor]:
    """Two fixed training batches of distinct images (a repeated image makes K singular), the same for
    every candidate."""
    g = torch.Generator().manual_seed(settings.seed + 1)
    n = len(split.train_y)
    order = torch.randperm(n, generator=g)
    b = min(settings.zero_cost_batch, max(2, n // 2))
    return [split.train_x[order[:b]], split.train_x[order[b:2 * b]] if n >= 2 * b else split.train_x[order[-b:]]]


def train_proxy(arch: ArchConfig, split: ProxySplit, settings: ProxySettings, *, device: torch.device,
                zero_cost: bool = True, keep_model: bool = False,
                on_step: Callable[[int, int], None] | None = None) -> ProxyResult:
    """Short trainings (``settings.runs`` of them, seeds ``seed``, ``seed + 1``, ...), their mean
    held-out accuracy, cross-entropy and soft accuracy, and the per-sample counts of the first
    run's trained candidate (and that network itself with ``keep_model``). Averaging independent
    short runs ranks candidates better than one run of their summed length (README, proxy
    fidelity): a short training of a spiking network is noisy, and the mean halves the variance."""
    runs = [_train_once(arch, split, replace(settings, seed=settings.seed + r), device=device,
                        zero_cost=zero_cost and r == 0, keep_model=keep_model and r == 0,
                        on_step=None if on_step is None else
                        (lambda done, steps, r=r: on_step(r * steps + done, settings.runs * steps)))
            for r in range(max(1, settings.runs))]
    if len(runs) == 1:
        return runs[0]
    first, n = runs[0], len(runs)
    mean = lambda name: sum(getattr(r, name) for r in runs) / n  # noqa: E731 - NaN stays NaN
    return ProxyResult(mean("accuracy"), mean("loss"), first.counts, sum(r.train_time_s for r in runs),
                       sum(r.eval_time_s for r in runs), sum(r.count_time_s for r in runs), first.zero_cost,
                       first.score_time_s, mean("val_loss"), mean("soft_accuracy"), first.model, n)


def _train_once(arch: ArchConfig, split: ProxySplit, settings: ProxySettings, *, device: torch.device,
                zero_cost: bool, keep_model: bool, on_step: Callable[[int, int], None] | None) -> ProxyResult:
    model = build_candidate(arch, seed=settings.seed, device=device)
    try:
        start = time.perf_counter()
        score = sahd_score(model, [b.to(device) for b in zero_cost_batches(split, settings)]) if zero_cost else None
        score = score if score is not None and math.isfinite(score) else None  # singular kernel: undefined
        scored = time.perf_counter()
        scale_batch_norms(model, settings.bn_init_gain)
        loss = train(model, split, settings, device, on_step)
        trained = time.perf_counter()
        scores, counts, count_s = evaluate(model, split, settings, device)
        evaluated = time.perf_counter()
    except torch.OutOfMemoryError as exc:
        raise CandidateFailed(f"out of memory: {str(exc).splitlines()[0][:160]}") from None
    return ProxyResult(scores["accuracy"], loss, counts, trained - scored, evaluated - trained - count_s, count_s,
                       score, scored - start, scores["val_loss"], scores["soft_accuracy"],
                       model if keep_model else None)


def zero_cost_proxy(arch: ArchConfig, split: ProxySplit, settings: ProxySettings, *,
                    device: torch.device) -> ProxyResult:
    """Training-free: the SAHD score stands for accuracy; counts are taken on the untrained network."""
    model = build_candidate(arch, seed=settings.seed, device=device)
    start = time.perf_counter()
    score = sahd_score(model, [b.to(device) for b in zero_cost_batches(split, settings)])
    if not math.isfinite(score):
        raise CandidateFailed("zero-cost score undefined: every sample gives the same spike patterns")
    scored = time.perf_counter()
    counted = model_input(split.val_x[:settings.energy_samples].to(device))
    calibrate_rates(model, counted)  # untrained DSSA scales: set as the first training step would
    counts = count_ops(model, counted, batch_dim=counted.dim() - 4, per_sample=False)
    return ProxyResult(float("nan"), float("nan"), counts, 0.0, 0.0, time.perf_counter() - scored, score, scored - start)
