"""Training a chosen architecture fully: the seed papers' recipe, checkpoints every epoch, resume after a kill.

The recipe (``Recipe``) follows what the seed papers' CIFAR training uses: AdamW (learning rate
5e-4, weight decay 0.06), a linear warm-up then a cosine decay to 1e-5, label smoothing 0.1,
random crops from zero-padded images (4 pixels at 32 px) and horizontal flips, mixup and cutmix
as options (Spikformer's CIFAR configuration and Auto-Spikformer's retraining script use
AdamW 5e-4 / 0.06, cosine, 20 warm-up epochs, smoothing 0.1, mixup 0.5). Flips are off for
digits, whose mirror image is another symbol, and gestures. Event frames get, in addition,
Spikformer's CIFAR10-DVS policy (``event_augment``: one of shear, translation, rotation, cutout
or nothing per sample, the same for all its frames). Mixed precision runs on CUDA.

``train_model`` writes, in its folder, ``last.pt`` after every epoch (weights, optimiser, the
random state and the metrics so far: a killed run resumes from its last finished epoch and
ends with the same numbers), ``best.pt`` (the epoch with the best held-out accuracy) and
``metrics.csv``. Both ``.pt`` files are snnas model files (``nas.models.checkpoint``): the architecture
as data, the weights, and ``meta`` with the data fingerprint, the recipe and the metrics.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional

from snnas.nas.models.arch import ArchConfig
from snnas.nas.models.checkpoint import load_model_file, save_model
from snnas.nas.data import Dataset, fit_images, held_out_split, model_input
from snnas.nas.failpoints import failpoint
from snnas.nas.files import atomic_write
from snnas.nas.models import build_model
from snnas.nas.train import distributed
from snnas.nas.train.distributed import Dist


class TrainError(ValueError):
    """A training run cannot start or resume (a folder holding another run, too little data)."""


@dataclass(frozen=True)
class Recipe:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 5e-4  # AdamW peak learning rate
    min_lr: float = 1e-5  # end of the cosine decay
    weight_decay: float = 0.06
    warmup_epochs: int = 20  # at most a tenth of the epochs is spent warming up
    label_smoothing: float = 0.1
    crop_padding: int | None = None  # zero padding before random crops; None: img_size / 8
    flip: bool | None = None  # horizontal flips; None: on, except for digits
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of image pairs; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) boxes pasted between images; 0 = off
    seed: int = 0
    event_aug: bool | None = None  # Spikformer's event-frame policy (event_augment); None: on for event data
    sync_bn: bool = True  # several processes: batch norm over the global batch (distributed.SyncedBatchNorm)

    def resolved(self, arch: ArchConfig, data_name: str, *, events: bool = False) -> "Recipe":
        """The recipe with its automatic choices made for this architecture and data (``events``:
        the data are event frames)."""
        padding = self.crop_padding if self.crop_padding is not None else arch.img_size // 8
        flip = self.flip if self.flip is not None else not data_name.startswith(NO_FLIP)
        warmup = min(self.warmup_epochs, self.epochs // 10)
        event_aug = events if self.event_aug is None else self.event_aug and events
        return Recipe(**{**asdict(self), "crop_padding": padding, "flip": flip, "warmup_epochs": warmup,
                         "event_aug": event_aug})


NO_FLIP = ("digits", "n-mnist", "dvs-gesture")  # mirrored digits and left/right gestures change class


def fit_arch(arch: ArchConfig, data: Dataset, resolution: int | None = None) -> tuple[ArchConfig, list[str]]:
    """The architecture made to fit the data: its channels and classes, and an image side it can
    take (``resolution``, else the data's own side, else the next side above it that the stem, the
    downsampling and the DSSA patches divide). Returns (architecture, notes on what changed)."""
    notes = []
    channels, classes, native = data.channels, data.num_classes, int(data.images.shape[-1])
    changes = {}
    if data.time_steps is not None and arch.time_steps != data.time_steps:
        changes["time_steps"] = data.time_steps
    if arch.in_channels != channels:
        changes["in_channels"] = channels
    if arch.num_classes != classes:
        changes["num_classes"] = classes
    if changes:
        notes.append(", ".join(f"{k} {getattr(arch, k)} -> {v}" for k, v in changes.items()) + f" (the data, {data.name})")
    wanted = resolution or native
    fitted = _with_side(arch.replace(**changes), wanted)
    if fitted is None and resolution is not None:
        sides = [s for s in range(4, 4 * wanted + 1) if _with_side(arch.replace(**changes), s) is not None]
        near = [max((s for s in sides if s < wanted), default=None), min((s for s in sides if s > wanted), default=None)]
        raise TrainError(f"--resolution {resolution}: this architecture cannot take {resolution}x{resolution} images "
                         f"({_why(arch.replace(**changes), resolution)}); the nearest sides it can take: "
                         f"{' or '.join(str(s) for s in near if s is not None) or 'none'}")
    side = wanted
    while fitted is None and side < 4 * native:
        side += 1
        fitted = _with_side(arch.replace(**changes), side)
    if fitted is None:
        raise TrainError(f"no image side from {native} to {4 * native} suits this architecture "
                         f"({_why(arch.replace(**changes), native)}); pass --resolution")
    if fitted.img_size != arch.img_size:
        reason = "" if fitted.img_size == wanted else f"; {wanted} is not divisible by its total downsampling"
        notes.append(f"image side {arch.img_size} -> {fitted.img_size}{reason}")
    return fitted, notes


def _with_side(arch: ArchConfig, side: int) -> ArchConfig | None:
    from snnas.nas.models.arch import ArchConfigError

    try:
        return arch.replace(img_size=side)
    except ArchConfigError:
        return None


def _why(arch: ArchConfig, side: int) -> str:
    from snnas.nas.models.arch import ArchConfigError

    try:
        arch.replace(img_size=side)
    except ArchConfigError as exc:
        return str(exc)
    return "it can"


@dataclass
class EpochMetrics:
    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    time_s: float


@dataclass
class TrainResult:
    best: Path
    last: Path
    metrics: list[EpochMetrics] = field(default_factory=list)
    resumed_from: int = 0  # epochs already done when this call started

    @property
    def best_metrics(self) -> EpochMetrics:
        return max(self.metrics, key=lambda m: (m.test_accuracy, -m.epoch))


def learning_rate(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Linear warm-up over ``warmup_epochs``, then a cosine from ``lr`` to ``min_lr`` at the last step."""
    warmup = recipe.warmup_epochs * steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))  # the last step runs at min_lr
    return recipe.min_lr + (recipe.lr - recipe.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


# Event-frame augmentation as Spikformer's CIFAR10-DVS training applies it (ZK-Zhou/spikformer
# cifar10dvs/train.py with its SNNAugmentWide policy): per sample, one operation drawn uniformly
# from identity, shear along x (up to 0.3), translation along x or y (up to 5 pixels), rotation
# (up to 30 degrees) and cutout (a square of 0.1% to 11% of the frame), its magnitude one of 31
# evenly spaced values with a random sign, nearest-neighbour resampling, zeros outside; the same
# operation for every time step and polarity of the sample.
EVENT_OPS = ("identity", "shear_x", "translate_x", "translate_y", "rotate", "cutout")
BINS = 31


def event_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``[B, T, C, H, W]`` event frames, each sample transformed by one random operation."""
    b, t, c, h, w = x.shape
    out = x.clone()
    ops = torch.randint(len(EVENT_OPS), (b,), generator=generator)
    bins = torch.randint(BINS, (b,), generator=generator)
    signs = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    for i in range(b):
        op = EVENT_OPS[int(ops[i])]
        if op == "identity":
            continue
        if op == "cutout":
            area = h * w * (0.001 + (0.11 - 0.001) * float(torch.rand(1, generator=generator)))
            side = max(1, min(h, w, int(round(math.sqrt(area)))))
            top = int(torch.randint(h - side + 1, (1,), generator=generator))
            left = int(torch.randint(w - side + 1, (1,), generator=generator))
            out[i, :, :, top:top + side, left:left + side] = 0
            continue
        largest = {"shear_x": 0.3, "translate_x": 5.0, "translate_y": 5.0, "rotate": 30.0}[op]
        m = float(signs[i]) * largest * (2.0 * float(bins[i]) / (BINS - 1) - 1.0)  # one of 31 values in [-M, M]
        theta = torch.eye(2, 3, dtype=x.dtype)
        if op == "shear_x":
            theta[0, 1] = math.tan(m)
        elif op == "translate_x":
            theta[0, 2] = -2.0 * int(m) / w
        elif op == "translate_y":
            theta[1, 2] = -2.0 * int(m) / h
        else:
            a = math.radians(m)
            theta[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=x.dtype)
        frames = out[i].reshape(1, t * c, h, w)
        grid = F.affine_grid(theta[None].to(x.device), [1, t * c, h, w], align_corners=False)
        out[i] = F.grid_sample(frames, grid, mode="nearest", padding_mode="zeros", align_corners=False).reshape(t, c, h, w)
    return out


def augment(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, num_classes: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops and flips, then mixup or cutmix; returns images and soft targets. Event
    frames ``[B, T, C, H, W]`` get one crop, flip and mix per sample, the same for all T."""
    if x.dim() == 5:
        t = x.shape[1]
        if recipe.event_aug:
            x = event_augment(x, generator)
        flat, target = augment(x.flatten(1, 2), y, recipe, num_classes, generator)
        return flat.unflatten(1, (t, -1)), target
    b, _, h, w = x.shape
    p = recipe.crop_padding or 0
    if p:
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # [B, H]
        cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # [B, W]
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if recipe.flip:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    target = F.one_hot(y, num_classes).float()
    use_mixup, use_cutmix = recipe.mixup > 0, recipe.cutmix > 0
    if not (use_mixup or use_cutmix):
        return x, target
    partner = torch.randperm(b, generator=generator).to(x.device)
    if use_cutmix and (not use_mixup or torch.rand(1, generator=generator).item() < 0.5):
        lam = float(torch.distributions.Beta(recipe.cutmix, recipe.cutmix).sample())
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
        y0, y1, x0, x1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h), max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[partner, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        lam = float(torch.distributions.Beta(recipe.mixup, recipe.mixup).sample())
        x = lam * x + (1 - lam) * x[partner]
    return x, lam * target + (1 - lam) * target[partner]


def _soft_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    k = target.shape[1]
    target = target * (1 - smoothing) + smoothing / k
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def _autocast(device: torch.device):
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def test_scores(model, x: torch.Tensor, y: torch.Tensor, *, batch: int, device: torch.device,
                dist: Dist | None = None) -> tuple[float, float]:
    """(held-out accuracy, mean cross-entropy) in eval mode; on several ranks each scores its
    share of the images and the sums are added over ranks."""
    model.eval()
    part = dist.share(len(y)) if dist is not None else slice(0, len(y))
    xs, ys = x[part], y[part]
    right, loss = 0, 0.0
    for start in range(0, len(ys), batch):
        functional.reset_net(model)
        with _autocast(device):
            logits = model(model_input(xs[start:start + batch].to(device))).float()
        target = ys[start:start + batch].to(device)
        right += int((logits.argmax(dim=1) == target).sum())
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
    functional.reset_net(model)
    if dist is not None:
        right, loss = distributed.sums([right, loss], device)
    return right / len(y), loss / len(y)


@dataclass
class _State:
    """What a run needs to go on from the end of an epoch."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    metrics: list[EpochMetrics]
    epoch: int  # epochs finished
    net: torch.nn.Module | None = None  # what the training steps call: the model, or it in DistributedDataParallel


def _fresh(arch: ArchConfig, recipe: Recipe, device: torch.device, init: dict | None = None) -> _State:
    torch.manual_seed(recipe.seed)
    model = build_model(arch)
    if init is not None:
        model.load_state_dict(init)
    if recipe.sync_bn and distributed.active():
        distributed.sync_batchnorm(model)
    model = model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and not torch.cuda.is_bf16_supported() else None
    return _State(model, optimiser, scaler, torch.Generator().manual_seed(recipe.seed), [], 0)


def _meta(arch, recipe, data: Dataset, metrics, *, epoch: int, info: dict) -> dict:
    return {"data": {"name": data.name, "fingerprint": data.fingerprint, "classes": data.num_classes,
                     "spec": info.get("data_spec")},
            "recipe": asdict(recipe), "epoch": epoch, "metrics": [asdict(m) for m in metrics],
            "processes": info.get("processes", 1),
            **({"source": info["source"]} if info.get("source") else {})}
def _save(state: _State, arch, recipe, data, path: Path, *, resume: bool, info: dict) -> None:
    extra = None
    if resume:
        extra = {"optimiser": state.optimiser.state_dict(), "generator": state.generator.get_state(),
                 "torch_rng": torch.get_rng_state(),
                 "scaler": state.scaler.state_dict() if state.scaler is not None else None}
    buffer = io.BytesIO()
    save_model(state.model, arch, buffer, meta=_meta(arch, recipe, data, state.metrics, epoch=state.epoch, info=info),
               resume=extra)
    atomic_write(path, buffer.getvalue())


def _resume(folder: Path, arch, recipe, data, device) -> _State | None:
    last = folder / "last.pt"
    if not last.is_file():
        return None
    model, saved_arch, obj = load_model_file(last)
    meta, resume = obj.get("meta") or {}, obj.get("resume")
    mine = {"arch": arch.to_dict(), "recipe": asdict(recipe), "data": data.fingerprint}
    saved_recipe = {"event_aug": False, "sync_bn": True, **(meta.get("recipe") or {})}  # folders from before the fields
    theirs = {"arch": saved_arch.to_dict(), "recipe": saved_recipe, "data": (meta.get("data") or {}).get("fingerprint")}
    for key in mine:
        if mine[key] != theirs[key]:
            raise TrainError(f"{folder} holds a run with a different {key}; use another --out (or delete {last})")
    if resume is None:
        raise TrainError(f"{last}: holds no training state to resume from")
    state = _fresh(arch, recipe, device)
    state.model.load_state_dict(model.state_dict())
    state.optimiser.load_state_dict(resume["optimiser"])
    state.generator.set_state(resume["generator"])
    torch.set_rng_state(resume["torch_rng"])
    if state.scaler is not None and resume.get("scaler"):
        state.scaler.load_state_dict(resume["scaler"])
    state.metrics = [EpochMetrics(**m) for m in meta.get("metrics", [])]
    state.epoch = int(meta.get("epoch", 0))
    return state


def _epoch(state: _State, x, y, recipe: Recipe, num_classes: int, device, on_step,
           dist: Dist | None = None) -> tuple[float, float, float]:
    """One epoch; every rank draws the same order and augments the same global batch, then trains
    on its share of it (``Dist.share``). Returns (last learning rate, mean loss, accuracy) over all ranks."""
    state.model.train()
    steps = max(1, math.ceil(len(y) / recipe.batch_size))
    order = torch.randperm(len(y), generator=state.generator)
    loss_sum, right, seen = 0.0, 0, 0
    for i in range(steps):
        idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
        lr = learning_rate(state.epoch * steps + i, steps, recipe)
        for group in state.optimiser.param_groups:
            group["lr"] = lr
        inputs, target = augment(x[idx], y[idx], recipe, num_classes, state.generator)
        weight = 1.0
        if dist is not None:
            part = dist.share(len(idx))
            inputs, target = inputs[part], target[part]
            weight = len(target) * dist.world / len(idx)  # DDP's mean of the ranks' losses = the global mean
        loss, logits = _step(state, inputs.to(device), target.to(device), recipe, device, weight)
        loss_sum += float(loss.detach()) / weight * len(target)
        right += int((logits.argmax(dim=1) == target.to(device).argmax(dim=1)).sum())
        seen += len(target)
        if on_step is not None:
            on_step(i + 1, steps, loss_sum / seen, right / seen)  # this rank's own share so far
    if dist is not None:
        loss_sum, right, seen = distributed.sums([loss_sum, right, seen], device)
    return lr, loss_sum / seen, right / seen


def _step(state: _State, inputs, target, recipe: Recipe, device, weight: float):
    """One optimiser step on this rank's images; returns (its weighted loss, logits)."""
    net, optimiser = state.net or state.model, state.optimiser
    functional.reset_net(state.model)
    with _autocast(device):
        logits = net(model_input(inputs))
    loss = _soft_loss(logits, target, recipe.label_smoothing)
    if weight != 1.0:
        loss = loss * weight
    if not torch.isfinite(loss):
        raise TrainError(f"the training loss became {loss.item()} in epoch {state.epoch + 1}; lower --lr")
    optimiser.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.step(optimiser)
        state.scaler.update()
    else:
        loss.backward()
        optimiser.step()
    return loss, logits


def _check_shares(n: int, recipe: Recipe, dist: Dist | None) -> None:
    """Every rank needs at least one image of every global batch, the last one included."""
    if dist is None:
        return
    last = n % recipe.batch_size or recipe.batch_size
    if min(recipe.batch_size, last) < dist.world:
        raise TrainError(f"--batch-size {recipe.batch_size}: a batch of {min(recipe.batch_size, last)} images "
                         f"({n} training images) cannot be shared by {dist.world} processes; choose a batch "
                         f"size whose last batch has at least {dist.world} images")


def train_model(arch: ArchConfig, data: Dataset, recipe: Recipe, folder: Path, *, device: torch.device,
                on_step: Callable[[int, int, float, float], None] | None = None,
                on_epoch: Callable[[EpochMetrics], None] | None = None, test_batch: int = 256,
                info: dict | None = None, init: dict | None = None, dist: Dist | None = None) -> TrainResult:
    """Train ``arch`` on ``data`` with ``recipe`` into ``folder`` (resuming a run found there).
    ``init``: a state dict a fresh run starts from (fine-tuning), not used when resuming.
    ``dist``: this rank of a run on several processes (the process group started,
    ``distributed.start``); only rank 0 writes files, every rank reads ``last.pt`` to resume.

    ``info`` goes into every checkpoint's ``meta``: ``data_spec`` (how to load the data again)
    and ``source`` (where the architecture came from: a zoo name, a study's trial)."""
    dist = dist if dist is not None and dist.world > 1 else None
    info = {**(info or {}), "processes": dist.world if dist else 1}
    recipe = recipe.resolved(arch, data.name, events=data.time_steps is not None)
    (x, y), (test_x, test_y) = held_out_split(data)
    if int(y.max()) >= arch.num_classes or int(test_y.max()) >= arch.num_classes:
        raise TrainError(f"{data.name} has labels up to {int(max(y.max(), test_y.max()))}; the architecture has "
                         f"{arch.num_classes} classes")
    if recipe.batch_size > len(y):
        raise TrainError(f"--batch-size {recipe.batch_size}: more than the {len(y)} training images of {data.name}")
    _check_shares(len(y), recipe, dist)
    x, test_x = (fit_images(t, channels=arch.in_channels, size=arch.img_size) for t in (x, test_x))
    if dist is None or dist.main:
        folder.mkdir(parents=True, exist_ok=True)
    state = _resume(folder, arch, recipe, data, device) or _fresh(arch, recipe, device, init)
    state.net = distributed.wrap(state.model, device) if dist is not None else None
    resumed_from = state.epoch
    while state.epoch < recipe.epochs:
        _train_epoch(state, (x, y, test_x, test_y), arch, recipe, data, folder, device=device, on_step=on_step,
                     on_epoch=on_epoch, test_batch=test_batch, info=info, dist=dist)
    return TrainResult(folder / "best.pt", folder / "last.pt", state.metrics, resumed_from)


def _train_epoch(state: _State, tensors, arch, recipe, data, folder: Path, *, device, on_step, on_epoch,
                 test_batch: int, info: dict, dist: Dist | None) -> None:
    """One epoch, its held-out scores, and (rank 0) its checkpoints and metrics.csv."""
    x, y, test_x, test_y = tensors
    best = max((m.test_accuracy for m in state.metrics), default=-1.0)
    start = time.perf_counter()
    lr, train_loss, train_acc = _epoch(state, x, y, recipe, data.num_classes, device, on_step, dist)
    if dist is not None:
        distributed.same_buffers(state.model)  # per-rank batch norm statistics (no --sync-bn): rank 0's
    test_acc, test_loss = test_scores(state.model, test_x, test_y, batch=test_batch, device=device, dist=dist)
    state.epoch += 1
    metrics = EpochMetrics(state.epoch, lr, train_loss, train_acc, test_loss, test_acc, time.perf_counter() - start)
    state.metrics.append(metrics)
    if dist is None or dist.main:
        if test_acc > best:
            _save(state, arch, recipe, data, folder / "best.pt", resume=False, info=info)
        _save(state, arch, recipe, data, folder / "last.pt", resume=True, info=info)
        _write_metrics(folder / "metrics.csv", state.metrics)
    if dist is not None:
        distributed.barrier()  # every rank goes on only once rank 0 has saved the epoch
        failpoint(f"epoch.rank{dist.rank}")  # tests kill one rank here
    failpoint("epoch")  # tests kill the run here, after the epoch is saved
    if on_epoch is not None:
        on_epoch(metrics)


def _write_metrics(path: Path, metrics: list[EpochMetrics]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(metrics[0])))
    writer.writeheader()
    for m in metrics:
        writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(m).items()})
    atomic_write(path, buffer.getvalue())
