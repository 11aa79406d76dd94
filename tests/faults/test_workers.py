"""Many workers on PostgreSQL, killed workers, killed and resumed local runs."""

import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from snnas.nas.search.workers import counts_toward_budget
from tests.cli.test_cli import snnas
from tests.faults.conftest import TINY, start, wait_for

SLOW = pytest.mark.slow  # worker processes, kills and restarts: minutes, so .ci/run runs them with -m slow


def _load(name, storage):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def _journal(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def _running(name, storage):
    def check():
        try:
            study = _load(name, storage)
        except (KeyError, FileNotFoundError):
            return None
        running = [t for t in study.trials if t.state == TrialState.RUNNING and "arch" in t.user_attrs]
        return running[0] if running else None
    return check


def _two_workers(common: list[str], study_name: str, pg_url: str, *, timeout: int):
    """One worker creates the study with one trial, then two run side by side to the budget; the study."""
    first = snnas(*common, "--budget", "1", "--worker-index", "0")
    assert first.returncode == 0, first.stderr
    workers = [start(*common, "--worker-index", str(i)) for i in (0, 1)]
    for w in workers:
        _, err = w.communicate(timeout=timeout)
        assert w.returncode == 0, err
    return _load(study_name, pg_url)


@SLOW
@pytest.mark.postgres
def test_two_workers_share_one_study_and_finish_the_budget_exactly(pg_url, study_name, tmp_path):
    common = ["search", "--storage", pg_url, "--study", study_name, "--budget", "5", "--steps", "10",
              "--out", str(tmp_path), *TINY]
    study = _two_workers(common, study_name, pg_url, timeout=300)
    counted = [t for t in study.trials if counts_toward_budget(t)]
    assert len(counted) == 5
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    seed_of = {t.user_attrs["worker"]["index"]: t.user_attrs["worker"]["sampler_seed"] for t in counted}
    assert len(set(seed_of.values())) == len(seed_of)  # each worker seeds its sampler differently
    assert len({t.number for t in counted}) == 5


@SLOW
@pytest.mark.postgres
def test_a_worker_killed_mid_trial_has_its_trial_failed_and_retried(pg_url, study_name, tmp_path):
    common = ["search", "--storage", pg_url, "--study", study_name, "--budget", "2", "--steps", "40",
              "--heartbeat", "1", "--out", str(tmp_path), *TINY]
    victim = start(*common, "--worker-index", "0")
    trial = wait_for(_running(study_name, pg_url), timeout=120)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    survivor = snnas(*common, "--worker-index", "1")
    assert survivor.returncode == 0, survivor.stderr
    study = _load(study_name, pg_url)
    killed = study.trials[trial.number]
    assert killed.state == TrialState.FAIL and not counts_toward_budget(killed)
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == trial.number
               or t.system_attrs.get("failed_trial") == trial.number]
    assert retried and retried[0].state == TrialState.COMPLETE and retried[0].params == killed.params
    assert sum(counts_toward_budget(t) for t in study.trials) == 2


@SLOW
@pytest.mark.postgres
def test_a_silent_worker_on_another_host_is_failed_by_heartbeat_and_retried(pg_url, study_name, tmp_path):
    """No local pid to check: only the heartbeat grace period can tell the worker is gone."""
    from snnas.nas.search.workers import rdb_storage

    common = ["search", "--storage", pg_url, "--study", study_name, "--steps", "5", "--heartbeat", "1",
              "--out", str(tmp_path), *TINY]
    assert snnas(*common, "--budget", "1", "--worker-index", "0").returncode == 0
    storage = rdb_storage(pg_url, heartbeat_s=1)
    study = optuna.load_study(study_name=study_name, storage=storage)
    ghost = study.ask(fixed_distributions=study.trials[0].distributions)  # the ghost holds a real candidate
    ghost.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "index": 7, "sampler_seed": 7})
    storage.record_heartbeat(ghost._trial_id)
    finisher = snnas(*common, "--budget", "2", "--worker-index", "1")
    assert finisher.returncode == 0, finisher.stderr
    study = _load(study_name, pg_url)
    assert study.trials[ghost.number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == ghost.number
               or t.user_attrs.get("retry_of") == ghost.number]
    # the ghost drew every parameter; its retry uses those its candidate needs
    assert retried and retried[0].state == TrialState.COMPLETE and retried[0].params.items() <= ghost.params.items()
    assert sum(counts_toward_budget(t) for t in study.trials) == 2


def test_sqlite_is_refused_for_several_workers_and_bad_urls_are_one_line(tmp_path):
    out = snnas("search", "--storage", f"sqlite:///{tmp_path}/s.db", "--out", str(tmp_path), *TINY,
                "--workers", "2")  # after TINY, whose --workers 1 would otherwise win
    assert out.returncode == 2 and "sqlite" in out.stderr and "Traceback" not in out.stderr
    bad = snnas("search", "--storage", "postgresql://nobody:secret@127.0.0.1:1/none", "--out", str(tmp_path), *TINY)
    assert bad.returncode == 2 and "cannot connect" in bad.stderr and "secret" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def _one_done_one_running(name, journal):
    """Waits for a local study with a finished trial and one in training; returns the latter."""
    def check():
        if not journal.exists():
            return None
        study = _load(name, _journal(journal))
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        running = [t for t in study.trials if t.state == TrialState.RUNNING and "arch" in t.user_attrs]
        return running[0] if done and running else None
    return check


@SLOW
def test_a_local_run_killed_with_sigkill_resumes_and_loses_nothing(tmp_path):
    common = ["search", "--study", "k", "--budget", "3", "--steps", "40", "--out", str(tmp_path), *TINY]
    journal = tmp_path / "k" / "study.journal"

    run = start(*common)
    trial = wait_for(_one_done_one_running("k", journal), timeout=240)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    resumed = snnas(*common)
    assert resumed.returncode == 0, resumed.stderr
    study = _load("k", _journal(journal))
    assert sum(counts_toward_budget(t) for t in study.trials) == 3
    killed = study.trials[trial.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["fail_reason"] == "worker died"
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == trial.number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@SLOW
def test_ctrl_c_stops_cleanly_after_writing_the_results_so_far(tmp_path):
    common = ["search", "--study", "c", "--budget", "4", "--steps", "40", "--out", str(tmp_path), *TINY]
    journal = tmp_path / "c" / "study.journal"

    run = start(*common)
    wait_for(_one_done_one_running("c", journal), timeout=240)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    trials = (tmp_path / "c" / "trials.csv").read_text()
    assert "complete" in trials and "interrupted" in trials
    study = _load("c", _journal(journal))
    interrupted = next(t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted")
    assert not counts_toward_budget(interrupted)
    assert any(t.state == TrialState.WAITING and t.user_attrs.get("retry_of") == interrupted.number
               for t in study.trials)


@SLOW
def test_workers_that_die_make_a_non_zero_exit_and_a_rerun_finishes(tmp_path):
    """A run whose workers all died did not run its budget: it said so, but exited 0."""
    import subprocess
    import sys

    common = ["search", "--study", "w", "--budget", "2", "--steps", "3", "--out", str(tmp_path), *TINY,
              "--workers", "2"]  # after TINY, whose --workers 1 would otherwise win
    died = subprocess.run([sys.executable, "-m", "snnas", *common], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SNNAS_FAILPOINT": "training:1=kill"})  # each worker's first training
    assert died.returncode == 1, died.stderr
    assert "snnas-worker-0, snnas-worker-1 ended abnormally" in died.stderr and "Traceback" not in died.stderr
    assert (tmp_path / "w" / "trials.csv").is_file()  # the reports are still written
    resumed = snnas(*common, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert sum(counts_toward_budget(t) for t in _load("w", _journal(tmp_path / "w" / "study.journal")).trials) == 2


def test_an_error_inside_a_worker_is_one_line_and_exit_code_2(monkeypatch, capsys):
    from types import SimpleNamespace

    import snnas.nas.search.local as local
    import snnas.nas.search.study as study

    def refuse(*args, **kwargs):
        raise study.SearchError("study 'w' was created with a different data; use a new --study name")

    monkeypatch.setattr(local, "stop_on_sigterm", lambda: None)
    monkeypatch.setattr(local, "die_with_parent", lambda parent: None)
    monkeypatch.setattr(study, "run_search", refuse)
    threads = __import__("torch").get_num_threads()
    with pytest.raises(SystemExit) as info:
        local._worker_main(SimpleNamespace(seed=0), None, None, 0, threads, os.getppid())
    assert info.value.code == 2
    assert capsys.readouterr().err == "snnas: error: study 'w' was created with a different data; use a new --study name\n"


@SLOW
@pytest.mark.postgres
def test_workers_on_postgresql_share_a_multi_fidelity_study(pg_url, study_name, tmp_path):
    common = ["search", "--storage", pg_url, "--study", study_name, "--budget", "4", "--rungs", "4,8", "--eta", "2",
              "--out", str(tmp_path), *TINY]
    study = _two_workers(common, study_name, pg_url, timeout=600)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sum(counts_toward_budget(t) for t in study.trials) == 4
    assert all("rungs" in t.user_attrs and "cost_images" in t.user_attrs for t in done)
