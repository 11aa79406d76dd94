"""Event-camera data: each reader on small files written in its dataset's published format, the
frame binning, the cache, the simulated digits, and event data through search, train and energy."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import snnas.nas.data.events as events
from snnas.nas.data import DataError, load_dataset, model_input
from snnas.nas.data.events import KINDS, events_to_frames, load_events, parse_spec, simulate_saccades


# ----------------------------------------------------------------------------- writers of the real formats
def write_atis_bin(path, x, y, p, t):
    """N-MNIST / N-Caltech101 .bin: 40 bits per event (x, y, polarity + 23-bit time stamp in us)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = np.zeros((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    t = np.asarray(t, dtype=np.int64)
    raw[:, 2] = (np.asarray(p) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    path.write_bytes(raw.tobytes())


def write_gesture_npy(path, x, y, p, t_ms):
    """tonic's DVS Gesture release: one .npy per gesture, rows (x, y, p, t in ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([x, y, p, t_ms], axis=1).astype(np.int64))


def write_aedat2(path, x, y, p, t):
    """CIFAR10-DVS's original release: AER-DAT 2.0, '#' header lines, big-endian (address, time stamp)
    pairs, DVS128 address bits as tonic decodes them (x << 8 | y << 1 | polarity)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
    body = np.zeros(len(x), dtype=[("address", ">u4"), ("timeStamp", ">u4")])
    body["address"] = (np.asarray(x) << 8) | (np.asarray(y) << 1) | np.asarray(p)
    body["timeStamp"] = t
    path.write_bytes(header + body.tobytes())


def _flatbuffer_table(fields: bytes, field_offsets: list[int], *, table_size: int, identifier: bytes) -> bytes:
    """[root offset][identifier][vtable][table: soffset + fields]: a flatbuffer with one table."""
    vtable = np.array([4 + 2 * len(field_offsets), table_size, *field_offsets], dtype="<u2").tobytes()
    table_at = 8 + len(vtable)
    table_at += -table_at % 4
    head = np.array([table_at], dtype="<u4").tobytes() + identifier + vtable
    head += b"\0" * (table_at - len(head))
    return head + np.array([table_at - 8], dtype="<i4").tobytes() + fields


def _xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 (the LZ4 frame format's header checksum), from its published specification."""
    p1, p2, p3, p4, p5, mask = 2654435761, 2246822519, 3266489917, 668265263, 374761393, 0xFFFFFFFF
    rotl = lambda v, r: ((v << r) | (v >> (32 - r))) & mask  # noqa: E731
    n, i = len(data), 0
    if n >= 16:
        acc = [(seed + p1 + p2) & mask, (seed + p2) & mask, seed, (seed - p1) & mask]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 4 * k:i + 4 * k + 4], "little")
                acc[k] = rotl((acc[k] + lane * p2) & mask, 13) * p1 & mask
            i += 16
        h = (rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18)) & mask
    else:
        h = (seed + p5) & mask
    h = (h + n) & mask
    while i + 4 <= n:
        h = rotl((h + int.from_bytes(data[i:i + 4], "little") * p3) & mask, 17) * p4 & mask
        i += 4
    for byte in data[i:]:
        h = rotl((h + byte * p5) & mask, 11) * p1 & mask
    h = (h ^ (h >> 15)) * p2 & mask
    h = (h ^ (h >> 13)) * p3 & mask
    return h ^ (h >> 16)


def lz4_frame(data: bytes) -> bytes:
    """An LZ4 frame (format 1.6) of stored blocks: magic, FLG (version 1, independent blocks), BD
    (64 KiB blocks), header checksum, blocks with the 'uncompressed' bit, end mark."""
    descriptor = bytes([0x60, 0x40])
    out = (0x184D2204).to_bytes(4, "little") + descriptor + bytes([(_xxh32(descriptor) >> 8) & 0xFF])
    for at in range(0, len(data), 1 << 16):
        block = data[at:at + (1 << 16)]
        out += (len(block) | 0x80000000).to_bytes(4, "little") + block
    return out + bytes(4)


def zstd_frame(data: bytes) -> bytes:
    """A Zstandard frame (RFC 8878) of raw blocks: magic, descriptor (single segment, 4-byte
    content size), the size, blocks of (3-byte header: last, type raw, size) + bytes."""
    out = (0xFD2FB528).to_bytes(4, "little") + bytes([0xA0]) + len(data).to_bytes(4, "little")
    chunks = [data[at:at + (1 << 17)] for at in range(0, len(data), 1 << 17)] or [b""]
    for i, chunk in enumerate(chunks):
        out += ((len(chunk) << 3) | (i == len(chunks) - 1)).to_bytes(3, "little") + chunk
    return out


COMPRESSION = {None: (0, lambda b: b), "lz4": (1, lz4_frame), "zstd": (3, zstd_frame)}  # ioheader.fbs's enum


def write_aedat4(path, x, y, p, t, *, width=128, height=128, packets=2, data_table=False, compression=None):
    """tonic's CIFAR10-DVS release: AEDAT 4 (DV's format), written from its published schemas
    (ioheader.fbs, events.fbs): magic line, u32 length + IOHeader flatbuffer (compression, the
    stream description as XML), then packets of (u32 stream id, u32 length, size-prefixed
    EventPacket flatbuffer of 16-byte Event structs: int64 t, int16 x, int16 y, bool on), each
    compressed as the header says (``compression``: None, "lz4" or "zstd").
    ``data_table``: DV's trailing table of packets after them, which file_data_position points at
    (bytes here that would read as a torn packet if a reader took them for one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code, compress = COMPRESSION[compression]
    xml = (f'<dv version="2.0"><node name="outInfo" path="/mainloop/output_file/outInfo/"><node name="0" '
           f'path="/mainloop/output_file/outInfo/0/"><attr key="compression" type="string">{compression or "NONE"}'
           '</attr><attr key="typeIdentifier" type="string">EVTS</attr><node name="info" '
           f'path="/mainloop/output_file/outInfo/0/info/"><attr key="sizeX" type="int">{width}</attr>'
           f'<attr key="sizeY" type="int">{height}</attr></node></node></node></dv>').encode()
    # IOHeader: [file_data_position int64, when there is a table][compression int32, unless None]
    # [offset to the description], then the description (a string after the table's fields)
    text = np.array([len(xml)], dtype="<u4").tobytes() + xml + b"\0"

    def io_header(data_position):
        fields, offsets = b"", [0, 0]
        if data_position is not None:
            offsets[1] = 4 + len(fields)
            fields += np.array([data_position], dtype="<i8").tobytes()
        if code:
            offsets[0] = 4 + len(fields)
            fields += np.array([code], dtype="<i4").tobytes()
        offsets.append(4 + len(fields))
        fields += np.array([4], dtype="<u4").tobytes()
        return _flatbuffer_table(fields + text, offsets, table_size=4 + len(fields), identifier=b"IOHE")

    header = io_header(0 if data_table else None)
    out = b"#!AER-DAT4.0\r\n" + np.array([len(header)], dtype="<u4").tobytes() + header
    event = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "?"), ("pad", "V3")])
    for chunk in np.array_split(np.arange(len(x)), packets):
        rows = np.zeros(len(chunk), dtype=event)
        rows["t"], rows["x"], rows["y"], rows["on"] = (np.asarray(a)[chunk] for a in (t, x, y, p))
        # after the u32 size prefix: root offset, "EVTS", vtable (6 bytes) + 2 pad, table at 16 (soffset, offset
        # to the vector), 4 pad, vector length at 28, structs at 32
        vector = np.array([len(rows)], dtype="<u4").tobytes() + rows.tobytes()
        body = _flatbuffer_table(np.array([8], dtype="<u4").tobytes() + b"\0" * 4 + vector, [4], table_size=8,
                                 identifier=b"EVTS")
        packet = compress(np.array([len(body)], dtype="<u4").tobytes() + body)
        out += np.array([0, len(packet)], dtype="<u4").tobytes() + packet
    if data_table:  # the same header with the table's position, then the table
        table_at = len(out)
        out = out.replace(header, io_header(table_at), 1) + np.array([0, 0xFFFFFF00, 7], dtype="<u4").tobytes()
    path.write_bytes(out)


def _stream(n=40, seed=0, side=34):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, side, n), rng.integers(0, side, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 300_000, n)))


# ----------------------------------------------------------------------------- frames
def test_frames_split_events_into_equal_count_slices_per_polarity_and_pixel():
    x, y, p, t = np.array([1, 1, 2, 3]), np.array([0, 0, 5, 6]), np.array([1, 1, 0, 1]), np.array([30, 10, 20, 40])
    frames = events_to_frames(x, y, p, t, width=8, height=8, time_steps=2, size=8)
    assert frames.shape == (2, 2, 8, 8) and frames.sum() == 4
    assert frames[0, 0, 0, 1] == 1 and frames[0, 1, 5, 2] == 1  # times 10 and 20 in slice 0: ON and OFF
    assert frames[1, 0, 0, 1] == 1 and frames[1, 0, 6, 3] == 1  # times 30 and 40 in slice 1
    scaled = events_to_frames(np.array([239]), np.array([100]), np.array([1]), np.array([0]), width=240, height=180,
                              time_steps=1, size=128)
    assert scaled[0, 0, int(100 * 128 / 240), int(239 * 128 / 240)] == 1  # the longer side fills the frame


# ----------------------------------------------------------------------------- readers
def test_n_mnist_reader_reads_train_and_test_bin_files_with_the_official_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    streams = {}
    for part, digit, i in [("Train", 0, 0), ("Train", 1, 1), ("Train", 1, 2), ("Test", 0, 3), ("Test", 1, 4)]:
        streams[i] = _stream(seed=i)
        write_atis_bin(tmp_path / "nmnist" / part / str(digit) / f"{i:05d}.bin", *streams[i])
    data = load_dataset(f"n-mnist@5:{tmp_path / 'nmnist'}")
    assert data.images.shape == (5, 5, 2, 34, 34) and data.time_steps == 5 and data.test_from == 3
    assert data.labels.tolist() == [0, 1, 1, 0, 1]
    for row, i in enumerate([0, 1, 2, 3, 4]):
        x, y, p, t = streams[i]
        want = events_to_frames(x, y, p, t, width=34, height=34, time_steps=5, size=34)
        assert np.array_equal(data.images[row].numpy(), want)


def test_n_caltech101_reader_holds_out_a_tenth_of_each_class(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for label, name in enumerate(["accordion", "airplanes"]):
        for i in range(10):
            write_atis_bin(tmp_path / "nc" / "Caltech101" / name / f"image_{i:04d}.bin", *_stream(seed=10 * label + i, side=200))
    data = load_dataset(f"n-caltech101@2:{tmp_path / 'nc'}")
    assert data.images.shape == (20, 2, 2, 128, 128) and data.test_from == 18
    assert data.labels[:18].tolist() == [0] * 9 + [1] * 9 and data.labels[18:].tolist() == [0, 1]
    assert float(data.images.sum()) == 20 * 40  # every event lands in a frame


def test_dvs_gesture_reader_reads_tonics_npy_release(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part, user in (("ibmGestureTrain", "user01_fluorescent"), ("ibmGestureTest", "user24_led")):
        for label in (0, 10):
            x, y, p, t = _stream(seed=label, side=128)
            write_gesture_npy(tmp_path / "g" / part / user / f"{label}.npy", x, y, p, t // 1000)
    data = load_dataset(f"dvs-gesture:{tmp_path / 'g'}")
    assert data.images.shape == (4, 16, 2, 128, 128) and data.test_from == 2 and data.num_classes == 11
    assert sorted(data.labels.tolist()) == [0, 0, 10, 10]


@pytest.mark.parametrize("suffix, write", [(".aedat", write_aedat2), (".aedat4", write_aedat4),
                                           (".aedat4", lambda *a: write_aedat4(*a, data_table=True)),
                                           (".aedat4", lambda *a: write_aedat4(*a, compression="lz4")),
                                           (".aedat4", lambda *a: write_aedat4(*a, compression="zstd", data_table=True))],
                         ids=["original AER-DAT release", "tonic's AEDAT 4 release", "AEDAT 4 with a packet table",
                              "AEDAT 4, LZ4 packets", "AEDAT 4, Zstandard packets and a table"])
def test_cifar10_dvs_reader_reads_both_releases(tmp_path, monkeypatch, suffix, write):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for label, name in enumerate(events.CIFAR10_CLASSES):
        for i in range(10):
            write(tmp_path / "c" / name / f"cifar10_{name}_{i}{suffix}", *_stream(seed=label * 10 + i, side=128))
    data = load_dataset(f"cifar10-dvs@4:{tmp_path / 'c'}")
    assert data.images.shape == (100, 4, 2, 128, 128) and data.test_from == 90  # the first 9 of each class train
    assert data.labels[:9].tolist() == [0] * 9 and data.labels[90:].tolist() == list(range(10))
    for row, seed in ((0, 0), (90, 9), (99, 99)):  # a training file of class 0, the held-out files of 0 and 9
        x, y, p, t = _stream(seed=seed, side=128)
        assert np.array_equal(data.images[row].numpy(),
                              events_to_frames(x, y, p, t, width=128, height=128, time_steps=4, size=128))


@pytest.mark.parametrize("damage", ["cut inside a packet", "header length 4 GiB", "packet length 4 GiB",
                                    "header table outside the header", "foreign", "stream of frames only",
                                    "zstd bomb", "lz4 bomb", "unknown compression", "lz4 packet cut"])
def test_a_torn_or_crafted_aedat4_file_is_named_before_decoding(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for label, name in enumerate(events.CIFAR10_CLASSES):
        for i in range(10):  # ten a class: the last one is held out
            write_aedat4(tmp_path / name / f"{i}.aedat4", *_stream(seed=label + i, side=128))
    bad = tmp_path / "truck" / "9.aedat4"
    raw = bytearray(bad.read_bytes())
    magic = len(b"#!AER-DAT4.0\r\n")
    header_end = magic + 4 + int.from_bytes(raw[magic:magic + 4], "little")
    if damage == "cut inside a packet":
        raw = raw[:-100]
    elif damage == "header length 4 GiB":
        raw[magic:magic + 4] = b"\xff\xff\xff\xff"
    elif damage == "header table outside the header":  # the decoder reads the header unchecked: never reach it
        raw[magic + 4:magic + 8] = b"\x00\x00\xff\xff"
    elif damage == "packet length 4 GiB":
        raw[header_end + 4:header_end + 8] = b"\xff\xff\xff\xff"
    elif damage == "foreign":
        raw = bytearray(b"PK\x03\x04" + bytes(200))
    elif damage == "stream of frames only":
        raw = bytearray(bytes(raw).replace(b">EVTS<", b">FRME<"))
    elif damage == "unknown compression":
        write_aedat4(bad, *_stream(seed=9, side=128), compression="zstd")
        raw = bytearray(bad.read_bytes().replace(np.array([3], "<i4").tobytes() + np.array([4], "<u4").tobytes(),
                                                 np.array([9], "<i4").tobytes() + np.array([4], "<u4").tobytes(), 1))
    elif damage == "lz4 packet cut":  # the packet's length fits the file, its frame runs past the packet
        write_aedat4(bad, *_stream(seed=9, side=128), compression="lz4", packets=1)
        raw = bytearray(bad.read_bytes())
        raw[-4:] = (0x1000).to_bytes(4, "little")  # the end mark now reads as a block of 4 KiB
    else:  # a small packet that decodes to more than 1 GiB: a Zstandard frame of 8200 RLE blocks of
        # 128 KiB (33 kB), or an LZ4 frame of 257 blocks (4 MiB maximum) that each repeat one byte 4 MiB times
        write_aedat4(bad, *_stream(seed=9, side=128), compression=damage.split()[0])
        if damage == "zstd bomb":  # descriptor: no content size; window descriptor; blocks, the last one flagged
            block = lambda last: ((128 << 10) << 3 | 1 << 1 | last).to_bytes(3, "little") + b"\xff"  # noqa: E731
            bomb = (0xFD2FB528).to_bytes(4, "little") + bytes([0x00, 0x58]) + block(0) * 8199 + block(1)
        else:  # one sequence: literal 'a', then a match at offset 1 of 4 MiB - 6 bytes; then 5 literals
            extra = (4 << 20) - 6 - 19
            sequence = b"\x1fa\x01\x00" + b"\xff" * (extra // 255) + bytes([extra % 255]) + b"\x50abcde"
            descriptor = bytes([0x60, 0x70])
            bomb = (0x184D2204).to_bytes(4, "little") + descriptor + bytes([(_xxh32(descriptor) >> 8) & 0xFF]) + \
                (len(sequence).to_bytes(4, "little") + sequence) * 257 + bytes(4)
        raw = bytearray(bad.read_bytes()) + np.array([0, len(bomb)], dtype="<u4").tobytes() + bomb
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        load_dataset(f"cifar10-dvs:{tmp_path}")
    message = str(info.value)
    assert message.startswith(f"{bad}: not a readable cifar10-dvs recording") and "\n" not in message, message
    if "bomb" in damage:
        assert "could decode to more than 1 GiB" in message, message


@pytest.mark.parametrize("spec, words", [
    ("n-mnist:{d}/absent", ["no such directory", "Train/<digit>/*.bin", "never downloads", "garrickorchard"]),
    ("n-mnist:{d}", ["no Test/<digit>/*.bin files"]),  # a partial folder: training files only
    ("n-mnist", ["give the folder", "n-mnist:DIR"]),
    ("dvs-gesture:{d}", ["ibmGestureTrain"]),
    ("cifar10-dvs:{d}", ["no .aedat or .aedat4 files for airplane", ".aedat4"]),
    ("n-mnist@0:{d}", ["time steps after @"]),
    ("digits-dvs:{d}", ["takes no folder"]),
])
def test_missing_partial_and_wrong_specs_are_one_line_naming_what_is_expected(tmp_path, spec, words):
    write_atis_bin(tmp_path / "Train" / "0" / "0.bin", *_stream())
    with pytest.raises(DataError) as info:
        load_dataset(spec.format(d=tmp_path))
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_torn_recording_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("ibmGestureTrain", "ibmGestureTest"):
        write_gesture_npy(tmp_path / part / "user01_led" / "3.npy", *_stream(side=128))
    torn = tmp_path / "ibmGestureTest" / "user01_led" / "3.npy"
    torn.write_bytes(torn.read_bytes()[:60])
    with pytest.raises(DataError, match="3.npy: not a readable dvs-gesture recording"):
        load_dataset(f"dvs-gesture:{tmp_path}")


def test_frames_are_cached_by_dataset_t_and_files_and_a_second_load_reads_no_recording(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("Train", "Test"):
        for digit in (0, 1):
            write_atis_bin(tmp_path / "n" / part / str(digit) / "a.bin", *_stream(seed=digit))
    first = load_dataset(f"n-mnist:{tmp_path / 'n'}")
    assert len(list((tmp_path / "cache" / "events").glob("n-mnist-T10-34px-*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(events, "read_events", refuse)
    again = load_dataset(f"n-mnist:{tmp_path / 'n'}")
    assert torch.equal(first.images, again.images) and again.test_from == first.test_from
    with pytest.raises(AssertionError):  # another T is another cache entry
        load_dataset(f"n-mnist@4:{tmp_path / 'n'}")
    (tmp_path / "cache" / "events").joinpath(next(p.name for p in (tmp_path / "cache" / "events").glob("*.npz"))) \
        .write_bytes(b"torn")
    with pytest.raises(AssertionError):  # a torn cache file is rebuilt from the recordings, never trusted
        load_dataset(f"n-mnist:{tmp_path / 'n'}")


# ----------------------------------------------------------------------------- simulated digits
def test_saccades_of_a_digit_give_on_and_off_events_at_its_edges_only():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 10:18, 12:16] = 1.0  # a bar
    (x, y, p, t), = simulate_saccades(image)
    assert len(x) > 50 and set(np.unique(p)) == {0, 1}
    assert t.min() >= 0 and t.max() < 300_000  # three saccades of 100 ms
    # nothing fires far from the bar (the canvas is 34 x 34, the bar at rows 13..20, columns 15..18)
    assert x.min() >= 15 - 4 and x.max() <= 18 + 4 and y.min() >= 13 - 4 and y.max() <= 20 + 4
    blank = simulate_saccades(np.zeros((1, 28, 28), dtype=np.float32))[0]
    assert len(blank[0]) == 0  # a static uniform scene makes no events


def test_digits_dvs_are_frames_of_simulated_events_from_the_embedded_digits():
    data = load_dataset("digits-dvs")
    assert data.images.shape == (5000, 4, 2, 34, 34) and data.name == "digits-dvs@4"
    per_sample = data.images.sum(dim=(1, 2, 3, 4))
    assert 1000 < float(per_sample.mean()) < 10000  # N-MNIST recordings hold about 4,000 events
    assert torch.equal(data.images, data.images.round())  # counts
    assert model_input(data.images[:3]).shape == (4, 3, 2, 34, 34)


def test_spec_parsing():
    assert parse_spec("digits") is None and parse_spec("cifar10:x") is None
    kind, folder, t = parse_spec("dvs-gesture@20:/data/g")
    assert kind is KINDS["dvs-gesture"] and str(folder) == "/data/g" and t == 20


# ----------------------------------------------------------------------------- through the commands
def snnas(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "snnas", *args], capture_output=True, text=True, timeout=900,
                          cwd=cwd)


def test_a_space_whose_time_steps_miss_the_datas_t_is_refused_in_one_line(tmp_path):
    out = snnas("search", "--data", "digits-dvs@8", "--budget", "1", "--out", str(tmp_path))
    assert out.returncode != 0
    assert out.stderr.count("\n") <= 1 and "global.time_steps" in out.stderr and "8 frames" in out.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_search_on_digits_dvs_takes_t_and_polarities_from_the_data(tmp_path):
    tiny = ["--steps", "4", "--train-size", "64", "--val-size", "32", "--workers", "1"]
    out = snnas("search", "--data", "digits-dvs", "--budget", "2", "--out", str(tmp_path), *tiny)
    assert out.returncode == 0, out.stderr
    trials = __import__("pandas").read_csv(tmp_path / "snnas" / "trials.csv")
    done = trials[trials["state"] == "complete"]
    assert len(done) and (done["time_steps"] == 4).all() and (done["in_channels"] == 2).all()
    assert json.loads((tmp_path / "snnas" / "summary.json").read_text())["data"] == "digits-dvs"


@pytest.mark.slow
def test_train_evaluate_and_energy_on_digits_dvs(tmp_path):
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps({"img_size": 16, "in_channels": 2, "num_classes": 10, "time_steps": 4, "stem": "sps",
                                "stem_downsample": 1, "depths": [1], "dims": [16], "heads": [2],
                                "attention": ["sdsa"], "patch_sizes": [1], "mlp_ratio": 2}))
    trained = snnas("train", str(arch), "--data", "digits-dvs", "--epochs", "1", "--warmup-epochs", "0",
                    "--resolution", "16", "--lr", "0.005", "--batch-size", "32", "--out", str(tmp_path / "t"))
    assert trained.returncode == 0, trained.stderr
    evaluation = json.loads((tmp_path / "t" / "evaluation.json").read_text())
    assert evaluation["data"]["name"] == "digits-dvs@4" and evaluation["arch"]["time_steps"] == 4
    assert evaluation["accuracy"] > 0.15  # one epoch on simulated events already beats chance (10%)
    energy = snnas("energy", str(tmp_path / "t" / "best.pt"), "--format", "json", "--samples", "4")
    assert energy.returncode == 0, energy.stderr
    assert "held-out" in energy.stderr


def test_a_pickled_object_array_in_place_of_a_recording_is_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("ibmGestureTrain", "ibmGestureTest"):
        write_gesture_npy(tmp_path / part / "user01_led" / "3.npy", *_stream(side=128))
    np.save(tmp_path / "ibmGestureTest" / "user01_led" / "3.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="3.npy: not a readable dvs-gesture recording .*pickled"):
        load_dataset(f"dvs-gesture:{tmp_path}")


def test_frames_that_cannot_fit_in_memory_are_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("Train", "Test"):
        write_atis_bin(tmp_path / part / "0" / "a.bin", *_stream())
    monkeypatch.setattr(events.os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 256)  # a 1 MiB machine
    with pytest.raises(DataError, match=r"n-mnist@1000: 2 samples as 1000 frames of 34x34 need .* GiB"):
        load_dataset(f"n-mnist@1000:{tmp_path}")


@pytest.mark.parametrize("bad", ["nan", "outside"])
def test_events_with_nan_or_off_sensor_coordinates_are_refused_naming_the_file(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("ibmGestureTrain", "ibmGestureTest"):
        write_gesture_npy(tmp_path / part / "user01_led" / "3.npy", *_stream(side=128))
    rows = np.load(tmp_path / "ibmGestureTest" / "user01_led" / "3.npy").astype(np.float64)
    rows[5, 0] = np.nan if bad == "nan" else 500
    np.save(tmp_path / "ibmGestureTest" / "user01_led" / "3.npy", rows)
    with pytest.raises(DataError, match="3.npy: .*(NaN|outside the 128x128 sensor)"):
        load_dataset(f"dvs-gesture:{tmp_path}")


# ----------------------------------------------------------------------------- augmentation
def test_event_augmentation_moves_every_frame_of_a_sample_alike_and_keeps_counts_whole():
    from snnas.nas.train.training import EVENT_OPS, event_augment

    g = torch.Generator().manual_seed(0)
    pattern = torch.randint(1, 4, (64, 1, 1, 16, 16), generator=torch.Generator().manual_seed(1)).float()
    x = pattern * torch.arange(1, 4, dtype=torch.float32)[None, :, None, None, None]  # [64, 3, 1, 16, 16], count x (t+1)
    x = x.expand(64, 3, 2, 16, 16).contiguous()
    out = event_augment(x, g)
    assert out.shape == x.shape and torch.equal(out, out.round())  # nearest resampling: counts stay whole
    for i in range(64):  # the same spatial change at every time step and polarity
        base = out[i, 0, 0]
        for t in range(3):
            assert torch.equal(out[i, t, 1], out[i, t, 0]) and torch.equal(out[i, t, 0], base * (t + 1))
    changed = sum(not torch.equal(out[i], x[i]) for i in range(64))
    assert 40 < changed < 64  # identity (and magnitudes below a pixel) leave some samples as they were
    again = event_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and len(EVENT_OPS) == 6


def test_event_augmentation_is_on_by_default_for_event_data_only():
    from snnas.nas.train.training import Recipe

    arch = __import__("tests.conftest", fromlist=["tiny_arch"]).tiny_arch()
    assert Recipe().resolved(arch, "cifar10-dvs@16", events=True).event_aug is True
    assert Recipe().resolved(arch, "cifar10:x").event_aug is False
    assert Recipe(event_aug=False).resolved(arch, "dvs-gesture@16", events=True).event_aug is False
    assert Recipe(event_aug=True).resolved(arch, "digits").event_aug is False  # images: nothing to apply it to


def test_the_first_reading_of_an_event_dataset_reports_progress_and_a_cached_one_does_not(tmp_path, monkeypatch, capsys):
    from snnas.cli.common import load_data

    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("Train", "Test"):
        for i in range(10):
            write_atis_bin(tmp_path / "n" / part / str(i % 2) / f"{i}.bin", *_stream(seed=i))
    load_data(f"n-mnist:{tmp_path / 'n'}")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("reading n-mnist")]
    assert len(lines) == 10 and lines[-1].split(": ", 1)[1].startswith("20 of 20 recordings")
    load_data(f"n-mnist:{tmp_path / 'n'}")
    assert "reading" not in capsys.readouterr().err


def test_an_unwritable_cache_costs_the_cache_only(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "not-a-folder"))
    for part in ("Train", "Test"):
        write_atis_bin(tmp_path / "n" / part / "0" / "a.bin", *_stream())
    data = load_dataset(f"n-mnist:{tmp_path / 'n'}")
    assert data.images.shape == (2, 10, 2, 34, 34) and float(data.images.sum()) == 80


# ----------------------------------------------------------------------------- empty, torn and non-regular recordings
def write_aedat31(path, x, y, p, t, *, packets=2):
    """AER-DAT 3.1 as tonic reads it: '#' header lines, then packets of a 28-byte header (capacity at
    bytes 16..20) and that many little-endian (address, time stamp) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = np.zeros(len(x), dtype=[("address", "<u4"), ("timeStamp", "<u4")])
    body["address"] = (np.asarray(x) << 8) | (np.asarray(y) << 1) | np.asarray(p)
    body["timeStamp"] = t
    out = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"
    for chunk in np.array_split(body, packets):
        header = np.zeros(7, dtype="<i4")
        header[0], header[1], header[4], header[5], header[6] = 1, 8, len(chunk), len(chunk), len(chunk)
        out += np.int16(1).tobytes() + np.int16(0).tobytes() + header[1:].tobytes() + chunk.tobytes()
    path.write_bytes(out)


def test_an_aer_dat_3_1_recording_reads_whole(tmp_path):
    x, y, p, t = _stream(side=128)
    write_aedat31(tmp_path / "a.aedat", x, y, p, t)
    rx, ry, rp, rt, w, h = events.read_events(KINDS["cifar10-dvs"], tmp_path / "a.aedat")
    assert (rx.tolist(), ry.tolist(), rp.tolist(), rt.tolist(), w, h) == (x.tolist(), y.tolist(), p.tolist(),
                                                                          t.tolist(), 128, 128)


def _aedat2_bytes(tmp_path):
    write_aedat2(tmp_path / "whole.aedat", *_stream(side=128))
    return (tmp_path / "whole.aedat").read_bytes()


@pytest.mark.parametrize("kind, name, make, words", [
    ("n-mnist", "empty.bin", lambda d: b"", "an empty n-mnist recording"),
    ("n-mnist", "torn.bin", lambda d: b"\x01" * 7, "cut inside an event record: 7 bytes"),
    ("n-mnist", "overflow.bin", lambda d: bytes([0, 240, 0, 0, 0]) * 3, "an empty n-mnist recording"),
    ("n-caltech101", "empty.bin", lambda d: b"", "an empty n-caltech101 recording"),
    ("cifar10-dvs", "header.aedat", lambda d: _aedat2_bytes(d)[:20], "cut inside its header"),
    ("cifar10-dvs", "event.aedat", lambda d: _aedat2_bytes(d)[:-3], "cut inside an event record"),
    ("cifar10-dvs", "nothing.aedat", lambda d: b"#!AER-DAT2.0\r\n# no events\r\n", "an empty cifar10-dvs recording"),
    ("cifar10-dvs", "zero.aedat", lambda d: b"", "no AER-DAT header"),
    ("cifar10-dvs", "v1.aedat", lambda d: b"#!AER-DAT1.0\r\n" + bytes(12), "AER-DAT 1.0 is not read"),
    ("cifar10-dvs", "packet.aedat", lambda d: (write_aedat31(d / "p.aedat", *_stream(side=128)),
                                               (d / "p.aedat").read_bytes()[:-9])[1], "runs past the end"),
    ("dvs-gesture", "empty.npy", lambda d: (np.save(d / "e.npy", np.zeros((0, 4), dtype=np.int64)),
                                            (d / "e.npy").read_bytes())[1], "an empty dvs-gesture recording"),
])
def test_an_empty_or_torn_recording_is_refused_naming_the_file(tmp_path, kind, name, make, words):
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    with pytest.raises(DataError) as info:
        events.read_events(KINDS[kind], path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message


def test_a_named_pipe_among_recordings_is_refused_unopened(tmp_path, monkeypatch):
    import os
    import threading
    import time

    monkeypatch.setenv("SNNAS_CACHE", str(tmp_path / "cache"))
    for part in ("Train", "Test"):
        write_atis_bin(tmp_path / part / "0" / "a.bin", *_stream())
    fifo = tmp_path / "Test" / "0" / "b.bin"
    os.mkfifo(fifo)

    def unblock():  # should a reader open it after all, the test fails instead of hanging
        time.sleep(20)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=unblock, daemon=True).start()
    with pytest.raises(DataError, match=f"{fifo}: not a regular file but a named pipe"):
        load_dataset(f"n-mnist:{tmp_path}")


def test_a_recording_beyond_the_data_limit_is_refused_before_reading(tmp_path, monkeypatch):
    write_atis_bin(tmp_path / "a.bin", *_stream(n=400))
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "1K")
    with pytest.raises(DataError, match=r"a.bin: takes 2.0 KiB, more than the 1.0 KiB limit"):
        events.read_events(KINDS["n-mnist"], tmp_path / "a.bin")
