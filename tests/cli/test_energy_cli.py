"""``snnas energy`` and ``snnas profiles``, run as real commands on saved models."""

import json

import numpy as np
import torch
from torch import nn

from nas.checkpoint import save_model
from nas.models import build_model
from tests.cli.test_cli import snnas
from tests.conftest import tiny_arch


def _saved_snnas_model(tmp_path):
    arch = tiny_arch()
    path = tmp_path / "model.pt"
    save_model(build_model(arch), arch, path)
    return path


def test_energy_json_keeps_the_documented_shape_on_a_saved_snnas_model(tmp_path):
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--format", "json", "--samples", "4",
                "-p", "45nm-fp32", "-p", "loihi")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert isinstance(report["params"], int)
    assert {"macs", "acs", "dense", "neuron_updates", "residual_adds", "bn"} <= set(report["totals"])
    assert report["totals"]["macs"] > 0 and report["totals"]["dense"] >= report["totals"]["macs"]
    assert {"name", "macs", "acs", "dense", "in_rate"} <= set(report["layers"][0])
    fp32, loihi = report["energy"]
    assert fp32["profile"] == "45nm-fp32" and fp32["complete"] and fp32["total_mj"] > 0
    assert not loihi["complete"] and "mac_pj" in loihi["missing"]  # the encoding conv needs a MAC


def test_energy_counts_a_users_torchscript_model_on_a_saved_input(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(32, 3))
    torch.jit.script(model).save(str(tmp_path / "user.ts"))
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0
    np.save(tmp_path / "x.npy", x.numpy())
    out = snnas("energy", str(tmp_path / "user.ts"), "--input", str(tmp_path / "x.npy"), "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["totals"]["ac"] == 4 * 2  # the corner spike reaches 4 outputs of 2 channels
    assert report["totals"]["dense"] == 16 * 9 * 2 + 32 * 3


def test_energy_on_a_torch_export_file_uses_its_example_inputs(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    program = torch.export.export(model, (torch.tensor([[1.0, 0.0, 1.0, 0.0]]),))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    out = snnas("energy", str(tmp_path / "m.pt2"), "-f", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["totals"]["ac"] == 2 * 3


def test_pickled_modules_are_refused_without_the_trust_flag(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(nn.Linear(4, 3), path)
    refused = snnas("energy", str(path), "--shape", "1,4")
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr and "Traceback" not in refused.stderr
    trusted = snnas("energy", str(path), "--shape", "2,4", "--trust-pickle", "-f", "json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["totals"]["macs"] == 12


def test_bad_model_files_give_one_line_and_a_non_zero_exit(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    state = tmp_path / "state.pt"
    torch.save(nn.Linear(2, 2).state_dict(), state)
    mismatched = tmp_path / "mismatch.pt"
    arch = tiny_arch()
    torch.save({"format": "snnas-model", "version": 1, "arch": arch.to_dict(),
                "state_dict": build_model(tiny_arch(dims=(16, 64), heads=(2, 4))).state_dict()}, mismatched)
    for path, words in [(tmp_path / "missing.pt", "no such file"), (corrupt, "corrupt.pt"),
                        (state, "no architecture"), (mismatched, "do not match")]:
        out = snnas("energy", str(path))
        assert out.returncode == 2, (path, out.stdout)
        assert words in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_output_file_and_csv(tmp_path):
    target = tmp_path / "out" / "report.csv"
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--samples", "2", "--output", str(target))
    assert out.returncode == 0, out.stderr
    header = target.read_text().splitlines()[0].split(",")
    assert {"name", "macs", "acs", "dense", "in_rate", "energy_mj"} <= set(header)


def test_unknown_profile_and_convention_are_clear_errors(tmp_path):
    model = str(_saved_snnas_model(tmp_path))
    bad_profile = snnas("energy", model, "-p", "tpu-v9")
    assert bad_profile.returncode == 2 and "tpu-v9" in bad_profile.stderr
    bad_convention = snnas("energy", model, "-c", "folklore")
    assert bad_convention.returncode == 2 and "folklore" in bad_convention.stderr


def test_profiles_lists_every_profile_with_null_for_unknown_figures():
    out = snnas("profiles", "--format", "json")
    assert out.returncode == 0
    rows = {p["name"]: p for p in json.loads(out.stdout)}
    assert {"45nm-fp32", "45nm-fp16", "45nm-int32", "45nm-int8", "loihi", "truenorth", "spinnaker1",
            "spinnaker2-prototype", "odin", "speck"} <= set(rows)
    assert rows["loihi"]["terms"]["ac_pj"]["value"] == 23.6
    assert rows["speck"]["terms"]["ac_pj"]["value"] is None


def test_energy_counts_on_images_of_a_dataset(tmp_path):
    np.savez(tmp_path / "d.npz", x=(np.random.default_rng(0).random((6, 16, 16)) > 0.5).astype(np.float32),
             y=np.array([0, 1, 2, 0, 1, 2]))
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--data", str(tmp_path / "d.npz"), "--samples", "4",
                "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["input"]["batch_size"] == 4 and "d.npz" in report["input"]["source"]
