"""``snnas energy`` and ``snnas profiles``, run as real commands on saved models."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from snnas.nas.models.checkpoint import save_model
from snnas.nas.models import build_model
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
    assert isinstance(report["params"], int) and report["complete"] and report["bn"] == "folded"
    assert report["input"]["samples"] == 4 and report["input"]["per_sample"] and "digits" in report["input"]["source"]
    assert {"macs", "acs", "dense", "neuron_updates", "residual_adds", "bn"} <= set(report["totals"])
    assert report["totals"]["macs"] > 0 and report["totals"]["dense"] >= report["totals"]["macs"]
    assert {"name", "macs", "acs", "dense", "in_rate", "energy_mj", "energy_mj_by_profile"} <= set(report["layers"][0])
    fp32, loihi = report["energy"]
    assert fp32["profile"] == "45nm-fp32" and fp32["complete"] and fp32["total_mj"] > 0
    assert not loihi["complete"] and "mac_pj" in loihi["missing"]  # the encoding conv needs a MAC


def test_layer_rows_add_up_to_every_profiles_total(tmp_path):
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "-f", "json", "--samples", "2", "-p", "45nm-fp32",
                "-p", "45nm-int8")
    report = json.loads(out.stdout)
    for estimate in report["energy"]:
        rows = sum(layer["energy_mj_by_profile"][estimate["profile"]] for layer in report["layers"])
        assert rows == pytest.approx(estimate["total_mj"], rel=1e-12)
    neuron_rows = [layer for layer in report["layers"] if layer["neuron_updates"]]
    assert neuron_rows and all(layer["energy_mj"] > 0 for layer in neuron_rows)  # neurons have rows of their own


def test_the_table_names_the_input_and_shows_a_total(tmp_path):
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--samples", "2")
    assert out.returncode == 0, out.stderr
    assert "input: 2 embedded MNIST digits" in out.stdout and "total" in out.stdout
    assert "stem.convs.0.neuron" in out.stdout  # neuron rows are shown: the rows add up to the total
    assert out.stderr == ""  # no library warning leaks


def test_energy_counts_a_users_traced_conv_net_exactly(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.rand(2, 1, 8, 8)
    torch.jit.trace(model, x).save(str(tmp_path / "user.ts"))
    np.save(tmp_path / "x.npy", x.numpy())
    out = snnas("energy", str(tmp_path / "user.ts"), "--input", str(tmp_path / "x.npy"), "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    convs = 64 * 9 * 4 + 64 * 36 * 4
    assert report["totals"]["macs"] == report["totals"]["dense"] == convs + 256 * 3  # both convs counted
    assert [layer["name"] for layer in report["layers"] if layer["dense"]] == ["0", "2", "4"]  # named as in Python
    assert report["complete"] and report["file_kind"] == "torchscript"


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
    report = json.loads(out.stdout)
    assert report["totals"]["ac"] == 2 * 3
    assert report["layers"][0]["operand"] == "binary"  # a Linear stays a linear layer in an export file
    assert out.stderr == ""


def test_zoo_models_are_seeded_and_say_so():
    from snnas.cli.energy import _resolve

    def weights(seed):
        return _resolve("spikformer-2-384", trust_pickle=False, time_steps=None, seed=seed).module.state_dict()

    first, again, other = weights(0), weights(0), weights(3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    out = snnas("energy", "spikformer-2-384", "-T", "1", "--samples", "2", "-f", "json")
    assert out.returncode == 0, out.stderr
    assert "seed 0" in out.stderr and json.loads(out.stdout)["seed"] == 0


def test_strict_exits_non_zero_when_a_figure_is_incomplete(tmp_path):
    model = str(_saved_snnas_model(tmp_path))
    assert snnas("energy", model, "--samples", "1", "--strict", "-f", "json").returncode == 0
    incomplete = snnas("energy", model, "--samples", "1", "--strict", "-p", "loihi", "-f", "json")
    assert incomplete.returncode == 3 and "mac_pj" in incomplete.stderr
    assert json.loads(incomplete.stdout)["energy"][0]["complete"] is False  # the report is still written


def test_bn_priced_adds_batchnorm_energy(tmp_path):
    model = str(_saved_snnas_model(tmp_path))
    folded = json.loads(snnas("energy", model, "--samples", "2", "-f", "json").stdout)
    priced = json.loads(snnas("energy", model, "--samples", "2", "-f", "json", "--bn", "priced").stdout)
    assert priced["bn"] == "priced" and "bn_pj" in priced["energy"][0]["by_term_mj"]
    assert "bn_pj" not in folded["energy"][0]["by_term_mj"]
    assert priced["energy"][0]["total_mj"] > folded["energy"][0]["total_mj"]


def test_pickled_modules_are_refused_without_the_trust_flag(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(nn.Linear(4, 3), path)
    refused = snnas("energy", str(path), "--shape", "1,4")
    assert refused.returncode == 2 and "--trust-code" in refused.stderr and "Traceback" not in refused.stderr
    assert "\x1b" not in refused.stderr and "torch.nn.modules.linear.Linear" in refused.stderr
    trusted = snnas("energy", str(path), "--shape", "2,4", "--trust-pickle", "-f", "json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["totals"]["macs"] == 12


def test_a_pickled_class_that_cannot_be_imported_says_how_to_fix_it(tmp_path):
    script = tmp_path / "save.py"
    script.write_text("import torch\nclass MyNet(torch.nn.Linear):\n    pass\n"
                      f"torch.save(MyNet(4, 3), {str(tmp_path / 'mine.pt')!r})\n")
    import subprocess
    import sys

    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    out = snnas("energy", str(tmp_path / "mine.pt"), "--shape", "1,4", "--trust-pickle")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "MyNet" in out.stderr and "importable module" in out.stderr


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
                        (state, "no architecture"), (mismatched, "do not match"),
                        (tmp_path, "a folder, not a file"), ("/dev/null", "not a regular file")]:
        out = snnas("energy", str(path))
        assert out.returncode == 2, (path, out.stdout)
        assert words in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_output_file_follows_format_or_suffix_and_csv_carries_totals_and_profiles(tmp_path):
    model = str(_saved_snnas_model(tmp_path))
    target = tmp_path / "out" / "report.csv"
    out = snnas("energy", model, "--samples", "2", "--output", str(target), "-p", "45nm-fp32", "-p", "loihi")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert {"name", "macs", "acs", "dense", "in_rate", "energy_mj[45nm-fp32]", "energy_mj[loihi]",
            "complete[loihi]"} <= set(rows[0])
    total = rows[-1]
    assert total["name"] == "TOTAL" and total["complete[45nm-fp32]"] == "True" and total["complete[loihi]"] == "False"
    layer_sum = sum(float(r["energy_mj[45nm-fp32]"]) for r in rows[:-1])
    assert layer_sum == pytest.approx(float(total["energy_mj[45nm-fp32]"]))
    as_json = tmp_path / "report.txt"
    assert snnas("energy", model, "--samples", "1", "-o", str(as_json), "-f", "json").returncode == 0
    assert json.loads(as_json.read_text())["model"] == model  # -o honours -f whatever the suffix
    as_csv = tmp_path / "report.json"
    assert snnas("energy", model, "--samples", "1", "-o", str(as_csv), "-f", "csv").returncode == 0
    assert as_csv.read_text().startswith("name,")
    refused = snnas("energy", model, "--samples", "1", "-o", str(tmp_path / "t.txt"), "-f", "table")
    assert refused.returncode == 2 and "--format json, csv or latex" in refused.stderr


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
    table = snnas("profiles")  # the list shows a range where sources disagree (TrueNorth's AC: 2.5 to 26 pJ)
    assert table.returncode == 0
    line = next(row for row in table.stdout.splitlines() if row.strip().startswith("truenorth"))
    assert "26 [2.5-26]" in line and "yes, ranged" in next(r for r in table.stdout.splitlines() if "45nm-fp32" in r)


def test_energy_counts_on_images_of_a_dataset(tmp_path):
    np.savez(tmp_path / "d.npz", x=(np.random.default_rng(0).random((6, 16, 16)) > 0.5).astype(np.float32),
             y=np.array([0, 1, 2, 0, 1, 2]))
    out = snnas("energy", str(_saved_snnas_model(tmp_path)), "--data", str(tmp_path / "d.npz"), "--samples", "4",
                "-f", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["input"]["samples"] == 4 and "d.npz" in report["input"]["source"]
