"""Files made before the snnas namespace (tests/fixtures/v0.1, made by commit 38ac89a) still work."""

import shutil
from pathlib import Path

import torch

from snnas.energy.loading import load_module_file
from snnas.nas.models.checkpoint import load_model_file
from tests.cli.test_cli import snnas

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0.1"


def test_an_old_snnas_model_file_loads_and_counts():
    model, arch, _ = load_model_file(FIXTURES / "tiny.snnas.pt")
    assert arch.dims == (16,) and sum(p.numel() for p in model.parameters()) > 0
    out = snnas("energy", str(FIXTURES / "tiny.snnas.pt"), "--samples", "2", "-f", "json")
    assert out.returncode == 0, out.stderr


def test_an_old_pickled_snnas_network_loads_under_its_new_modules_and_computes_the_same():
    loaded = load_module_file(FIXTURES / "tiny.pickled.pt", trust_code=True).module.eval()
    assert type(loaded).__module__ == "snnas.nas.models.network"
    model, _, _ = load_model_file(FIXTURES / "tiny.snnas.pt")
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_an_old_study_reports_and_its_trials_resolve(tmp_path):
    study = tmp_path / "tiny"
    shutil.copytree(FIXTURES / "study" / "tiny", study)
    out = snnas("report", str(study))
    assert out.returncode == 0, out.stderr
    assert (study / "trials.csv").read_text().count("\n") == 3  # header and two trials
    shown = snnas("arch", "show", f"{study}#0")
    assert shown.returncode == 0 and "dims" in shown.stdout, shown.stderr
