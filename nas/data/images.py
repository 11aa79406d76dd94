"""Image datasets: the embedded digits, CIFAR's python archives, image folders and ``.npz`` arrays."""

from __future__ import annotations

import gzip
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

from snnas.energy.untrusted import (
    RefusedFile,
    array_headers,
    max_data_bytes,
    over_limit,
    read_array,
    size_text,
    unpickle_restricted,
)
from snnas.nas.data.dataset import (
    DIGITS_FILE,
    IMAGE_SUFFIXES,
    DataError,
    Dataset,
    _check,
    _fit_in_memory,
    _regular,
)


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


