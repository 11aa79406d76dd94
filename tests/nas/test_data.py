import pickle
import tarfile

import numpy as np
import pytest
import torch

from snnas.nas.data import DataError, ProxySplit, load_dataset


def _cifar_batch(n, classes, key="labels"):
    rng = np.random.default_rng(0)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key.encode(): list(rng.integers(0, classes, n))}


def test_embedded_digits_are_real_mnist():
    data = load_dataset("digits")
    assert data.images.shape == (5000, 1, 28, 28) and data.num_classes == 10
    assert torch.bincount(data.labels).tolist() == [500] * 10
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert (data.images > 0.5).float().mean() < 0.3  # dark background, bright strokes


def test_cifar_python_archive_extracted_and_as_tar_gz(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "test_batch"]:
        (folder / name).write_bytes(pickle.dumps(_cifar_batch(6, 3)))
    extracted = load_dataset(f"cifar10:{tmp_path}")
    assert extracted.images.shape == (12, 3, 32, 32)
    archive_dir = tmp_path / "packed"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    packed = load_dataset(str(archive_dir))
    assert torch.equal(packed.images, extracted.images) and torch.equal(packed.labels, extracted.labels)


def test_cifar100_uses_fine_labels(tmp_path):
    (tmp_path / "train").write_bytes(pickle.dumps(_cifar_batch(5, 100, key="fine_labels")))
    (tmp_path / "test").write_bytes(pickle.dumps(_cifar_batch(5, 100, key="fine_labels")))
    assert load_dataset(f"cifar100:{tmp_path}").images.shape == (10, 3, 32, 32)


def test_image_folder_and_npz(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    folder = load_dataset(str(tmp_path / "imgs"))
    assert folder.images.shape == (6, 3, 10, 12) and folder.num_classes == 2  # their own size
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.array([0, 1, 0, 1]))
    assert load_dataset(str(tmp_path / "d.npz")).images.shape == (4, 1, 8, 8)


@pytest.mark.parametrize("make, words", [
    (lambda p: str(p / "nowhere"), "no such path"),
    (lambda p: f"cifar10:{p / 'nowhere'}", "no such directory"),
    (lambda p: (np.savez(p / "a.npz", x=np.zeros((3, 4, 4))), str(p / "a.npz"))[1], "needs arrays 'x' and 'y'"),
    (lambda p: (np.savez(p / "b.npz", x=np.zeros((3, 4, 4)), y=np.zeros(3, dtype=int)), str(p / "b.npz"))[1],
     "only one class"),
    (lambda p: (np.savez(p / "c.npz", x=np.zeros((3, 4, 4)), y=np.array([0, 1])), str(p / "c.npz"))[1],
     "3 images but 2 labels"),
    (lambda p: ((p / "x.npz").write_bytes(b"junk"), str(p / "x.npz"))[1], "not a readable .npz"),
    (lambda p: ((p / "data_batch_1").write_bytes(b"\x80junk"), f"cifar10:{p}")[1], "corrupt pickle"),
])
def test_bad_data_gives_a_clear_error(tmp_path, make, words):
    with pytest.raises(DataError, match=words):
        load_dataset(make(tmp_path))


def test_proxy_split_is_fixed_by_its_seed_and_resized():
    data = load_dataset("digits")
    a = ProxySplit.make(data, train_size=100, val_size=50, resolution=16, seed=3)
    b = ProxySplit.make(data, train_size=100, val_size=50, resolution=16, seed=3)
    assert torch.equal(a.train_y, b.train_y) and a.fingerprint == b.fingerprint
    assert a.train_x.shape == (100, 1, 16, 16) and a.val_x.shape == (50, 1, 16, 16)
    assert ProxySplit.make(data, train_size=100, val_size=50, resolution=16, seed=4).fingerprint != a.fingerprint


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(img.mul(255).round().to(torch.uint8).flatten().tolist()) for img in images}


@pytest.mark.parametrize("seed", [0, 3])
def test_a_search_never_sees_the_images_its_winners_are_tested_on(seed):
    from snnas.nas.data import fit_images, held_out_split

    data = load_dataset("digits")
    (train_x, _), (test_x, test_y) = held_out_split(data)
    assert len(test_y) == 1000 and len(train_x) == 4000
    split = ProxySplit.make(data, train_size=2000, val_size=500, resolution=28, seed=seed)
    searched = _rows(torch.cat([split.train_x, split.val_x]))
    assert not searched & _rows(fit_images(test_x, channels=1, size=28))


def test_cifar_keeps_its_own_test_batch_out_of_the_search_whatever_the_archive_order(tmp_path):
    from snnas.nas.data import held_out_split

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {"data_batch_1": _cifar_batch(8, 3), "test_batch": _cifar_batch(4, 3)}
    batches["test_batch"][b"data"][:] = 7  # recognisable test images
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch))
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "cifar-10-python.tar.gz", "w:gz") as tar:  # test batch first in the archive
        for name in ("test_batch", "data_batch_1"):
            tar.add(folder / name, arcname=f"cifar-10-batches-py/{name}")
    for spec in (f"cifar10:{tmp_path}", str(packed)):
        data = load_dataset(spec)
        _, (test_x, _) = held_out_split(data)
        assert len(test_x) == 4 and bool((test_x == 7 / 255).all())
        split = ProxySplit.make(data, train_size=5, val_size=3, resolution=32)
        assert not bool((torch.cat([split.train_x, split.val_x]) == 7 / 255).flatten(1).all(1).any())


# ----------------------------------------------------------------------------- data read as it is (issue 21)
def _save(path, array, mode=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def _one_line_refusal(spec, *words):
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def test_16_bit_images_are_read_at_their_depth_and_greyscale_stays_one_channel(tmp_path):
    for label, value in (("dark", 1000), ("bright", 3000)):  # both above 255: 8-bit reading saturates them
        for i in range(2):
            _save(tmp_path / label / f"{i}.png", np.full((6, 6), value, dtype=np.uint16))
    _save(tmp_path / "dark" / "8bit.png", np.full((6, 6), 51, dtype=np.uint8))
    data = load_dataset(f"folder:{tmp_path}")
    assert data.images.shape == (5, 1, 6, 6)  # all greyscale: one channel
    means = sorted(round(float(x.mean()), 6) for x in data.images)
    assert means == [round(1000 / 65535, 6)] * 2 + [round(3000 / 65535, 6)] * 2 + [0.2]


def test_rgba_palette_and_grey_images_together_are_rgb_with_alpha_multiplied_in(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # red, wholly transparent: black
    rgba[0, 0, 3] = 255
    _save(tmp_path / "a" / "rgba.png", rgba, "RGBA")
    _save(tmp_path / "a" / "grey.png", np.full((4, 4), 255, dtype=np.uint8))
    palette = np.zeros((4, 4, 3), dtype=np.uint8)
    palette[..., 2] = 255
    from PIL import Image

    (tmp_path / "b").mkdir()
    Image.fromarray(palette).convert("P").save(tmp_path / "b" / "p.png")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.images.shape == (3, 3, 4, 4)
    grey, rgba_x = data.images[0], data.images[1]  # a/grey.png, a/rgba.png
    assert bool((grey == 1).all())
    assert rgba_x[0, 0, 0] == pytest.approx(200 / 255) and float(rgba_x[:, 1:].abs().sum()) == 0
    assert data.images[2][2].mean() == 1 and data.images[2][:2].sum() == 0  # blue palette image


def test_a_folder_is_read_at_its_own_size_and_mixed_sizes_are_refused_or_resized_when_asked(tmp_path):
    for label in ("a", "b"):
        for i in range(2):
            _save(tmp_path / label / f"{i}.png", np.full((64, 64, 3), 40 * i, dtype=np.uint8))
    assert load_dataset(f"folder:{tmp_path}").images.shape == (4, 3, 64, 64)
    _save(tmp_path / "b" / "odd.png", np.full((48, 40, 3), 9, dtype=np.uint8))
    _one_line_refusal(f"folder:{tmp_path}", "differ in size", "64x64", "odd.png is 40x48", "folder@SIDE:")
    _one_line_refusal(str(tmp_path), "differ in size")
    assert load_dataset(f"folder@16:{tmp_path}").images.shape == (5, 3, 16, 16)
    _one_line_refusal(f"folder@0:{tmp_path}", "side after folder@")


def _cifar_dir(folder, names, key, classes=10):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(pickle.dumps(_cifar_batch(4, classes, key=key)))
    return folder


def _tar_gz(path, folder, names):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            tar.add(folder / name, arcname=f"{folder.name}/{name}")
    return path


def test_a_cifar_archive_of_the_other_kind_is_refused_naming_what_was_found(tmp_path):
    c100 = _cifar_dir(tmp_path / "c100" / "cifar-100-python", ("train", "test"), "fine_labels", 100)
    c10 = _cifar_dir(tmp_path / "c10" / "cifar-10-batches-py", ("data_batch_1", "test_batch"), "labels")
    _one_line_refusal(f"cifar10:{tmp_path / 'c100'}", "expects CIFAR-10", "found CIFAR-100", "use cifar100:")
    _one_line_refusal(f"cifar100:{tmp_path / 'c10'}", "expects CIFAR-100", "found CIFAR-10", "use cifar10:")
    packed = tmp_path / "packed"
    packed.mkdir()
    _tar_gz(packed / "cifar-10-python.tar.gz", c100, ("train", "test"))  # CIFAR-100 under CIFAR-10's name
    _one_line_refusal(f"cifar10:{packed}", "cifar-10-python.tar.gz", "found CIFAR-100")
    assert load_dataset(f"cifar100:{packed}").num_classes <= 100
    assert load_dataset(f"cifar10:{tmp_path / 'c10'}").images.shape == (8, 3, 32, 32)
    (c10 / "data_batch_2").write_bytes(pickle.dumps(_cifar_batch(4, 100, key="fine_labels")))
    _one_line_refusal(f"cifar10:{tmp_path / 'c10'}", "data_batch_2", "looks like CIFAR-100")


def test_non_finite_negative_and_16_bit_pixels_in_an_npz(tmp_path):
    x = np.full((4, 5, 5), 0.5)
    x[1, 2, 3], x[2, 0, 0] = np.nan, np.inf
    np.savez(tmp_path / "nan.npz", x=x, y=np.array([0, 1, 0, 1]))
    _one_line_refusal(str(tmp_path / "nan.npz"), "nan.npz", "2 pixel values are NaN or infinite", "image 1",
                      "(0, 2, 3)")
    np.savez(tmp_path / "neg.npz", x=np.full((4, 5, 5), -1.0), y=np.array([0, 1, 0, 1]))
    _one_line_refusal(str(tmp_path / "neg.npz"), "neg.npz", "run from -1.0")
    np.savez(tmp_path / "u16.npz", x=np.full((4, 5, 5), 65535, dtype=np.uint16), y=np.array([0, 1, 0, 1]))
    assert float(load_dataset(str(tmp_path / "u16.npz")).images.max()) == 1.0


def _npy_member(shape, dtype, data=b""):
    import io

    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": npy.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                                        "shape": shape})
    return buffer.getvalue() + data


def test_npz_bombs_and_pickled_members_are_refused_from_their_headers(tmp_path, monkeypatch):
    import zipfile

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:  # declares 1 TiB of pixels
        archive.writestr("x.npy", _npy_member((1 << 20, 1024, 1024), "u1", b"\0" * 64))
        archive.writestr("y.npy", _npy_member((2,), "<i8", b"\0" * 16))
    _one_line_refusal(str(tmp_path / "huge.npz"), "huge.npz", "'x.npy'")
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:  # 8 MiB of zeros in 8 KiB
        archive.writestr("x.npy", _npy_member((128, 256, 256), "u1", bytes(128 * 256 * 256)))
        archive.writestr("y.npy", _npy_member((128,), "<i8", bytes(128 * 8)))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "1M")
    _one_line_refusal(str(tmp_path / "bomb.npz"), "bomb.npz: member 'x.npy'", "8.0 MiB", "1.0 MiB limit",
                      "SNNAS_MAX_DATA_BYTES", "before reading")
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "lots")
    _one_line_refusal(str(tmp_path / "bomb.npz"), "SNNAS_MAX_DATA_BYTES='lots'")
    monkeypatch.delenv("SNNAS_MAX_DATA_BYTES")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 2, dtype=object), y=np.array([0, 1]), allow_pickle=True)
    _one_line_refusal(str(tmp_path / "obj.npz"), "obj.npz: member 'x.npy'", "pickled")


def test_a_cifar_tar_member_or_gzip_stream_beyond_its_bound_is_stopped_before_filling_memory(tmp_path, monkeypatch):
    source = tmp_path / "cifar-10-batches-py"
    source.mkdir()
    (source / "data_batch_1").write_bytes(bytes(4 << 20))  # 4 MiB, deflates to a few KiB
    packed = tmp_path / "packed"
    packed.mkdir()
    archive = _tar_gz(packed / "cifar-10-python.tar.gz", source, ("data_batch_1",))
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "1M")
    _one_line_refusal(f"cifar10:{packed}", "member cifar-10-batches-py/data_batch_1 declares 4.0 MiB", "1.0 MiB limit")
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "1G")  # under 4 GiB: the gzip trailer's size is exact
    archive.write_bytes(archive.read_bytes()[:-4] + (1024).to_bytes(4, "little"))  # 4 MiB inflated, 1 KiB declared
    _one_line_refusal(f"cifar10:{packed}", str(archive), "truncated or corrupt", "past the 1024 bytes")


def _unblock_later(fifo, seconds=20.0):
    """A guard: should a reader open ``fifo`` after all, a writer comes and goes, so the test fails, not hangs."""
    import os
    import threading
    import time

    def writer():
        time.sleep(seconds)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=writer, daemon=True).start()


def test_named_pipes_are_refused_without_being_opened(tmp_path):
    import os

    for label in ("a", "b"):
        _save(tmp_path / "imgs" / label / "0.png", np.zeros((4, 4), dtype=np.uint8))
    fifos = [tmp_path / "imgs" / "b" / "1.png", tmp_path / "d.npz", tmp_path / "c" / "data_batch_1"]
    (tmp_path / "c").mkdir()
    for fifo in fifos:
        os.mkfifo(fifo)
        _unblock_later(fifo)
    for spec, fifo in ((str(tmp_path / "imgs"), fifos[0]), (str(fifos[1]), fifos[1]), (f"cifar10:{tmp_path / 'c'}", fifos[2])):
        _one_line_refusal(spec, f"{fifo}: not a regular file", "named pipe")


def test_data_limit_reads_a_size_with_a_unit(monkeypatch):
    from snnas.energy.untrusted import max_data_bytes

    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "8G")
    assert max_data_bytes()[0] == 8 << 30
    monkeypatch.setenv("SNNAS_MAX_DATA_BYTES", "1500")
    assert max_data_bytes()[0] == 1500
    monkeypatch.delenv("SNNAS_MAX_DATA_BYTES")
    assert max_data_bytes()[0] > 0 and "memory available" in max_data_bytes()[1]


def test_cifar_batches_come_in_their_order_training_first(tmp_path):
    for i, name in enumerate(["test_batch", "data_batch_2", "data_batch_1"]):
        batch = _cifar_batch(2, 2)
        batch[b"data"][:] = i
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    data = load_dataset(f"cifar10:{tmp_path}")
    assert (data.images[:, 0, 0, 0] * 255).round().tolist() == [2, 2, 1, 1, 0, 0] and data.test_from == 4


def test_a_label_beyond_the_class_limit_is_refused_naming_it(tmp_path):
    import numpy as np

    from snnas.nas.data import DataError, load_dataset

    path = tmp_path / "huge_label.npz"
    np.savez(path, x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.array([0, 1, 2, 10**9]))
    with pytest.raises(DataError, match="label 1000000000 is not below 100,000"):
        load_dataset(str(path))
