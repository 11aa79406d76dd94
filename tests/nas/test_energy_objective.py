"""The search's energy objective (--energy-model arithmetic | lemaire), both recorded; the report's front on either."""

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from snnas.nas.data import ProxySplit, load_dataset
from snnas.nas.models.arch import ArchConfig
from snnas.nas.report.tables import trials_frame, write_reports
from snnas.nas.search.proxy import ProxySettings
from snnas.nas.search.space import SearchSpace
from snnas.nas.search.study import SearchError, SearchSettings, open_study, run_search
from tests.cli.test_cli import snnas

CPU = torch.device("cpu")
P = "45nm-fp32"


@pytest.fixture(scope="module")
def split():
    return ProxySplit.make(load_dataset("digits"), train_size=96, val_size=48, resolution=16)


TINY_SPACE = """version: 1
stages: [1]
per_stage: {depth: 1, heads: [1, 2], head_dim: 8, attention: [ssa, sdsa], patch_size: 1}
global: {time_steps: [1, 2], stem: sps, stem_downsample: 2, stem_pool: maxpool, downsample: conv, window: 3,
         dilations: [[1]], attn_order: kv_first, neuron: lif, v_threshold: 1.0, tau: 2.0, head_neuron: false,
         surrogate: sigmoid, residual: spike, mlp: mlp, mlp_ratio: 2}
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(TINY_SPACE)
    return SearchSpace.from_yaml(path)  # small networks: the energy models, not the space, are tested


def _settings(tmp_path, **kw):
    base = dict(study="t", out_dir=tmp_path, budget=2, sampler="random", seed=0, train_size=96, val_size=48,
                proxy_settings=ProxySettings(steps=2, batch_size=16, energy_samples=8, zero_cost_batch=8))
    base.update(kw)
    return SearchSettings(**base)


def _evaluated(study):
    return [t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]


def test_a_lemaire_search_tells_the_lemaire_energy_and_records_both(tmp_path, split, space):
    study = run_search(_settings(tmp_path, energy_model="lemaire", budget=1), space, split, device=CPU)
    trials = _evaluated(study)
    assert trials and study.user_attrs["snnas"]["energy_model"] == "lemaire"
    for t in trials:
        ua = t.user_attrs
        assert t.values[1] == ua["energy_lemaire_mj"][P] > 0
        assert ua["energy_mj"][P] > 0 and ua["energy_mj"][P] != ua["energy_lemaire_mj"][P]
        assert isinstance(ua["energy_complete"][P], bool) and isinstance(ua["energy_lemaire_complete"][P], bool)
    with pytest.raises(SearchError, match="different energy_model .'lemaire', now 'arithmetic'"):
        run_search(_settings(tmp_path, budget=3), space, split, device=CPU)

    folder = tmp_path / "t"
    summary = write_reports(study, folder)  # the study's objective by default
    trials_csv, pareto = pd.read_csv(folder / "trials.csv"), pd.read_csv(folder / "pareto.csv")
    assert {f"energy_mj[{P}]", f"energy_lemaire_mj[{P}]", f"energy_complete[{P}]",
            f"energy_lemaire_complete[{P}]"} <= set(trials_csv.columns)
    assert summary.energy_model == "lemaire" and len(pareto) == summary.front_size >= 1
    assert pareto["energy_mj"].equals(pareto[f"energy_lemaire_mj[{P}]"])
    other = write_reports(study, tmp_path / "arith", energy_model="arithmetic")
    pareto = pd.read_csv(tmp_path / "arith" / "pareto.csv")
    assert other.energy_model == "arithmetic" and pareto["energy_mj"].equals(pareto[f"energy_mj[{P}]"])
    assert (tmp_path / "arith" / "pareto.png").is_file() and (folder / "pareto.svg").is_file()


def test_a_study_without_the_key_resumes_as_arithmetic_and_refuses_lemaire(tmp_path, split, space):
    study = run_search(_settings(tmp_path, budget=1), space, split, device=CPU)
    assert "energy_model" not in study.user_attrs["snnas"]  # what studies made before --energy-model hold
    (trial,) = _evaluated(study)
    assert trial.values[1] == trial.user_attrs["energy_mj"][P]
    open_study(_settings(tmp_path, budget=1), space, split)  # resumes
    with pytest.raises(SearchError, match="different energy_model .'arithmetic', now 'lemaire'"):
        open_study(_settings(tmp_path, energy_model="lemaire"), space, split)
    with pytest.raises(SearchError, match="--energy-model 'memory': choose from arithmetic, lemaire"):
        run_search(_settings(tmp_path, energy_model="memory", study="m"), space, split, device=CPU)


def test_rungs_rank_and_tell_the_chosen_models_energy(tmp_path, split, space):
    study = run_search(_settings(tmp_path, energy_model="lemaire", rungs=(1, 2), eta=2, budget=1), space, split,
                       device=CPU)
    (t,) = _evaluated(study)  # the first result of a rung goes on: both rungs run
    assert t.user_attrs["rung"] == 1
    rungs = t.user_attrs["rungs"]
    assert all(r["energy"] == r["attrs"]["energy_lemaire_mj"][P] for r in rungs.values())
    assert t.values[1] == rungs["1"]["energy"] == t.user_attrs["energy_lemaire_mj"][P]


def _synthetic(energy_model=None, lemaire=True) -> optuna.Study:
    """Two trials: A dominates B by arithmetic energy; by Lemaire's energy both are on the front."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("snnas", {"objective_profile": "p", **({"energy_model": energy_model} if energy_model else {})})
    for acc, arith, mem in ((0.5, 1.0, 3.0), (0.4, 2.0, 2.0)):
        attrs = {"arch": ArchConfig().to_dict(), "params": 1000, "energy_mj": {"p": arith}, "energy_complete": {"p": True}}
        if lemaire:
            attrs |= {"energy_lemaire_mj": {"p": mem}, "energy_lemaire_complete": {"p": False}}
        told = mem if energy_model == "lemaire" else arith
        study.add_trial(optuna.trial.create_trial(values=[acc, told], user_attrs=attrs, state=TrialState.COMPLETE))
    return study


def test_the_front_is_drawn_on_the_requested_energy(tmp_path):
    study = _synthetic()
    assert trials_frame(study)["pareto"].tolist() == [True, False]
    assert trials_frame(study, "lemaire")["pareto"].tolist() == [True, True]
    assert trials_frame(_synthetic("lemaire"))["pareto"].tolist() == [True, True]  # the study's objective
    assert trials_frame(_synthetic("lemaire"), "arithmetic")["energy_mj"].tolist() == [1.0, 2.0]
    for model, rows in (("arithmetic", [0]), ("lemaire", [1, 0])):
        summary = write_reports(study, tmp_path / model, energy_model=model, latex=True)
        pareto = pd.read_csv(tmp_path / model / "pareto.csv")
        assert pareto["trial"].tolist() == rows and summary.plots and summary.energy_model == model
        column = "energy_mj[p]" if model == "arithmetic" else "energy_lemaire_mj[p]"
        assert pareto["energy_mj"].equals(pareto[column])
    assert "$\\geq$2" in (tmp_path / "lemaire" / "pareto.tex").read_text()  # Lemaire's incomplete figures
    with pytest.raises(ValueError, match="--energy-model 'joules'"):
        trials_frame(study, "joules")
    with pytest.raises(ValueError, match="holds no lemaire energies"):
        write_reports(_synthetic(lemaire=False), tmp_path / "old", energy_model="lemaire")


def test_the_cli_refuses_another_energy_model_in_one_line(tmp_path):
    out = snnas("search", "--energy-model", "memory", "--budget", "1", "--out", str(tmp_path))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "--energy-model 'memory': choose from arithmetic, lemaire" in out.stderr
    (tmp_path / "s").mkdir()
    out = snnas("report", str(tmp_path / "s"), "--energy-model", "joules")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--energy-model 'joules'" in out.stderr
