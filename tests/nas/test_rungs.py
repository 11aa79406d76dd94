"""Multi-fidelity search: rungs, promotion, calibration, resume and workers."""

import math
import os
import subprocess
import sys

import optuna
import pytest
import torch
from optuna.trial import TrialState

from snnas.nas.data import ProxySplit, load_dataset
from snnas.nas.report.tables import trials_frame
from snnas.nas.search import rungs as R
from snnas.nas.search.proxy import ProxySettings
from snnas.nas.search.space import SearchSpace
from snnas.nas.search.study import SearchError, SearchSettings, run_search
from snnas.nas.search.workers import counts_toward_budget
from tests.cli.test_cli import snnas
from tests.faults.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split():
    return ProxySplit.make(load_dataset("digits"), train_size=96, val_size=48, resolution=16)


def _settings(tmp_path, **kw):
    base = dict(study="r", out_dir=tmp_path, budget=6, sampler="random", seed=0, train_size=96, val_size=48,
                proxy_settings=ProxySettings(steps=2, batch_size=16, energy_samples=8, zero_cost_batch=8),
                rungs=(2, 4, 8), eta=2)
    base.update(kw)
    return SearchSettings(**base)


def test_parse_rungs_takes_increasing_step_counts_and_names_what_is_wrong():
    assert R.parse_rungs("100, 300,900") == (100, 300, 900)
    for text, part in (("100,x", "'x'"), ("100,-3", "'-3'"), ("0,10", "'0'")):
        with pytest.raises(ValueError, match=part):
            R.parse_rungs(text)
    for text in ("100", "300,100", "100,100"):
        with pytest.raises(ValueError, match="two or more increasing"):
            R.parse_rungs(text)


def test_pareto_ranks_sort_score_up_and_energy_down():
    points = [(0.9, 5.0), (0.5, 1.0), (0.4, 2.0), (0.9, 6.0), (0.3, 3.0)]
    assert R.pareto_ranks(points) == [0, 0, 1, 1, 2]


def test_promotion_keeps_the_best_share_of_a_rung_by_pareto_rank_then_score():
    assert R.promotable([], 0.1, 9.0, eta=3)  # the first result on a rung is the best of one
    others = [(0, 0.9, 1.0), (1, 0.8, 2.0), (2, 0.7, 3.0), (3, 0.6, 4.0), (4, 0.5, 5.0)]
    # six results, eta 3: the best two go on; (0.9, 1.0) dominates all the others
    assert R.promotable(others, 0.85, 1.5, eta=3)  # dominated only by (0.9, 1.0): second
    assert not R.promotable(others, 0.75, 2.5, eta=3)  # dominated by (0.8, 2.0) too: third
    assert not R.promotable(others, 0.4, 6.0, eta=3)
    assert R.promotable(others, 0.95, 0.5, eta=3)  # dominates everyone


def test_scores_of_higher_rungs_are_put_on_the_first_rungs_scale(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for first, third in ((0.10, 0.30), (0.12, 0.40), (0.14, 0.50)):  # rung 2 = 5 x rung 0 - 0.2
        t = study.ask()
        t.set_user_attr("rungs", {"0": {"score": first, "energy": 1.0}, "2": {"score": third, "energy": 1.0}})
        study.tell(t, [first, 1.0])
    assert R.first_rung_scale(study, 2, 0.45, None) == pytest.approx(0.13)  # the fitted line
    assert R.first_rung_scale(study, 0, 0.45, None) == 0.45
    assert R.first_rung_scale(study, 1, 0.45, 0.2) == pytest.approx(0.2)  # one pair: an offset, itself
    lone = optuna.create_study(directions=["maximize", "minimize"])
    assert R.first_rung_scale(lone, 1, 0.5, None) == 0.5  # nothing to calibrate on


def test_a_search_with_rungs_promotes_the_best_and_records_rung_and_cost(tmp_path, split, monkeypatch):
    import snnas.nas.search.study as study_module

    trained = []
    real = study_module.train_proxy

    def spy(arch, split_, settings, **kw):
        trained.append((settings.steps, settings.runs))
        return real(arch, split_, settings, **kw)

    monkeypatch.setattr(study_module, "train_proxy", spy)
    study = run_search(_settings(tmp_path), SearchSpace.from_yaml("space.yaml"), split, device=CPU)
    frame = trials_frame(study)
    done = frame[frame["state"].eq("complete") & frame["duplicate_of"].isna()]
    assert set(s for s, _ in trained) <= {2, 4, 8} and all(r == 1 for _, r in trained)
    assert done["rung"].max() >= 1 and done["rung"].min() == 0  # promoted and stopped candidates both
    assert (done["cost_images"] == done["rung"].map(lambda k: 16 * sum((2, 4, 8)[:int(k) + 1]))).all()
    assert len(trained) == int(done["rung"].sum() + len(done))
    for t in study.trials:
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
            stored = t.user_attrs["rungs"]
            assert sorted(stored, key=int) == [str(k) for k in range(t.user_attrs["rung"] + 1)]
            top = stored[str(t.user_attrs["rung"])]
            assert t.values[1] == pytest.approx(top["energy"])  # the energy of the highest rung
            assert math.isfinite(t.values[0])
    first = study.trials[0]
    assert first.user_attrs["rung"] == 2  # each rung's first result goes on
    assert frame["rung_scores"].str.count("/").max() == 2


def test_rungs_are_part_of_the_study_identity(tmp_path, split):
    space = SearchSpace.from_yaml("space.yaml")
    run_search(_settings(tmp_path, budget=1), space, split, device=CPU)
    with pytest.raises(SearchError, match="different rungs"):
        run_search(_settings(tmp_path, budget=2, rungs=(2, 6)), space, split, device=CPU)
    with pytest.raises(SearchError, match="--eta"):
        run_search(_settings(tmp_path, eta=1, study="e"), space, split, device=CPU)
    with pytest.raises(SearchError, match="--proxy train"):
        run_search(_settings(tmp_path, proxy="sahd", study="s"), space, split, device=CPU)


def test_the_cli_refuses_bad_rungs_in_one_line(tmp_path):
    out = snnas("search", "--rungs", "100,50", "--out", str(tmp_path))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "--rungs '100,50'" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def _journal_study(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="k", storage=JournalStorage(JournalFileBackend(str(path))))


@pytest.mark.slow  # a search killed in a promotion, then resumed
def test_a_search_killed_during_a_promotion_resumes_without_training_its_finished_rungs_again(tmp_path):
    common = ["search", "--study", "k", "--budget", "3", "--rungs", "6,12,24", "--out", str(tmp_path), *TINY]
    killed = subprocess.run([sys.executable, "-m", "snnas", *common], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "SNNAS_FAILPOINT": "rung:2=kill"})  # after trial 0's rung 1
    assert killed.returncode != 0
    resumed = snnas(*common, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    study = _journal_study(tmp_path / "k" / "study.journal")
    assert sum(counts_toward_budget(t) for t in study.trials) == 3
    dead = study.trials[0]
    assert dead.state == TrialState.FAIL and dead.user_attrs["rung"] == 1
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 0)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["rung"] == 2
    for k in ("0", "1"):  # taken over as measured (a new training would have its own timings)
        assert retry.user_attrs["rungs"][k] == dead.user_attrs["rungs"][k]
    trials_csv = (tmp_path / "k" / "trials.csv").read_text().splitlines()
    assert "rung" in trials_csv[0].split(",") and "cost_images" in trials_csv[0].split(",")


@pytest.mark.slow  # two worker processes on one study
def test_two_local_workers_share_a_multi_fidelity_study(tmp_path):
    common = ["search", "--study", "k", "--budget", "6", "--rungs", "4,8", "--eta", "2", "--out", str(tmp_path),
              *TINY, "--workers", "2"]
    out = snnas(*common, timeout=600)
    assert out.returncode == 0, out.stderr
    study = _journal_study(tmp_path / "k" / "study.journal")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert sum(counts_toward_budget(t) for t in study.trials) == 6
    assert {t.user_attrs["worker"]["index"] for t in study.trials} == {0, 1}
    assert any(t.user_attrs["rung"] == 1 for t in done) and all("rungs" in t.user_attrs for t in done)
