"""The benchmark helpers: the run cache reuses only identical runs; hypervolume normalisation."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _runs import RunCache  # noqa: E402
from search_efficiency import normalised_hv  # noqa: E402

from snnas.nas.data import ProxySplit, load_dataset  # noqa: E402
from snnas.nas.search.proxy import ProxySettings  # noqa: E402
from tests.conftest import tiny_arch  # noqa: E402

CPU = torch.device("cpu")


def test_run_cache_reuses_only_identical_runs_and_survives_a_restart(tmp_path, monkeypatch):
    split = ProxySplit.make(load_dataset("digits"), train_size=64, val_size=32, resolution=16)
    arch = tiny_arch(in_channels=1, num_classes=10)
    settings = ProxySettings(steps=2, batch_size=8, energy_samples=4, zero_cost_batch=4)
    path = tmp_path / "runs.jsonl"
    first = RunCache(path).run(arch, settings, split, CPU, energy=True)
    assert not first["cached"] and first["energy_mj"] > 0 and 0 <= first["accuracy"] <= 1

    import _runs

    calls = []
    monkeypatch.setattr(_runs, "train_proxy", lambda *a, **k: calls.append(1) or pytest.fail("re-ran a cached run"))
    again = RunCache(path).run(arch, settings, split, CPU, energy=True)  # a new process reads the file
    assert again["cached"] and again["accuracy"] == first["accuracy"] and again["energy_mj"] == first["energy_mj"]
    assert RunCache(path).run(arch, replace(settings, seed=5), split, CPU, measure=False) is None  # a miss: no training
    more = replace(settings, runs=settings.runs + 1)  # one run more than the cache holds
    assert RunCache(path).run(arch, more, split, CPU, measure=False) is None

    monkeypatch.undo()
    other = RunCache(path).run(arch, replace(settings, seed=1), split, CPU)  # another seed is another run
    assert not other["cached"]
    other_data = ProxySplit.make(load_dataset("digits"), train_size=64, val_size=32, resolution=16, seed=3)
    assert not RunCache(path).run(arch, settings, other_data, CPU)["cached"]


def test_normalised_hypervolume_is_the_dominated_share_of_the_bounded_box():
    bounds = {"accuracy": [0.1, 1.0], "energy_mj": [1e-4, 1e-1]}  # three decades
    assert normalised_hv([1.0], [1e-4], bounds) == pytest.approx(1.0)  # the ideal corner dominates the box
    assert normalised_hv([0.55], [1e-4], bounds) == pytest.approx(0.5)
    assert normalised_hv([1.0], [1e-1], bounds) == 0.0  # on the reference energy: nothing
    assert normalised_hv([1.0], [10 ** -2.5], bounds) == pytest.approx(0.5)
    two = normalised_hv([0.55, 1.0], [1e-4, 10 ** -2.5], bounds)
    assert two == pytest.approx(0.5 + 0.5 * 0.5)  # union of the two rectangles


def test_surrogate_features_name_every_choice_and_stage():
    from sampler_surrogate import features

    two = features(tiny_arch(attention=("ssa", "dssa")))
    assert two["stages"] == 2 and two["depths[1]"] == 1 and two["dims[1]"] == 32
    assert two["attention[0]=ssa"] == 1 and two["attention[1]=dssa"] == 1 and two["stem=sps"] == 1
    assert "img_size" not in two and "num_classes" not in two  # the data, not the architecture
    one = features(tiny_arch(depths=(2,), dims=(16,), heads=(2,), attention=("ls_ssa",), patch_sizes=(1,)))
    assert one["stages"] == 1 and one["depths[0]"] == 2 and "dims[1]" not in one


def test_propose_evaluates_each_architecture_once_and_tells_a_repeat_its_result():
    import optuna
    import yaml
    from _runs import BENCHMARK_SPACE
    from search_efficiency import propose

    from snnas.nas.search.space import DataShape, SearchSpace

    data = yaml.safe_load(BENCHMARK_SPACE.read_text())  # every choice fixed but T: two architectures in all
    pick = lambda v: v[0] if isinstance(v, list) else v["low"] if isinstance(v, dict) else v  # noqa: E731
    data["stages"] = pick(data["stages"])
    for part in ("per_stage", "global"):
        data[part] = {k: pick(v) for k, v in data[part].items()}
    data["global"]["time_steps"] = [1, 2]
    space = SearchSpace.from_dict(data)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    calls = []

    def evaluate(arch):
        calls.append(arch.time_steps)
        return f"T={arch.time_steps}", [float(arch.time_steps), 1.0]

    results = propose(study, space, DataShape(16, 1, 10), 5, evaluate)
    assert sorted(calls) == [1, 2] and sorted(results.values()) == ["T=1", "T=2"]  # the budget cannot be met
    assert len(study.trials) >= 2 + 200  # stops after 200 repeats in a row
    assert all(t.values == [float(t.params["time_steps"]), 1.0] for t in study.trials)  # a repeat: its result


def test_fidelity_statistics_split_all_top_quarter_and_size_halves_and_average_draws():
    import pandas as pd
    from proxy_fidelity import _mean_with_ci, _taus

    # draw 1: the ranker agrees with the reference everywhere; draw 2: reversed among the top quarter only
    ref = [0.1 * i for i in range(8)]
    one = pd.DataFrame({"draw": 1, "r": ref, "ref": ref, "params": list(range(8))})
    flipped = ref[:6] + [ref[7], ref[6]]
    two = pd.DataFrame({"draw": 2, "r": flipped, "ref": ref, "params": list(range(8))})
    assert _taus(one, "r", "ref") == {"all": 1.0, "top_quarter": 1.0, "within_size": 1.0}
    t = _taus(two, "r", "ref")
    assert t["top_quarter"] == pytest.approx(1 / 3)  # top 3 (max(3, 8/4)): one pair of three reversed
    assert t["all"] < 1.0 and t["within_size"] < 1.0
    out = _mean_with_ci(pd.concat([one, two]), "r", "ref", resamples=50)
    assert out["all"]["mean"] == pytest.approx((1.0 + t["all"]) / 2)
    low, high = out["top_quarter"]["ci95"]
    assert low is not None and low <= out["top_quarter"]["mean"] <= high and low < high
    assert set(out["per_draw"]) == {"1", "2"}
