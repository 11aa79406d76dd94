"""Unattended runs: output to a log file, bad settings, hostile space files, names and credentials."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import snnas

TINY = ["--steps", "2", "--batch-size", "16", "--train-size", "96", "--val-size", "48", "--sampler", "random",
        "--workers", "1"]


def _one_error(out) -> str:
    lines = [line for line in out.stderr.splitlines() if line.startswith("snnas: ")]
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_a_logged_search_with_pruned_and_failed_candidates_runs_to_its_end(tmp_path):
    """stderr is a file here, not a terminal: every trial is a plain log line, pruned and failed too."""
    log = tmp_path / "log"
    with open(log, "w") as handle:  # the first candidate trained fails (an injected error), the next completes
        done = subprocess.run([sys.executable, "-m", "snnas", "search", "--budget", "2", "--study", "logged",
                               "--out", str(tmp_path / "r"), *TINY, "--max-params", "30000"],
                              stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
                              env={**os.environ, "SNNAS_FAILPOINT": "training:1=error"})
    text = log.read_text()
    assert done.returncode == 0, text
    assert "pruned: over --max-params" in text and "failed: RuntimeError: failpoint training" in text
    assert "internal error" not in text


def test_a_search_runs_from_any_directory_on_the_space_shipped_with_snnas(tmp_path):
    out = subprocess.run([sys.executable, "-m", "snnas", "search", "--budget", "1", "--study", "here",
                          "--out", str(tmp_path / "r"), *TINY], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = json.loads((tmp_path / "r" / "here" / "run.json").read_text())
    assert run["space"]["file"].endswith(os.path.join("search", "space.yaml"))
    shown = subprocess.run([sys.executable, "-m", "snnas", "space", "show"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert shown.returncode == 0 and "per_stage.attention" in shown.stdout


@pytest.mark.parametrize("extra, words", [
    (["--proxy", "bogus"], "--proxy 'bogus'"),
    (["--resolution", "12"], "need images divisible by"),
    (["--sampler", "grid"], "--sampler 'grid'"),
    (["--convention", "folklore"], "folklore"),
    (["--lr", "1e30"], "--lr 1e+30: a finite number above 0 and at most 10"),
    (["--lr", "nan"], "--lr nan"),
    (["--max-energy", "nan"], "--max-energy nan"),
])
def test_bad_settings_are_refused_before_the_study_exists(tmp_path, extra, words):
    out = snnas("search", "--budget", "1", "--study", "s", "--out", str(tmp_path), *TINY, *extra)
    assert words in _one_error(out)
    assert not (tmp_path / "s" / "study.journal").exists()  # nothing poisons a later run
    good = snnas("search", "--budget", "1", "--study", "s", "--out", str(tmp_path), *TINY)
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "", "-flag", "x" * 101, "name with space"])
def test_study_names_cannot_leave_the_results_folder(tmp_path, name):
    out_dir = tmp_path / "out"
    out = snnas("search", "--budget", "1", "--study", name, "--out", str(out_dir), *TINY)
    assert "--study" in _one_error(out)
    assert not any(p for p in tmp_path.rglob("*") if p.is_file())


def test_profile_values_must_be_finite(tmp_path):
    profile = Path(__file__).resolve().parents[2] / "energy" / "profiles" / "45nm-fp32.yaml"
    for hostile in (".nan", ".inf"):
        mine = tmp_path / f"bad{hostile}.yaml"
        mine.write_text(profile.read_text().replace("value: 4.6", f"value: {hostile}", 1))
        out = snnas("search", "--budget", "1", "--out", str(tmp_path / "r"), *TINY, "-p", str(mine))
        assert "finite non-negative" in _one_error(out)


def test_database_passwords_never_reach_the_disk_or_the_terminal(tmp_path):
    url = "postgresql://snnas:s3cr/t@p4ss@127.0.0.1:1/none"
    out = snnas("search", "--budget", "1", "--storage", url, "--out", str(tmp_path), *TINY)
    line = _one_error(out)
    assert "cannot connect" in line and "s3cr" not in out.stderr and "p4ss" not in out.stderr
    from snnas.nas.search.study import redact

    assert redact(f"failed for {url} and s3cr%2Ft%40p4ss", url).count("***") == 2


def test_an_anchor_bomb_is_refused_in_one_short_line_and_fast(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + \
        [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]" for p, c in zip("abcdefgh", "bcdefghi")]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\nstages: *i\n")
    start = time.perf_counter()
    out = snnas("space", "validate", str(bomb))
    line = _one_error(out)
    assert "expands to more than" in line and len(line) < 400 and time.perf_counter() - start < 30
    huge = tmp_path / "huge.yaml"
    huge.write_text("x" * (2 << 20))
    assert "bytes" in _one_error(snnas("space", "validate", str(huge)))


@pytest.mark.parametrize("key, spec, where", [
    ("per_stage.depth", "{low: 1, high: 1000000000000}", "per_stage.depth.high"),
    ("global.time_steps", "{low: 1, high: 100000000}", "global.time_steps.high"),
    ("per_stage.heads", "{low: 1, high: 100000000}", "per_stage.heads.high"),
])
def test_huge_ranges_are_checked_without_expanding_them(tmp_path, key, spec, where):
    space = (Path(__file__).resolve().parents[2] / "nas" / "search" / "space.yaml").read_text()
    section, field = key.split(".")
    lines = [line for line in space.splitlines() if not line.strip().startswith(f"{field}:")]
    at = lines.index(f"{section}:") + 1
    lines.insert(at, f"  {field}: {spec}")
    path = tmp_path / "space.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    line = _one_error(snnas("space", "validate", str(path)))
    assert where in line and time.perf_counter() - start < 30


def test_by_default_a_search_uses_every_usable_core_one_worker_each(tmp_path):
    from snnas.nas.search.workers import usable_cores

    plain = [a for a in TINY if a not in ("--workers", "1")] + ["--steps", "3"]
    out = snnas("search", "--budget", "3", "--study", "w", "--out", str(tmp_path), *plain)
    assert out.returncode == 0, out.stderr
    run = json.loads((tmp_path / "w" / "run.json").read_text())
    assert run["arguments"]["workers"] == usable_cores()
    import pandas as pd

    trials = pd.read_csv(tmp_path / "w" / "trials.csv")
    evaluated = trials[trials["state"].isin(["complete", "failed"]) & trials["duplicate_of"].isna()]
    assert len(evaluated) == 3
    assert set(trials["threads"].dropna()) == {max(1, usable_cores() // usable_cores())}
