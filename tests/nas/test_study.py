"""The search loop in process, on tiny real data."""

import json
import math

import optuna
import pytest
import torch

from snnas.nas.search import proxy as proxy_module
from snnas.nas.data import ProxySplit, load_dataset
from snnas.nas.search.proxy import CandidateFailed, ProxySettings, sahd_score
from snnas.nas.report.tables import trials_frame, write_reports
from snnas.nas.search.space import SearchSpace
from snnas.nas.search.study import SearchError, SearchSettings, run_search

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split():
    return ProxySplit.make(load_dataset("digits"), train_size=96, val_size=48, resolution=16)


def _settings(tmp_path, **kw):
    base = dict(study="t", out_dir=tmp_path, budget=3, sampler="random", seed=0, train_size=96, val_size=48,
                proxy_settings=ProxySettings(steps=2, batch_size=16, energy_samples=8, zero_cost_batch=8))
    base.update(kw)
    return SearchSettings(**base)


def test_failing_candidates_are_recorded_with_their_reason_and_the_search_goes_on(tmp_path, split, monkeypatch):
    calls = []
    real = proxy_module.train_proxy

    def flaky(arch, *args, **kwargs):
        calls.append(arch)
        if len(calls) == 2:
            raise CandidateFailed("training loss became nan at step 1")
        return real(arch, *args, **kwargs)

    monkeypatch.setattr("snnas.nas.search.study.train_proxy", flaky)
    study = run_search(_settings(tmp_path), SearchSpace.from_yaml("space.yaml"), split, device=CPU)
    frame = trials_frame(study)
    assert frame["state"].tolist() == ["complete", "failed", "complete"]
    assert frame.loc[1, "fail_reason"] == "training loss became nan at step 1"
    assert frame.loc[0, "params"] > 0 and frame.loc[0, "energy_mj"] > 0 and frame.loc[0, "dense"] > 0


def test_max_params_prunes_before_training_and_does_not_use_budget(tmp_path, split, monkeypatch):
    trained = []
    real = proxy_module.train_proxy
    monkeypatch.setattr("snnas.nas.search.study.train_proxy", lambda arch, *a, **k: trained.append(arch) or real(arch, *a, **k))
    study = run_search(_settings(tmp_path, max_params=20_000, budget=2), SearchSpace.from_yaml("space.yaml"),
                       split, device=CPU)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and pruned
    assert all("--max-params" in t.user_attrs["pruned_reason"] for t in pruned)
    assert all(t.user_attrs["params"] <= 20_000 for t in study.trials if t.values)
    assert len(trained) == 2


def test_resuming_with_other_settings_is_refused(tmp_path, split):
    space = SearchSpace.from_yaml("space.yaml")
    run_search(_settings(tmp_path, budget=1), space, split, device=CPU)
    with pytest.raises(SearchError, match="different proxy_settings"):
        run_search(_settings(tmp_path, budget=2, proxy_settings=ProxySettings(steps=5)), space, split, device=CPU)


def test_training_free_proxy_scores_every_candidate(tmp_path, split):
    settings = _settings(tmp_path, proxy="sahd", proxy_settings=ProxySettings(zero_cost_batch=16, energy_samples=8))
    study = run_search(settings, SearchSpace.from_yaml("space.yaml"), split, device=CPU)
    frame = trials_frame(study)
    done = frame[frame["state"].eq("complete")]
    assert len(done) >= 1 and done["objective"].map(math.isfinite).all()
    assert frame["accuracy"].isna().all()
    assert frame.loc[frame["state"].eq("failed"), "fail_reason"].str.contains("zero-cost score undefined").all()
    summary = write_reports(study, tmp_path / "t")
    assert summary.front_size >= 1 and (tmp_path / "t" / "pareto.svg").is_file()
    written = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert written["objective"] == "sahd_score" and "best_accuracy" not in written  # a score, not an accuracy
    assert written["best_sahd_score"] == pytest.approx(done["objective"].max())


def test_sahd_score_is_deterministic_and_separates_silent_from_active_networks(split):
    from snnas.nas.models import build_model
    from tests.conftest import tiny_arch

    torch.manual_seed(0)
    model = build_model(tiny_arch(in_channels=1))
    batches = [torch.rand(8, 1, 16, 16) for _ in range(2)]
    first, again = sahd_score(model, batches), sahd_score(model, batches)
    assert first == again and math.isfinite(first)
    silent = sahd_score(model, [torch.zeros(8, 1, 16, 16)] * 2)
    assert silent != first


def test_energy_limit_marks_candidates_infeasible_and_keeps_them_off_the_front(tmp_path, split):
    study = run_search(_settings(tmp_path, max_energy_mj=1e-12, budget=2), SearchSpace.from_yaml("space.yaml"),
                       split, device=CPU)
    frame = trials_frame(study)
    assert frame["state"].eq("complete").all()
    assert not frame["feasible"].any() and not frame["pareto"].any()
    assert all(t.constraints["max_energy_mj"] > 0 for t in study.trials)


def test_a_re_proposed_architecture_reuses_its_result_and_an_exhausted_space_stops(tmp_path, split, monkeypatch):
    import yaml

    doc = yaml.safe_load(open("space.yaml"))
    doc["stages"] = 1
    doc["per_stage"] = {"depth": 1, "heads": 1, "head_dim": 8, "attention": "ssa", "patch_size": 1}
    doc["global"] = {k: (v[0] if isinstance(v, list) and not isinstance(v[0], list) else v)
                     for k, v in doc["global"].items()} | {"dilations": [1]}
    space = SearchSpace.from_dict(doc)
    assert space.size() == 1
    monkeypatch.setattr("snnas.nas.search.study.MAX_CONSECUTIVE_DUPLICATES", 5)
    study = run_search(_settings(tmp_path, budget=3), space, split, device=CPU)
    frame = trials_frame(study)
    assert frame["state"].eq("complete").all() and len(frame) == 1 + 5
    assert frame["duplicate_of"].iloc[1:].eq(0).all() and frame["objective"].nunique() == 1
    assert frame["pareto"].tolist() == [True] + [False] * 5


def test_the_default_objective_is_the_runs_likelihood_and_outputs_name_it(tmp_path, split):
    study = run_search(_settings(tmp_path, budget=2), SearchSpace.from_yaml("space.yaml"), split, device=CPU)
    done = [t for t in study.trials if t.values]
    assert done and study.user_attrs["objective"] == "likelihood"
    for t in done:  # the objective is exp(-mean held-out cross-entropy) of the two runs, beside their accuracy
        assert t.values[0] == pytest.approx(math.exp(-t.user_attrs["val_loss"]))
        assert 0 <= t.user_attrs["accuracy"] <= 1 and t.user_attrs["likelihood"] == pytest.approx(t.values[0])
    summary = write_reports(study, tmp_path / "t")
    written = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert written["objective"] == "likelihood" and written["best_likelihood"] == pytest.approx(summary.best)
    assert {"accuracy", "likelihood", "val_loss"} <= set(trials_frame(study).columns)


def test_older_studies_keep_their_accuracy_objective_and_resume(tmp_path, split):
    """A study made before the two-run default (one run, accuracy) resumes with those settings."""
    from dataclasses import replace

    old = ProxySettings(steps=2, batch_size=16, energy_samples=8, zero_cost_batch=8, runs=1, score="accuracy")
    space = SearchSpace.from_yaml("space.yaml")
    study = run_search(_settings(tmp_path, budget=1, proxy_settings=old), space, split, device=CPU)
    assert "runs" not in study.user_attrs["snnas"]["proxy_settings"]  # stored as v0.2 stored it
    assert study.trials[0].values[0] == study.trials[0].user_attrs["accuracy"]
    again = run_search(_settings(tmp_path, budget=2, proxy_settings=replace(old)), space, split, device=CPU)
    assert len([t for t in again.trials if t.values and "duplicate_of" not in t.user_attrs]) == 2
    with pytest.raises(SearchError, match="different proxy_settings"):
        run_search(_settings(tmp_path, budget=3), space, split, device=CPU)  # the new default is another proxy


@pytest.mark.parametrize("budget, startup", [(20, 5), (200, 10), (8, 4)])
def test_tpe_models_after_a_quarter_of_a_small_budget_and_joins_parameters(budget, startup):
    """Random start-up trials: Optuna's 10, at most a quarter of a small budget; the proposals after
    them differ from the random sampler's. Multivariate, grouped, with a constant liar for workers."""
    from snnas.nas.search.study import make_sampler

    def proposals(sampler, n):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        out = []
        for _ in range(n):
            trial = study.ask()
            x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 0, 9)
            study.tell(trial, [x, y])
            out.append((x, y))
        return out

    tpe = make_sampler("tpe", seed=3, budget=budget)
    assert (tpe._multivariate, tpe._group, tpe._constant_liar) == (True, True, True)
    modelled = proposals(tpe, startup + 3)
    random = proposals(optuna.samplers.RandomSampler(seed=3), startup + 3)
    assert modelled[:startup] == random[:startup] and modelled[startup] != random[startup]


@pytest.mark.parametrize("change, words", [
    (dict(proxy_settings=ProxySettings(lr=float("nan"))), "--lr nan"),
    (dict(proxy_settings=ProxySettings(lr=-1.0)), "--lr -1.0"),
    (dict(proxy_settings=ProxySettings(lr=1e308)), "at most 10"),
    (dict(proxy_settings=ProxySettings(bn_init_gain=float("inf"))), "--bn-gain inf"),
    (dict(proxy_settings=ProxySettings(warmup_fraction=2.0)), "warmup_fraction"),
    (dict(max_energy_mj=float("nan")), "--max-energy nan"),
    (dict(max_energy_mj=0.0), "above 0"),
    (dict(max_params=0), "--max-params 0"),
])
def test_numbers_no_training_can_use_are_refused_before_a_study_exists(tmp_path, split, change, words):
    """A NaN learning rate once reached the workers, whose study check then failed (NaN != NaN)."""
    with pytest.raises(SearchError, match=words.replace("+", r"\+")):
        run_search(_settings(tmp_path, **change), SearchSpace.from_yaml("space.yaml"), split, device=CPU)
    assert not (tmp_path / "t").exists()


def test_a_trial_failed_by_another_worker_meanwhile_is_one_warning_and_the_search_goes_on(tmp_path, split,
                                                                                        monkeypatch, caplog):
    """What a database outage longer than the heartbeat grace can do: another worker takes the trial
    for orphaned and fails it while this one trains it (and queues it again)."""
    import logging

    from snnas.nas.search.workers import retry

    real = proxy_module.train_proxy
    calls = []

    def reaped_meanwhile(arch, split_, settings, **kwargs):
        result = real(arch, split_, settings, **kwargs)
        calls.append(arch)
        if len(calls) == 1:
            study = optuna.load_study(study_name="t", storage=storage[0])
            running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))[0]
            study._storage.set_trial_user_attr(running._trial_id, "fail_reason", "worker died")
            study._storage.set_trial_state_values(running._trial_id, optuna.trial.TrialState.FAIL)
            retry(study, running)
        return result

    from snnas.nas.search.study import open_study

    settings = _settings(tmp_path, budget=2)
    space = SearchSpace.from_yaml("space.yaml")
    opened = open_study(settings, space, split)
    storage = [opened._storage]
    monkeypatch.setattr("snnas.nas.search.study.train_proxy", reaped_meanwhile)
    with caplog.at_level(logging.WARNING, logger="snnas.nas.search.study"):
        study = run_search(settings, space, split, device=CPU, study=opened)
    warned = [r.getMessage() for r in caplog.records if "taken for orphaned" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("trial 0 ")
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL and states.count(optuna.trial.TrialState.COMPLETE) == 2
