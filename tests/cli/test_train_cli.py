"""snnas train / evaluate / arch / report --latex / dashboard, run as a user runs them (small settings)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from snnas.nas.models.arch import ArchConfig
from tests.cli.test_cli import snnas
from tests.conftest import tiny_arch

FAST = ["--epochs", "3", "--batch-size", "32", "--warmup-epochs", "0", "--energy-samples", "8", "--device", "cpu"]
SEARCH = ["--steps", "3", "--batch-size", "16", "--train-size", "96", "--val-size", "48", "--sampler", "random",
          "--workers", "1", "--max-params", "40000"]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """400 real digits (the embedded MNIST sample), as a user's own .npz file."""
    from snnas.nas.data import load_digits

    data = load_digits()
    pick = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(1))[:400]
    path = tmp_path_factory.mktemp("data") / "digits400.npz"
    np.savez(path, x=(data.images[pick, 0] * 255).round().to(torch.uint8).numpy(), y=data.labels[pick].numpy())
    return str(path)


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_arch(in_channels=1, num_classes=10).to_dict()))
    return path


def _metrics(folder):
    return pd.read_csv(folder / "metrics.csv").drop(columns=["time_s"])


def test_a_killed_training_resumes_and_ends_with_the_numbers_of_an_unbroken_one(tmp_path, digits_npz, arch_file):
    whole = snnas("train", str(arch_file), "--data", digits_npz, "--out", str(tmp_path / "whole"), *FAST)
    assert whole.returncode == 0, whole.stderr
    assert "note: image side 16 -> 28" in whole.stderr  # the data's own side, which the network can take
    env = {**os.environ, "SNNAS_FAILPOINT": "epoch:2"}
    killed = subprocess.run([sys.executable, "-m", "snnas", "train", str(arch_file), "--data", digits_npz,
                             "--out", str(tmp_path / "broken"), *FAST], capture_output=True, text=True, env=env)
    assert killed.returncode == -9  # SIGKILL after the second epoch was saved
    assert len(_metrics(tmp_path / "broken")) == 2
    resumed = snnas("train", str(arch_file), "--data", digits_npz, "--out", str(tmp_path / "broken"), *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2" in resumed.stderr
    pd.testing.assert_frame_equal(_metrics(tmp_path / "broken"), _metrics(tmp_path / "whole"))

    from snnas.nas.models.checkpoint import load_model_file

    model, arch, obj = load_model_file(tmp_path / "whole" / "best.pt")
    meta = obj["meta"]
    assert arch.img_size == 28 and arch.in_channels == 1 and "resume" not in obj
    assert meta["data"]["spec"] == digits_npz and len(meta["data"]["fingerprint"]) == 16
    assert meta["recipe"]["epochs"] == 3 and meta["recipe"]["flip"] is True  # a .npz is not named digits
    best = max(meta["metrics"], key=lambda m: m["test_accuracy"])
    assert meta["epoch"] == best["epoch"]
    last = load_model_file(tmp_path / "whole" / "last.pt")[2]
    assert last["meta"]["epoch"] == 3 and {"optimiser", "generator", "torch_rng"} <= set(last["resume"])

    report = json.loads((tmp_path / "whole" / "evaluation.json").read_text())
    assert report["accuracy"] == pytest.approx(best["test_accuracy"])
    assert (tmp_path / "whole" / "firing_rates.pdf").is_file()


def test_evaluate_gives_accuracy_rates_and_the_energy_snnas_energy_gives(tmp_path, digits_npz, arch_file):
    out = snnas("train", str(arch_file), "--data", digits_npz, "--out", str(tmp_path / "m"), *FAST)
    assert out.returncode == 0, out.stderr
    checkpoint = tmp_path / "m" / "best.pt"
    got = snnas("evaluate", str(checkpoint), "-p", "45nm-fp32", "-p", "loihi", "--samples", "12", "-o",
                str(tmp_path / "e.json"), "--figure", str(tmp_path / "rates"))
    assert got.returncode == 0, got.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["data"]["spec"] == digits_npz and report["data"]["same_as_training"] is True
    assert report["test_images"] == 80 and 0 <= report["accuracy"] <= 1
    assert report["layers"] and all(0 <= row["rate"] <= 1 for row in report["layers"])
    spikes = sum(r["spikes"] for r in report["layers"]) / sum(r["neuron_updates"] for r in report["layers"])
    assert report["firing_rate"] == pytest.approx(spikes)
    assert set(report["energy"]) == {"45nm-fp32", "loihi"}
    assert (tmp_path / "rates.png").is_file() and (tmp_path / "rates.svg").is_file()
    # the same model, the same 12 held-out images: snnas energy prices them the same
    peer = snnas("energy", str(checkpoint), "--samples", "12", "-p", "45nm-fp32", "-f", "json")
    assert peer.returncode == 0, peer.stderr
    assert "held-out images of" in peer.stderr  # it found the training data in the checkpoint
    priced = json.loads(peer.stdout)
    assert report["energy"]["45nm-fp32"]["total_mj"] == pytest.approx(priced["energy"][0]["total_mj"], rel=1e-9)


@pytest.mark.parametrize("args, words", [
    (["no-such-model"], "not a zoo name"),
    (["results/somewhere#x"], "trial number after '#'"),
    (["{tmp}#0"], "no study.journal"),
    (["{arch}", "--resolution", "30"], "the nearest sides it can take: 28 or 32"),
    (["{arch}", "--data", "{tmp}/none.npz"], "no such file"),
    (["{arch}", "--batch-size", "100000"], "more than the 320 training images"),
])
def test_train_refuses_bad_input_in_one_line(tmp_path, digits_npz, arch_file, args, words):
    args = [a.format(tmp=tmp_path, arch=arch_file) for a in args]
    if "--data" not in args:
        args += ["--data", digits_npz]
    out = snnas("train", *args, "--out", str(tmp_path / "o"), *FAST[:2])
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 or "note:" in out.stderr, out.stderr


def test_a_folder_holding_another_run_is_not_overwritten(tmp_path, digits_npz, arch_file):
    first = snnas("train", str(arch_file), "--data", digits_npz, "--out", str(tmp_path / "r"), *FAST)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "r" / "last.pt").read_bytes()
    other = snnas("train", str(arch_file), "--data", digits_npz, "--out", str(tmp_path / "r"), *FAST, "--lr", "1e-3")
    assert other.returncode == 2 and "different recipe" in other.stderr
    assert (tmp_path / "r" / "last.pt").read_bytes() == before


def _tex_rows(text: str) -> tuple[int, list[list[str]]]:
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", text).group(1)
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    rows = [line.rstrip(" \\").split(" & ") for line in body.strip().splitlines()]
    return len(spec.split()), rows


def test_search_then_train_then_evaluate_then_report_latex(tmp_path, digits_npz):
    out = snnas("search", "--budget", "3", "--study", "s", "--out", str(tmp_path), "--data", digits_npz, *SEARCH)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "s"
    front = snnas("arch", "front", str(folder), "--top", "1")
    assert front.returncode == 0, front.stderr
    ref = front.stdout.strip()
    assert re.fullmatch(re.escape(str(folder)) + r"#\d+", ref)
    trial = int(ref.rsplit("#", 1)[1])

    shown = snnas("arch", "show", ref, "-o", str(tmp_path / "a.yaml"))
    assert shown.returncode == 0, shown.stderr
    from optuna import load_study

    from snnas.nas.search.journal import open_journal

    study = load_study(study_name="s", storage=open_journal(folder / "study.journal")[0])
    stored = ArchConfig.from_dict(study.trials[trial].user_attrs["arch"])
    assert ArchConfig.from_dict(yaml.safe_load((tmp_path / "a.yaml").read_text())) == stored

    trained = snnas("train", ref, *FAST)  # the study's data and folder by default
    assert trained.returncode == 0, trained.stderr
    assert f"training on {digits_npz}" in trained.stderr
    evaluation = json.loads((folder / "trained" / f"trial-{trial}" / "evaluation.json").read_text())
    assert evaluation["source"]["trial"] == trial and evaluation["source"]["proxy"]["objective"] is not None

    report = snnas("report", str(folder), "--latex", "-p", "45nm-fp32")
    assert report.returncode == 0, report.stderr
    tex = (folder / "pareto.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and tex.count("{") == tex.count("}")
    columns, rows = _tex_rows(tex)
    assert rows and all(len(r) == columns for r in rows)
    mine = [r for r in rows if r[0].startswith(f"{trial}$")]
    assert mine and mine[0][5] == f"{evaluation['accuracy'] * 100:.2f}"  # the trained accuracy column
    assert "\\_" not in "".join(r[1] for r in rows) or "ls\\_ssa" not in tex  # names are typeset, not raw
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trained"][0]["trial"] == trial and summary["data"] == digits_npz

    bad = snnas("report", str(folder), "--latex", "-p", "loihi")
    assert bad.returncode == 2 and "the study priced 45nm-fp32" in bad.stderr


def test_trials_csv_holds_the_whole_architecture_with_integers_as_integers(tmp_path):
    out = snnas("search", "--budget", "2", "--study", "c", "--out", str(tmp_path), *SEARCH)
    assert out.returncode == 0, out.stderr
    again = snnas("search", "--budget", "3", "--study", "c", "--out", str(tmp_path), *SEARCH)
    assert again.returncode == 0, again.stderr
    text = (tmp_path / "c" / "trials.csv").read_text()
    trials = pd.read_csv(tmp_path / "c" / "trials.csv")
    import dataclasses

    for name in (f.name for f in dataclasses.fields(ArchConfig) if f.name != "notes"):
        assert name in trials.columns, name
    pruned = trials["state"].eq("pruned")  # rows without numbers: the integer columns must stay integers
    assert pruned.any() and trials.loc[~pruned, "params"].notna().all()
    header = text.splitlines()[0].split(",")
    params_column = header.index("params")
    assert not re.search(r"\d\.0\b", ",".join(line.split(",")[params_column] for line in text.splitlines()[1:4]))
    for _, row in trials[trials["arch_json"].notna()].iterrows():
        arch = ArchConfig.from_dict(json.loads(row["arch_json"]))
        assert arch.group_width == row["group_width"] and arch.stem_downsample == row["stem_downsample"]
    assert all(len(str(v).split(".")[-1]) <= 8 for v in trials["train_time_s"].dropna())  # rounded
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    assert len(run["history"]) == 2 and run["arguments"]["budget"] == 3  # the latest run on top, both kept
    assert [r["arguments"]["budget"] for r in run["history"]] == [2, 3]


def test_refine_keeps_the_weights_it_trains(tmp_path):
    out = snnas("search", "--budget", "2", "--study", "r", "--out", str(tmp_path), *SEARCH, "--refine", "1",
                "--refine-steps", "4")
    assert out.returncode == 0, out.stderr
    models = list((tmp_path / "r" / "refined").glob("trial-*.pt"))
    assert len(models) == 1
    evaluated = snnas("evaluate", str(models[0]), "--samples", "4", "-f", "json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 <= json.loads(evaluated.stdout)["accuracy"] <= 1
    refined = pd.read_csv(tmp_path / "r" / "refined.csv")
    assert refined["model"].iloc[0] == str(models[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_over_http(tmp_path):
    out = snnas("search", "--budget", "2", "--study", "d", "--out", str(tmp_path), *SEARCH)
    assert out.returncode == 0, out.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "snnas", "dashboard", str(tmp_path / "d"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.5)
        assert studies and studies[0]["study_name"] == "d"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", timeout=10) as r:
            detail = json.loads(r.read())
        trials = pd.read_csv(tmp_path / "d" / "trials.csv")
        assert len(detail["trials"]) == len(trials)
        assert {t["number"] for t in detail["trials"]} == set(trials["trial"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_refuses_a_folder_without_a_study(tmp_path):
    out = snnas("dashboard", str(tmp_path))
    assert out.returncode == 2 and "no study.journal" in out.stderr
