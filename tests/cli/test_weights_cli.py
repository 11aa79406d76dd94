"""--weights on snnas energy, evaluate and train: official checkpoints (tests/fixtures/official/)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
import yaml

from snnas.nas.models import build_model, zoo
from snnas.nas.models.checkpoint import save_model
from tests.cli.test_cli import snnas

SDT = "tests/fixtures/official/sdt/weights.pt"
QKFORMER = "tests/fixtures/official/qkformer/weights.pt"


def _arch():
    """sdt-8-384 at the size of the fixture."""
    return zoo.get("sdt-8-384").arch.replace(img_size=32, num_classes=10, time_steps=2, depths=(2,), dims=(32,),
                                             heads=(2,))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from snnas.nas.data import load_digits

    folder = tmp_path_factory.mktemp("weights")
    arch = _arch()
    (folder / "sdt.yaml").write_text(yaml.safe_dump(arch.to_dict()))
    torch.manual_seed(0)
    save_model(build_model(arch), arch, folder / "sdt.pt")
    data = load_digits()
    pick = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(1))[:200]
    rgb = data.images[pick, 0, :, :, None].expand(-1, -1, -1, 3)  # [N, H, W, 3]: the checkpoint's 3 channels
    np.savez(folder / "digits.npz", x=(rgb * 255).round().to(torch.uint8).numpy(),
             y=data.labels[pick].numpy())
    return folder


def _one_line_refusal(out, *words):
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_energy_counts_with_the_official_weights(files):
    common = ["--input", str(files / "x.pt"), "-f", "json"]
    torch.save(torch.load("tests/fixtures/official/sdt/io.pt", weights_only=True)["input"], files / "x.pt")
    mine = snnas("energy", str(files / "sdt.pt"), *common)
    theirs = snnas("energy", str(files / "sdt.pt"), "--weights", SDT, *common)
    assert mine.returncode == 0 and theirs.returncode == 0, theirs.stderr
    assert "tensors of the official Spike-driven Transformer checkpoint" in theirs.stderr
    assert json.loads(mine.stdout)["totals"] != json.loads(theirs.stdout)["totals"]  # other spikes, other ACs


def test_energy_refuses_another_family_and_other_files_in_one_line(files):
    _one_line_refusal(snnas("energy", str(files / "sdt.pt"), "--weights", QKFORMER),
                      "does not match the official Spike-driven Transformer layout", "missing", "unexpected")
    _one_line_refusal(snnas("energy", "lsformer-4-384", "--weights", SDT), "no official key map fits")
    _one_line_refusal(snnas("energy", str(files / "sdt.pt"), "--weights", str(files / "absent.pt")), "absent.pt")


def test_a_checkpoint_that_would_run_code_is_refused_unrun(files, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": _Touch(str(marker))}))
    _one_line_refusal(snnas("energy", str(files / "sdt.pt"), "--weights", str(evil)), "refused")
    assert not marker.exists()


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_torn_checkpoint_is_refused_in_one_line(files, tmp_path):
    whole = open(SDT, "rb").read()
    (tmp_path / "torn.pt").write_bytes(whole[: len(whole) // 3])
    _one_line_refusal(snnas("evaluate", str(files / "sdt.yaml"), "--weights", str(tmp_path / "torn.pt"),
                            "--data", str(files / "digits.npz")), "torn.pt", "not a readable torch file")


def test_evaluate_an_official_checkpoint(files):
    out = snnas("evaluate", str(files / "sdt.yaml"), "--weights", SDT, "--data", str(files / "digits.npz"),
                "--samples", "4", "--device", "cpu", "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["checkpoint"]["official"] == "Spike-driven Transformer"
    assert report["checkpoint"]["path"] == SDT and 0 <= report["accuracy"] <= 1


def test_train_fine_tunes_from_an_official_checkpoint(files, tmp_path):
    out = snnas("train", str(files / "sdt.yaml"), "--weights", SDT, "--data", str(files / "digits.npz"),
                "--epochs", "1", "--batch-size", "64", "--warmup-epochs", "0", "--energy-samples", "4",
                "--device", "cpu", "--out", str(tmp_path / "ft"))
    assert out.returncode == 0, out.stderr
    assert "starting from" in out.stderr and "official Spike-driven Transformer checkpoint" in out.stderr
    assert (tmp_path / "ft" / "best.pt").is_file()
    _one_line_refusal(snnas("train", str(files / "sdt.yaml"), "--weights", QKFORMER, "--data",
                            str(files / "digits.npz"), "--epochs", "1", "--out", str(tmp_path / "no")), "missing")
