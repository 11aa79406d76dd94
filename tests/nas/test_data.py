import pickle
import tarfile

import numpy as np
import pytest
import torch

from nas.data import DataError, ProxySplit, load_dataset


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
    assert folder.images.shape == (6, 3, 32, 32) and folder.num_classes == 2
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
    from nas.data import fit_images, held_out_split

    data = load_dataset("digits")
    (train_x, _), (test_x, test_y) = held_out_split(data)
    assert len(test_y) == 1000 and len(train_x) == 4000
    split = ProxySplit.make(data, train_size=2000, val_size=500, resolution=28, seed=seed)
    searched = _rows(torch.cat([split.train_x, split.val_x]))
    assert not searched & _rows(fit_images(test_x, channels=1, size=28))


def test_cifar_keeps_its_own_test_batch_out_of_the_search_whatever_the_archive_order(tmp_path):
    from nas.data import held_out_split

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
