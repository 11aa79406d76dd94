"""From a dataset to what a model and the proxy take: the model's input layout, resizing, the proxy's
fixed training / held-out split and the held-out part of a dataset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from snnas.nas.data.dataset import DataError, Dataset
from snnas.nas.data.images import load_digits


def model_input(x: torch.Tensor) -> torch.Tensor:
    """A batch as the models take it: images ``[B, C, H, W]`` as they are, event frames
    ``[B, T, C, H, W]`` as ``[T, B, C, H, W]``."""
    return x.transpose(0, 1) if x.dim() == 5 else x


def fit_images(images: torch.Tensor, *, channels: int, size: int) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images to ``size`` x ``size`` and repeat or average to ``channels``.
    Event frames ``[N, T, C, H, W]`` must already have ``channels`` polarities; they shrink by area
    averaging and grow by zero padding around them (a larger field of the same pixels: event
    counts stay whole numbers)."""
    if images.dim() == 5:
        n, t, c, h, w = images.shape
        if c != channels:
            raise DataError(f"event frames have {c} polarity channels; the model takes {channels}")
        if h == size and w == size:
            return images
        flat = images.flatten(0, 1)
        if size < h or size < w:
            flat = F.interpolate(flat, size=(min(size, h), min(size, w)), mode="area")
        top, left = (size - flat.shape[-2]) // 2, (size - flat.shape[-1]) // 2
        flat = F.pad(flat, (left, size - flat.shape[-1] - left, top, size - flat.shape[-2] - top))
        return flat.unflatten(0, (n, t))
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.repeat(1, channels, 1, 1)
    return images.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)


@dataclass
class ProxySplit:
    """Fixed training and held-out subsets at the proxy resolution (same for every candidate)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    fingerprint: str

    @classmethod
    def make(cls, data: Dataset, *, train_size: int, val_size: int, resolution: int, seed: int = 0) -> "ProxySplit":
        """Both subsets come from the training part of ``held_out_split`` only (the data's own
        training set, or the four fifths it leaves): a search never selects on the images that
        ``snnas train`` and ``snnas evaluate`` then test its winners on."""
        if data.test_from is not None:
            data = Dataset(data.name, data.images[:data.test_from], data.labels[:data.test_from], data.num_classes)
            allowed = None
        else:
            allowed = torch.zeros(len(data.labels), dtype=torch.bool)
            allowed[_held_out_order(len(data.labels))[0]] = True
        n = len(data.labels)
        everything = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        order = everything if allowed is None else everything[allowed[everything]]
        train, val = _cut(order, train_size, val_size, data.name)
        key = f"{data.fingerprint}:{train_size}:{val_size}:{resolution}:{seed}"
        if allowed is not None and not _same_split((train, val), _cut(everything, train_size, val_size, data.name)):
            key += ":training-part"  # the split differs from the one drawn from all images before test sets were kept
        x = fit_images(data.images, channels=data.channels, size=resolution)
        return cls(x[train], data.labels[train], x[val], data.labels[val], data.num_classes,
                   hashlib.sha256(key.encode()).hexdigest()[:16])

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[-3])

    @property
    def time_steps(self) -> int | None:
        """T of event frames; None for images."""
        return int(self.train_x.shape[1]) if self.train_x.dim() == 5 else None

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])


TEST_SHARE = 0.2  # data without a test set of its own: this share, drawn with seed 0, is held out


def _cut(order: torch.Tensor, train_size: int, val_size: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(order)
    if train_size + val_size > n:
        train_size = max(1, int(n * train_size / (train_size + val_size)))
        val_size = n - train_size
    if train_size < 1 or val_size < 1:
        raise DataError(f"{name}: {n} samples are too few for a training and a held-out split")
    return order[:train_size], order[train_size:train_size + val_size]


def _same_split(a, b) -> bool:
    return all(len(x) == len(y) and torch.equal(x, y) for x, y in zip(a, b))


def _held_out_order(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, test indices) of data without its own test set: the last fifth of a
    seed-0 permutation is held out (the proxy's default split, the permutation's head, never meets it)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    test = max(1, int(round(n * TEST_SHARE))) if n >= 2 else 0
    return order[:n - test], order[n - test:]


def held_out_split(data: Dataset) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train images, labels), (test images, labels)): the data's own test set (CIFAR), else a fixed
    random fifth. ``snnas search`` draws only from the training part, and ``snnas train`` and
    ``snnas evaluate`` test on the rest, so they agree on what is held out."""
    if data.test_from is not None:
        cut = data.test_from
        return (data.images[:cut], data.labels[:cut]), (data.images[cut:], data.labels[cut:])
    train, held = _held_out_order(len(data.labels))
    if len(train) < 1 or len(held) < 1:
        raise DataError(f"{data.name}: {len(data.labels)} samples are too few to hold some out for testing")
    return (data.images[train], data.labels[train]), (data.images[held], data.labels[held])


def held_out_part(data: Dataset) -> Dataset:
    """The held-out images of ``held_out_split`` as a dataset (what snnas energy counts on)."""
    _, (x, y) = held_out_split(data)
    return Dataset(data.name, x, y, data.num_classes)


def sample_images(data: Dataset, n: int, *, channels: int | None = None, size: int | None = None,
                  seed: int = 0) -> torch.Tensor:
    """``n`` images drawn with a fixed seed (files may be sorted by label), fitted to a model's input
    when ``channels`` and ``size`` are given."""
    order = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(seed))[:n]
    images = data.images[order]
    return images if channels is None or size is None else fit_images(images, channels=channels, size=size)


def sample_digits(n: int, *, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` embedded digits fitted to a model's input."""
    return sample_images(load_digits(), n, channels=channels, size=size, seed=seed)
