"""End to end: the real ``snnas search`` and ``snnas report`` on tiny settings."""

import json

import pandas as pd

from tests.cli.test_cli import snnas

TINY = ["--steps", "2", "--batch-size", "16", "--train-size", "96", "--val-size", "48", "--sampler", "random",
        "--workers", "1"]


def test_search_writes_every_output_and_a_rerun_resumes(tmp_path):
    first = snnas("search", "--budget", "3", "--study", "e2e", "--out", str(tmp_path), *TINY,
                  "-p", "45nm-fp32", "-p", "loihi")
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "e2e"
    for name in ("trials.csv", "pareto.csv", "pareto.png", "pareto.pdf", "pareto.svg", "summary.json", "run.json",
                 "study.journal"):
        assert (folder / name).is_file(), name
    trials = pd.read_csv(folder / "trials.csv")
    assert trials["duplicate_of"].isna().sum() == 3 and trials["state"].eq("complete").all()
    assert {"energy_mj[45nm-fp32]", "energy_mj[loihi]", "params", "dense", "acs", "firing_rate", "zero_cost",
            "train_time_s", "seed", "pareto", "attention", "time_steps", "depths"} <= set(trials.columns)
    assert trials["accuracy"].between(0, 1).all() and (trials["energy_mj"] > 0).all()
    assert trials["energy_mj"].equals(trials["energy_mj[45nm-fp32]"])
    pareto = pd.read_csv(folder / "pareto.csv")
    assert set(pareto["trial"]) == set(trials.loc[trials["pareto"], "trial"])
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["hypervolume"] > 0 and summary["reference_point"][summary["objective"]] == 0.0
    run = json.loads((folder / "run.json").read_text())
    assert run["seed"] == 0 and run["data"]["fingerprint"] and run["versions"]["torch"].startswith("2.13")

    again = snnas("search", "--budget", "5", "--study", "e2e", "--out", str(tmp_path), *TINY,
                  "-p", "45nm-fp32", "-p", "loihi")
    assert again.returncode == 0, again.stderr
    resumed = pd.read_csv(folder / "trials.csv")
    evaluated = resumed[resumed["duplicate_of"].isna()]  # re-proposals reuse a result and use no budget
    assert len(evaluated) == 5 and resumed["trial"].tolist() == list(range(len(resumed)))
    pd.testing.assert_frame_equal(resumed.iloc[:3][["trial", "objective", "energy_mj"]],
                                  trials[["trial", "objective", "energy_mj"]])

    (folder / "trials.csv").unlink()
    rebuilt = snnas("report", str(folder))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(pd.read_csv(folder / "trials.csv")) == len(resumed)


def test_search_refuses_bad_inputs_with_one_line(tmp_path):
    bad_space = tmp_path / "space.yaml"
    bad_space.write_text("stages: [1]\nper_stage: {depth: 1, heads: [1], head_dim: [8], attention: [sssa], "
                         "patch_size: 1}\nglobal: {}\n")
    cases = [
        (["--data", str(tmp_path / "missing")], "missing"),
        (["--space", str(bad_space)], "per_stage.attention[0]"),
        (["--sampler", "grid"], "grid"),
        (["--profile", "tpu"], "tpu"),
    ]
    for extra, words in cases:
        out = snnas("search", "--budget", "1", "--out", str(tmp_path / "r"), *TINY[:-4], *extra)
        assert out.returncode == 2, (extra, out.stderr)
        assert words in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_space_commands(tmp_path):
    assert snnas("space", "validate", "space.yaml").returncode == 0
    shown = snnas("space", "show")
    assert shown.returncode == 0 and "per_stage.attention" in shown.stdout
    broken = tmp_path / "s.yaml"
    broken.write_text("stages: [1]\n")
    out = snnas("space", "validate", str(broken))
    assert out.returncode == 2 and "per_stage" in out.stderr


def test_unwritable_results_directory_is_one_line_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = snnas("search", "--budget", "1", "--out", str(blocker), *TINY)
    assert out.returncode == 2 and str(blocker) in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a directory"
