"""The full-training recipe: schedule, augmentation, fitting an architecture to data."""

import math

import pytest
import torch

from snnas.nas.data import Dataset
from snnas.nas.train.training import Recipe, TrainError, augment, fit_arch, learning_rate
from tests.conftest import tiny_arch


def test_the_schedule_warms_up_linearly_then_decays_by_a_cosine_to_the_floor():
    recipe = Recipe(epochs=10, warmup_epochs=2, lr=1e-3, min_lr=1e-5)
    steps = 4
    lrs = [learning_rate(s, steps, recipe) for s in range(10 * steps)]
    assert lrs[0] == pytest.approx(1e-3 / 8) and lrs[7] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:8], lrs[1:8]))
    assert all(a >= b for a, b in zip(lrs[8:], lrs[9:]))
    assert lrs[8] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-5)
    quarter = (20 - 8) / 31
    assert lrs[20] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * quarter)), rel=1e-9)


def test_warm_up_takes_at_most_a_tenth_of_the_epochs_and_flips_are_off_for_digits():
    arch = tiny_arch()
    assert Recipe(epochs=30, warmup_epochs=20).resolved(arch, "digits").warmup_epochs == 3
    assert Recipe(epochs=300).resolved(arch, "digits").warmup_epochs == 20
    assert Recipe().resolved(arch, "digits").flip is False
    assert Recipe().resolved(arch, "/data/cifar").flip is True
    assert Recipe().resolved(arch.replace(img_size=32), "x").crop_padding == 4  # 4 px at 32, as in the papers


def test_crops_are_shifted_windows_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    recipe = Recipe(crop_padding=2, flip=False)
    out, target = augment(x, torch.tensor([0, 1]), recipe, 3, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(target, torch.eye(3)[:2])
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, a:a + 6, b:b + 6] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_mixup_and_cutmix_targets_are_distributions_matching_the_pixels():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.zeros(8, 1, 8, 8)
    x[::2] = 1.0
    y = torch.tensor([0, 1] * 4)
    for recipe in (Recipe(crop_padding=0, flip=False, mixup=0.8), Recipe(crop_padding=0, flip=False, cutmix=1.0)):
        out, target = augment(x, y, recipe, 2, g)
        assert torch.allclose(target.sum(dim=1), torch.ones(8))
        # the share of class 0 (the bright images) in each target is the bright share of its pixels
        assert torch.allclose(out.mean(dim=(1, 2, 3)), target[:, 0], atol=1e-6)


def _data(side: int, channels: int = 1, classes: int = 10) -> Dataset:
    return Dataset("d", torch.zeros(20, channels, side, side), torch.arange(20) % classes, classes)


def test_an_architecture_is_fitted_to_the_data_it_is_trained_on():
    arch = tiny_arch()  # 3 channels, 4 classes, 16 px, total downsampling 4
    fitted, notes = fit_arch(arch, _data(28))
    assert (fitted.in_channels, fitted.num_classes, fitted.img_size) == (1, 10, 28)
    assert any("in_channels 3 -> 1" in n for n in notes)
    deeper = arch.replace(stem_downsample=2)  # total downsampling 8: 28 does not divide
    fitted, notes = fit_arch(deeper, _data(28))
    assert fitted.img_size == 32 and any("28 is not divisible" in n for n in notes)
    assert fit_arch(deeper, _data(28), resolution=24)[0].img_size == 24
    with pytest.raises(TrainError, match="nearest sides it can take: 24 or 32"):
        fit_arch(deeper, _data(28), resolution=28)


def test_training_refuses_labels_beyond_the_classifier(tmp_path):
    from snnas.nas.train.training import train_model

    arch = tiny_arch(in_channels=1, num_classes=10)
    data = _data(16, classes=12)
    data.labels[:] = 11
    with pytest.raises(TrainError, match="labels up to 11"):
        train_model(arch, data, Recipe(epochs=1, batch_size=4), tmp_path, device=torch.device("cpu"))
    assert math.isfinite(learning_rate(0, 1, Recipe(epochs=1, warmup_epochs=0)))
