"""Event-camera data: published recordings read from a local folder, and simulated events from real digits.

``load_events(kind, directory, time_steps)`` gives a ``Dataset`` whose images are frames
``[N, T, 2, S, S]``: the events of each sample split into T slices of equal event count (the
"frames_number, split_by number" integration the Spikformer and Spike-driven Transformer code
uses through spikingjelly), each slice counted per polarity (ON, OFF) and pixel at the papers'
resolution S. Nothing is downloaded: a missing or partial folder is one ``DataError`` naming the
files expected and where the dataset is published. Frames are cached on disk, keyed by dataset,
T, resolution and the files read, so a second run starts in seconds.

Readers use tonic's decoders (``tonic.io``) on each dataset's published files:

* ``n-mnist``      Orchard et al. 2015: ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` (ATIS
                   40-bit events, 34 x 34). Official split. T = 10 by default.
* ``n-caltech101`` Orchard et al. 2015: ``Caltech101/<class>/*.bin`` (ATIS, up to 240 x 180, shifted
                   to start at 0 as tonic does, fitted into 128 x 128 keeping the aspect). No official
                   split: the first 90% of each class's files (sorted by name) train, the rest test,
                   the 9:1 per-class split spiking transformer papers use. T = 16.
* ``dvs-gesture``  Amir et al. 2017, as tonic's preprocessed release: ``ibmGestureTrain/userNN_<light>/<label>.npy``
                   and ``ibmGestureTest/...`` (rows x, y, p, t in ms; 128 x 128, 11 classes). Official
                   (by subject) split. T = 16.
* ``cifar10-dvs``  Li et al. 2017: ``<class>/*.aedat``, the original release (AER-DAT 2/3 files of a
                   DVS128, decoded as tonic decodes DVS128 addresses: p is address bit 0, where
                   spikingjelly, which the papers' code uses, reads 1 - bit 0 and mirrors both axes),
                   or ``<class>/*.aedat4``, tonic's re-release (AEDAT 4, decoded by the ``aedat``
                   package; p = 1 for ON). No official split: 9:1 per class. T = 16.

``digits-dvs`` is the out-of-the-box demo: the embedded real MNIST digits (``nas.data``) turned
into events the way N-MNIST was recorded (``simulate_saccades``): the image, on a 34 x 34 pixel
array, moves along three saccades (an isosceles triangle), and every pixel emits an ON or OFF event
each time its log intensity has changed by a contrast threshold since its last event, as a DVS
pixel does. These are simulated events from real images, labelled as such; T = 4 by default (a
time-step count of the default search space).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snnas.nas.data.dataset import DataError, Dataset

CACHE_VERSION = 1


@dataclass(frozen=True)
class EventKind:
    name: str
    size: int  # frame side the papers use
    time_steps: int  # default T
    classes: int
    layout: str  # the folder layout expected, for error messages and the README
    published: str  # where the dataset is published


KINDS = {
    "n-mnist": EventKind("n-mnist", 34, 10, 10, "Train/<digit>/*.bin and Test/<digit>/*.bin",
                         "Orchard et al. 2015, https://www.garrickorchard.com/datasets/n-mnist"),
    "n-caltech101": EventKind("n-caltech101", 128, 16, 101, "Caltech101/<class>/*.bin",
                              "Orchard et al. 2015, https://www.garrickorchard.com/datasets/n-caltech101"),
    "dvs-gesture": EventKind("dvs-gesture", 128, 16, 11,
                             "ibmGestureTrain/userNN_<lighting>/<label>.npy and ibmGestureTest/... (tonic's release)",
                             "Amir et al. 2017, https://research.ibm.com/interactive/dvsgesture/ "
                             "(preprocessed .npy: tonic.datasets.DVSGesture)"),
    "cifar10-dvs": EventKind("cifar10-dvs", 128, 16, 10,
                             "<class>/*.aedat or <class>/*.aedat4 (airplane, automobile, ..., truck)",
                             "Li et al. 2017, https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671; "
                             ".aedat4: tonic.datasets.CIFAR10DVS's release"),
    "digits-dvs": EventKind("digits-dvs", 34, 4, 10, "(embedded)", "simulated from the embedded MNIST digits"),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MAX_T = 1024


def parse_spec(spec: str) -> tuple[EventKind, Path | None, int] | None:
    """``KIND[@T][:DIR]`` -> (kind, folder, T), or None when ``spec`` names no event dataset."""
    head, sep, rest = spec.partition(":")
    name, _, t = head.partition("@")
    if name not in KINDS:
        return None
    kind = KINDS[name]
    if t:
        if not t.isdigit() or not 1 <= int(t) <= MAX_T:
            raise DataError(f"{spec}: time steps after @ must be an integer in 1..{MAX_T}, got {t!r}")
    steps = int(t) if t else kind.time_steps
    if name == "digits-dvs":
        if sep:
            raise DataError(f"{spec}: digits-dvs is embedded and takes no folder")
        return kind, None, steps
    if not sep or not rest:
        raise DataError(f"{spec}: give the folder holding the dataset, {name}:DIR ({kind.layout}; "
                        f"published by {kind.published}; snnas never downloads)")
    return kind, Path(rest).expanduser(), steps


# ----------------------------------------------------------------------------- frames
def events_to_frames(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, *, width: int, height: int,
                     time_steps: int, size: int) -> np.ndarray:
    """Events -> ``[T, 2, size, size]`` counts: T slices of (nearly) equal event count in time
    order, p = 1 in channel 0 and the rest in channel 1, coordinates scaled into ``size`` x ``size``
    keeping the aspect (the longer side fills it)."""
    frames = np.zeros((time_steps, 2, size, size), dtype=np.float32)
    n = len(x)
    if n == 0:
        return frames
    order = np.argsort(t, kind="stable")
    x, y, p = (np.asarray(a)[order].astype(np.int64) for a in (x, y, p))
    scale = size / max(width, height)
    xs = np.clip((x * scale).astype(np.int64), 0, size - 1)
    ys = np.clip((y * scale).astype(np.int64), 0, size - 1)
    slices = (np.arange(n) * time_steps) // n  # equal event counts per slice
    channel = np.where(p > 0, 0, 1)
    np.add.at(frames, (slices, channel, ys, xs), 1.0)
    return frames


# ----------------------------------------------------------------------------- simulated events
def simulate_saccades(images: np.ndarray, *, sensor: int = 34, steps_per_saccade: int = 12, amplitude: float = 3.0,
                      threshold: float = 0.5, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """DVS events of static images moved as N-MNIST's sensor moved: three saccades along an
    isosceles triangle (right-down, left-down... back to the start), the image centred on a
    ``sensor`` x ``sensor`` array. A pixel fires an ON (OFF) event each time its log intensity
    rises (falls) by ``threshold`` since its last event; its reference level starts at the first
    view. Returns per image the arrays (x, y, p, t) with t in microseconds (100 ms per saccade,
    as in N-MNIST). ``images``: ``[N, H, W]`` in [0, 1]."""
    import torch.nn.functional as F

    n, h, w = images.shape
    canvas = np.zeros((n, sensor, sensor), dtype=np.float32)
    top, left = (sensor - h) // 2, (sensor - w) // 2
    canvas[:, top:top + h, left:left + w] = images
    frames = torch.from_numpy(canvas)[:, None]
    # triangle vertices (dx, dy) in pixels: start, right-down, left-down, back
    corners = [(0.0, 0.0), (amplitude, amplitude), (-amplitude, amplitude), (0.0, 0.0)]
    path = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:]):
        for k in range(1, steps_per_saccade + 1):
            f = k / steps_per_saccade
            path.append((x0 + (x1 - x0) * f, y0 + (y1 - y0) * f))

    def view(dx: float, dy: float) -> torch.Tensor:  # the image shifted by (dx, dy), bilinear
        theta = torch.tensor([[1.0, 0.0, -2 * dx / sensor], [0.0, 1.0, -2 * dy / sensor]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
        return F.grid_sample(frames, grid, align_corners=False, padding_mode="zeros")[:, 0]

    def log_intensity(v: torch.Tensor) -> torch.Tensor:
        return torch.log(0.05 + v)  # a dark screen still emits some light

    reference = log_intensity(view(0.0, 0.0))
    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []  # rows of (image, x, y, p, t)
    period = 100_000 / steps_per_saccade  # microseconds per step
    for s, (dx, dy) in enumerate(path):
        now = log_intensity(view(dx, dy))
        crossings = torch.trunc((now - reference) / threshold)  # signed number of events per pixel
        reference = reference + crossings * threshold
        idx = torch.nonzero(crossings).numpy()  # [k, 3]: image, y, x
        if not len(idx):
            continue
        counts = crossings[idx[:, 0], idx[:, 1], idx[:, 2]].numpy()
        reps = np.abs(counts).astype(np.int64)
        rows = np.repeat(idx, reps, axis=0)
        polarity = np.repeat((counts > 0).astype(np.int64), reps)
        times = (s * period + rng.uniform(0, period, size=len(rows))).astype(np.int64)
        chunks.append(np.stack([rows[:, 0], rows[:, 2], rows[:, 1], polarity, times], axis=1))
    events = np.concatenate(chunks) if chunks else np.zeros((0, 5), dtype=np.int64)
    events = events[np.argsort(events[:, 0], kind="stable")]
    bounds = np.searchsorted(events[:, 0], np.arange(n + 1))
    return [tuple(events[bounds[i]:bounds[i + 1], 1:].T) for i in range(n)]


# ----------------------------------------------------------------------------- readers
def _tonic():
    try:
        import tonic.io
    except ImportError:  # pragma: no cover - tonic is a dependency
        raise DataError("reading event datasets needs the tonic package (pip install tonic)") from None
    return tonic.io


def _missing(kind: EventKind, directory: Path, what: str) -> DataError:
    return DataError(f"{directory}: {what}; expected {kind.layout} (published by {kind.published}; snnas never "
                     "downloads)")


def _files(directory: Path, pattern: str) -> list[Path]:
    """The files matching ``pattern``, sorted; a pipe, device or broken link among them is refused
    (reading one would block or fail mid-way)."""
    from snnas.nas.data.dataset import _regular

    found = sorted(p for p in directory.glob(pattern) if not p.is_dir())
    for path in found:
        _regular(path)
    return found


def _list_files(kind: EventKind, directory: Path) -> tuple[list[tuple[Path, int]], int | None]:
    """[(file, label)] in a fixed order with the training files first, and where the test files start."""
    if not directory.is_dir():
        raise _missing(kind, directory, "no such directory")
    if kind.name == "n-mnist":
        parts = []
        for part in ("Train", "Test"):
            files = [(f, int(f.parent.name)) for f in _files(directory / part, "[0-9]/*.bin")]
            if not files:
                raise _missing(kind, directory, f"no {part}/<digit>/*.bin files")
            parts.append(files)
        return parts[0] + parts[1], len(parts[0])
    if kind.name == "dvs-gesture":
        parts = []
        for part in ("ibmGestureTrain", "ibmGestureTest"):
            files = [(f, int(f.stem)) for f in _files(directory / part, "user*/*.npy") if f.stem.isdigit()]
            if not files:
                raise _missing(kind, directory, f"no {part}/userNN_<lighting>/<label>.npy files")
            parts.append(files)
        return parts[0] + parts[1], len(parts[0])
    if kind.name == "n-caltech101":
        root = directory / "Caltech101" if (directory / "Caltech101").is_dir() else directory
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _files(d, "*.bin")) if root.is_dir() else []
        if len(classes) < 2:
            raise _missing(kind, directory, "fewer than two class folders with .bin files")
        groups = [[(f, label) for f in _files(root / name, "*.bin")] for label, name in enumerate(classes)]
    else:  # cifar10-dvs: the original .aedat files or tonic's .aedat4 re-release
        groups = [[(f, label) for f in _files(directory / name, "*.aedat") + _files(directory / name, "*.aedat4")]
                  for label, name in enumerate(CIFAR10_CLASSES)]
        lacking = [name for name, group in zip(CIFAR10_CLASSES, groups) if not group]
        if lacking:
            raise _missing(kind, directory, f"no .aedat or .aedat4 files for {', '.join(lacking)}")
    cut = [math.ceil(len(g) * 0.9) for g in groups]  # the first ceil(90%) of each class trains, as Spikformer splits
    train = [item for g, c in zip(groups, cut) for item in g[:c]]
    test = [item for g, c in zip(groups, cut) for item in g[c:]]
    if not test:
        raise _missing(kind, directory, "too few files per class to hold a tenth out for testing")
    return train + test, len(train)


def read_events(kind: EventKind, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """One recording -> (x, y, p, t, width, height) with p in {0, 1}. The file must be a regular
    file within ``max_data_bytes()``, framed whole (no event record or header cut short) and hold
    at least one event."""
    from snnas.energy.untrusted import RefusedFile, over_limit
    from snnas.nas.data.dataset import _regular

    try:
        over_limit(str(path), "takes", _regular(path))
    except RefusedFile as exc:
        raise DataError(str(exc)) from None
    events = _decode(kind, path)
    if len(events[0]) == 0:
        raise DataError(f"{path}: an empty {kind.name} recording (no events); refused")
    return events


ATIS_EVENT = 5  # bytes per N-MNIST / N-Caltech101 event


def _decode(kind: EventKind, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    io = _tonic()
    try:
        if kind.name in ("n-mnist", "n-caltech101"):
            size = path.stat().st_size
            if size % ATIS_EVENT:
                raise ValueError(f"cut inside an event record: {size} bytes is not a whole number of "
                                 f"{ATIS_EVENT}-byte events")
            ev = io.read_mnist_file(str(path), dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
            x, y = ev["x"], ev["y"]
            if kind.name == "n-mnist":
                return x, y, ev["p"], ev["t"], 34, 34
            if len(ev):  # N-Caltech101 recordings differ in size: shifted to start at 0, as tonic does
                x, y = x - x.min(), y - y.min()
            return x, y, ev["p"], ev["t"], int(x.max()) + 1 if len(ev) else 1, int(y.max()) + 1 if len(ev) else 1
        if kind.name == "dvs-gesture":
            from snnas.energy.untrusted import read_array

            rows = read_array(path)  # numeric only: a pickled object array is refused
            if rows.ndim != 2 or rows.shape[1] < 4 or not np.issubdtype(rows.dtype, np.number):
                raise ValueError(f"expected numeric rows of x, y, p, t, got {rows.dtype} of shape {rows.shape}")
            if not np.isfinite(rows[:, :4]).all():
                raise ValueError("it holds NaN or infinite values")
            return rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], 128, 128
        if path.suffix == ".aedat4":
            return read_aedat4(path)
        version, start = _aer_dat_framing(path)
        if version == 4:
            return read_aedat4(path)
        raw = io.get_aer_events_from_file(str(path), version, start) if start < path.stat().st_size else \
            np.zeros(0, dtype=[("address", ">u4"), ("timeStamp", ">u4")])
        address = raw["address"].astype(np.int64)
        return (address >> 8) & 0x7F, (address >> 1) & 0x7F, address & 0x1, raw["timeStamp"].astype(np.int64), 128, 128
    except DataError:
        raise
    except Exception as exc:  # a torn or foreign file: name it
        raise DataError(f"{path}: not a readable {kind.name} recording ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None


AER_DAT_HEADER_MAX = 1 << 20  # bytes of '#' header lines: jAER writes a few hundred
AER_DAT3_PACKET = 28  # bytes of an AER-DAT 3.1 packet header
AER_DAT_EVENT = 8  # bytes of an event (address, time stamp) in AER-DAT 2 and 3.1, as tonic reads them


def _aer_dat_framing(path: Path) -> tuple[float, int]:
    """(version, where the events start) of an original AER-DAT file, checked whole before tonic
    reads it: a first line ``#!AER-DAT<version>``, '#' lines ending in a newline, then for 2.x whole
    8-byte (address, time stamp) records, for 3.1 whole packets (a 28-byte header whose capacity
    counts the 8-byte events that follow). Version 4 files are read as AEDAT 4."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.readline(256)
        if not first.startswith(b"#!AER-DAT"):
            raise ValueError("no AER-DAT header (#!AER-DAT<version>)")
        try:
            version = float(first[9:].strip())
        except ValueError:
            raise ValueError(f"its header names no AER-DAT version ({first[:40]!r})") from None
        line = first
        while True:
            if not line.endswith(b"\n"):
                raise ValueError(f"cut inside its header at byte {f.tell()} (a '#' line without its end)")
            start = f.tell()
            if start > AER_DAT_HEADER_MAX:
                raise ValueError(f"its '#' header runs past {AER_DAT_HEADER_MAX} bytes")
            if f.read(1) != b"#":
                break
            line = f.readline(AER_DAT_HEADER_MAX)
        if int(version) == 4:
            return 4.0, start
        if 2 <= version < 3:
            if (size - start) % AER_DAT_EVENT:
                raise ValueError(f"cut inside an event record: {size - start} bytes of events is not a whole number "
                                 f"of {AER_DAT_EVENT}-byte events")
            return version, start
        if version <= 3:
            raise ValueError(f"AER-DAT {version} is not read (2.x and 3.1 are)")
        position = start
        while position < size:
            f.seek(position)
            header = f.read(AER_DAT3_PACKET)
            if len(header) < AER_DAT3_PACKET:
                raise ValueError(f"cut inside the packet header at byte {position}")
            capacity = int.from_bytes(header[16:20], "little")
            position += AER_DAT3_PACKET + capacity * AER_DAT_EVENT
            if position > size:
                raise ValueError(f"the packet of {capacity} events at byte {f.tell() - AER_DAT3_PACKET} runs past the "
                                 "end of the file (cut short)")
        return version, start


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


AEDAT4_MAX_DECODED = 1 << 30  # bytes a compressed file may decode to: 64 M events, ~100x a CIFAR10-DVS recording


def _aedat4_framing(path: Path) -> None:
    """Check an AEDAT 4 file's framing before the decoder allocates anything: the header and every
    packet must fit in the file (a crafted length would otherwise make it allocate up to 4 GiB),
    and a compressed file may not decode to more than ``AEDAT4_MAX_DECODED`` bytes (a crafted
    LZ4 or Zstandard packet could otherwise expand a few kilobytes into gigabytes; the decoder
    decompresses every packet whole). The file: magic, u32 length + IOHeader flatbuffer
    (compression, file_data_position, description), then packets of u32 stream id, u32 length,
    payload, up to file_data_position (where a table of packets begins) or the end of the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(AEDAT4_MAGIC)) != AEDAT4_MAGIC:
            raise ValueError("no AEDAT 4 header (#!AER-DAT4.0)")
        head = f.read(4)
        length = int.from_bytes(head, "little") if len(head) == 4 else -1
        if not 0 < length <= size - len(AEDAT4_MAGIC) - 4:
            raise ValueError("its header is torn")
        header = f.read(length)
        end = len(AEDAT4_MAGIC) + 4 + length
        compression = _ioheader_field(header, 0, 4, 0)
        data_end = _ioheader_field(header, 1, 8, -1)
        codec = {0: None, 1: "LZ4", 2: "LZ4", 3: "Zstandard", 4: "Zstandard"}.get(compression, ...)
        if codec is ...:
            raise ValueError(f"its header names an unknown compression ({compression})")
        stop = data_end if 0 <= data_end <= size else size
        position, decoded = end, 0
        while position < stop:
            f.seek(position)
            frame = f.read(8)
            if len(frame) < 8:
                raise ValueError(f"torn packet header at byte {position}")
            length = int.from_bytes(frame[4:], "little")
            if position + 8 + length > size:
                raise ValueError(f"the packet at byte {position} runs past the end of the file (torn)")
            if codec is not None:
                decoded += _frames_bound(f, position + 8, position + 8 + length, AEDAT4_MAX_DECODED - decoded, codec)
                if decoded > AEDAT4_MAX_DECODED:
                    raise ValueError(f"its compressed packets could decode to more than {AEDAT4_MAX_DECODED >> 30} "
                                     f"GiB (the packet at byte {position} takes it over)")
            position += 8 + length


def _ioheader_field(buf: bytes, index: int, size: int, default: int) -> int:
    """Field ``index`` (a little-endian signed integer of ``size`` bytes) of an IOHeader flatbuffer,
    read by hand: root offset -> table, whose first 4 bytes point back to its vtable of u16 field
    offsets (compression is field 0, int32, default None = 0; file_data_position field 1, int64,
    default -1)."""
    table = int.from_bytes(buf[:4], "little")
    if len(buf) < 4 or table + 4 > len(buf):
        raise ValueError("its header is torn")
    vtable = table - int.from_bytes(buf[table:table + 4], "little", signed=True)
    if vtable < 0 or vtable + 4 > len(buf):
        raise ValueError("its header is torn")
    vsize = int.from_bytes(buf[vtable:vtable + 2], "little")
    at = vtable + 4 + 2 * index
    if vsize < 6 + 2 * index or at + 2 > len(buf):
        return default  # the field is absent
    offset = int.from_bytes(buf[at:at + 2], "little")
    if offset == 0:
        return default
    if table + offset + size > len(buf):
        raise ValueError("its header is torn")
    return int.from_bytes(buf[table + offset:table + offset + size], "little", signed=True)


def _read_at(f, position: int, n: int, end: int) -> bytes:
    if position + n > end:
        raise ValueError(f"a compressed packet is torn at byte {position}")
    f.seek(position)
    return f.read(n)


# Every block is charged at least this many bytes, so that walking a crafted packet of millions of
# empty blocks stops at the limit within seconds (a real stream's blocks decode to kilobytes each).
MIN_BLOCK_CHARGE = 64


def _frames_bound(f, position: int, end: int, limit: int, codec: str) -> int:
    """Most bytes the LZ4 or Zstandard frames in [position, end) can decode to, from their block
    headers alone; stops early once over ``limit``. Skippable frames (either format) decode to nothing."""
    magic, blocks = {"LZ4": (0x184D2204, _lz4_blocks), "Zstandard": (0xFD2FB528, _zstd_blocks)}[codec]
    total = 0
    while position < end and total <= limit:
        word = int.from_bytes(_read_at(f, position, 4, end), "little")
        if 0x184D2A50 <= word <= 0x184D2A5F:  # a skippable frame: magic, u32 size, bytes
            position += 8 + int.from_bytes(_read_at(f, position + 4, 4, end), "little")
            continue
        if word != magic:
            raise ValueError(f"a packet is not {codec}-compressed as its header says (byte {position})")
        for most, position in blocks(f, position, end):
            total += max(most, MIN_BLOCK_CHARGE)
            if total > limit:
                break
    return total


def _lz4_blocks(f, position: int, end: int):
    """(most bytes a block decodes to, where the next one starts) for each block of the LZ4 frame
    at ``position`` (LZ4 frame format 1.6: a stored block states its size, a compressed one decodes
    to at most the frame's block maximum), the end mark last."""
    flags, block_descriptor = _read_at(f, position + 4, 2, end)
    position += 7 + 8 * bool(flags & 0x08) + 4 * bool(flags & 0x01)  # magic, FLG, BD, [size], [dict id], HC
    block_max = 1 << (8 + 2 * ((block_descriptor >> 4) & 0x7))  # 4 -> 64 KiB ... 7 -> 4 MiB
    while True:
        word = int.from_bytes(_read_at(f, position, 4, end), "little")
        position += 4
        if word == 0:  # the end mark, then the optional content checksum
            yield 0, position + 4 * bool(flags & 0x04)
            return
        length = word & 0x7FFFFFFF
        position += length + 4 * bool(flags & 0x10)  # [block checksum]
        yield (length if word & 0x80000000 else block_max), position


def _zstd_blocks(f, position: int, end: int):
    """(most bytes a block decodes to, where the next one starts) for each block of the Zstandard
    frame at ``position`` (RFC 8878: raw and RLE blocks state their size, a compressed block decodes
    to at most 128 KiB)."""
    descriptor = _read_at(f, position + 4, 1, end)[0]
    single_segment = bool(descriptor & 0x20)
    content_size_bytes = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    position += 5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 0x3] + content_size_bytes
    while True:
        header = int.from_bytes(_read_at(f, position, 3, end), "little")
        kind, length = (header >> 1) & 0x3, header >> 3
        if kind == 3:
            raise ValueError(f"a Zstandard block has the reserved type (byte {position})")
        position += 3 + (1 if kind == 1 else length)
        if header & 1:  # the last block, then the optional checksum
            position += 4 * bool(descriptor & 0x04)
        yield (length, length, 128 << 10)[kind], position
        if header & 1:
            return


def read_aedat4(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """An AEDAT 4 recording (tonic's CIFAR10-DVS release) -> (x, y, p, t, width, height), the first
    event stream, decoded by the ``aedat`` package (the decoder tonic uses)."""
    try:
        import aedat
    except ImportError:  # pragma: no cover - aedat is a dependency
        raise DataError(f"{path}: reading .aedat4 files needs the aedat package (pip install aedat)") from None
    _aedat4_framing(path)
    decoder = aedat.Decoder(str(path))
    streams = {sid: s for sid, s in decoder.id_to_stream().items() if s.get("type") == "events"}
    if not streams:
        raise ValueError("it holds no event stream")
    sid = min(streams)
    width, height = int(streams[sid]["width"]), int(streams[sid]["height"])
    if not (0 < width <= 4096 and 0 < height <= 4096):
        raise ValueError(f"its event stream declares a {width}x{height} sensor")
    packets = [packet["events"] for packet in decoder if packet["stream_id"] == sid and "events" in packet]
    events = np.concatenate(packets) if packets else np.zeros(0, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"),
                                                                         ("on", "?")])
    return (events["x"].astype(np.int64), events["y"].astype(np.int64), events["on"].astype(np.int64),
            events["t"].astype(np.int64), width, height)


# ----------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    root = os.environ.get("SNNAS_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "snnas")
    return Path(root) / "events"


def _cache_key(kind: EventKind, time_steps: int, files: list[tuple[Path, int]]) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}:{kind.name}:{time_steps}:{kind.size}".encode())
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path.name}:{label}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{kind.name}-T{time_steps}-{kind.size}px-{digest.hexdigest()[:16]}"


def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    from snnas.energy.untrusted import read_array

    try:
        with read_array(path) as archive:
            return archive["frames"], archive["labels"], int(archive["test_from"])
    except Exception:  # a torn or stale cache file is rebuilt, never trusted
        return None


def _store(path: Path, frames: np.ndarray, labels: np.ndarray, test_from: int) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            np.savez(f, frames=frames, labels=labels, test_from=np.int64(test_from))
        os.replace(partial, path)
    except OSError:  # a read-only or full cache: the frames are still used, only not kept
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def _check_memory(n: int, time_steps: int, kind: EventKind) -> None:
    """Refuse frames that cannot fit in half the machine's memory, before allocating them."""
    need = n * time_steps * 2 * kind.size * kind.size * 4
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no check
        return
    if need > have // 2:
        raise DataError(f"{kind.name}@{time_steps}: {n} samples as {time_steps} frames of {kind.size}x{kind.size} "
                        f"need {need / 2**30:.1f} GiB, more than half of this machine's {have / 2**30:.1f} GiB; "
                        "use fewer frames (KIND@T)")


def load_events(kind: EventKind, directory: Path | None, time_steps: int, *, progress=None) -> Dataset:
    """The dataset as frames ``[N, T, 2, S, S]`` (see the module docstring)."""
    if kind.name == "digits-dvs":
        return _digits_dvs(time_steps)
    files, test_from = _list_files(kind, directory)
    cached = cache_dir() / f"{_cache_key(kind, time_steps, files)}.npz"
    hit = _load_cached(cached) if cached.is_file() else None
    if hit is None:
        _check_memory(len(files), time_steps, kind)
        frames = np.zeros((len(files), time_steps, 2, kind.size, kind.size), dtype=np.float32)
        for i, (path, _) in enumerate(files):
            x, y, p, t, width, height = read_events(kind, path)
            outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
            if outside.any():
                k = int(np.argmax(outside))
                raise DataError(f"{path}: an event at ({int(x[k])}, {int(y[k])}) lies outside the {width}x{height} "
                                f"sensor of {kind.name}; the file is not a {kind.name} recording or is corrupt")
            frames[i] = events_to_frames(x, y, p, t, width=width, height=height, time_steps=time_steps, size=kind.size)
            if progress is not None:
                progress(i + 1, len(files))
        labels = np.array([label for _, label in files], dtype=np.int64)
        _store(cached, frames, labels, test_from)
    else:
        frames, labels, test_from = hit
    return Dataset(f"{kind.name}@{time_steps}", torch.from_numpy(np.ascontiguousarray(frames)),
                   torch.from_numpy(labels), max(kind.classes, int(labels.max()) + 1), test_from=test_from)


def _digits_dvs(time_steps: int) -> Dataset:
    from snnas.nas.data.images import load_digits

    digits = load_digits()
    kind = KINDS["digits-dvs"]
    cached = cache_dir() / f"digits-dvs-T{time_steps}-{kind.size}px-v{CACHE_VERSION}-{digits.fingerprint}.npz"
    hit = _load_cached(cached) if cached.is_file() else None
    if hit is None:
        _check_memory(len(digits.labels), time_steps, kind)
        streams = simulate_saccades(digits.images[:, 0].numpy(), sensor=kind.size)
        frames = np.stack([events_to_frames(x, y, p, t, width=kind.size, height=kind.size, time_steps=time_steps,
                                            size=kind.size) for x, y, p, t in streams])
        _store(cached, frames, digits.labels.numpy(), -1)
    else:
        frames = hit[0]
    return Dataset(f"digits-dvs@{time_steps}", torch.from_numpy(np.ascontiguousarray(frames)), digits.labels.clone(),
                   digits.num_classes)
