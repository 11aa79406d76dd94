"""Orphaned trials, torn journals and stops: a study survives them, and a rerun never hangs."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from snnas.nas.search.journal import open_journal, repair_journal
from snnas.nas.search.workers import HOST, counts_toward_budget, process_start, reap_dead_workers
from tests.cli.test_cli import snnas
from tests.faults.conftest import TINY, start, wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(tmp_path):
    storage, _ = open_journal(tmp_path / "study.journal")
    return optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])


def _running(study, worker=None, heartbeat=None):
    trial = study.ask()
    if worker is not None:
        trial.set_user_attr("worker", worker)
    if heartbeat is not None:
        trial.set_user_attr("heartbeat", heartbeat)
    return trial.number


def _a_dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphaned_trials_are_found_by_pid_start_time_host_and_heartbeat(tmp_path):
    study = _study(tmp_path)
    now = time.time()
    parent = os.getppid()
    orphans = {
        "never stamped": _running(study),
        "dead pid": _running(study, {"host": HOST, "pid": _a_dead_pid(), "started": None}, now),
        "reused pid": _running(study, {"host": HOST, "pid": parent, "started": -1}, now),
        "silent other host": _running(study, {"host": "elsewhere", "pid": 1, "started": 5}, now - 600),
    }
    alive = {
        "own trial": _running(study, {"host": HOST, "pid": os.getpid(), "started": process_start(os.getpid())}),
        "other host beating": _running(study, {"host": "elsewhere", "pid": 1, "started": 5}, now),
        "live local worker": _running(study, {"host": HOST, "pid": parent, "started": process_start(parent)}, now),
    }
    reaped = reap_dead_workers(study, grace_s=60.0)  # known dead at once, on this host
    assert set(reaped) == {orphans["dead pid"], orphans["reused pid"]}
    time.sleep(1.5)
    beating = next(t for t in study.trials if t.number == alive["other host beating"])
    study._storage.set_trial_user_attr(beating._trial_id, "heartbeat", time.time())
    reaped_late = reap_dead_workers(study, grace_s=1.0)  # silent ones only once the grace is over
    assert set(reaped_late) == {orphans["never stamped"], orphans["silent other host"]}
    states = {t.number: t for t in study.trials}
    for number in orphans.values():
        assert states[number].state == TrialState.FAIL and states[number].user_attrs["fail_reason"] == "worker died"
        assert not counts_toward_budget(states[number])
    assert states[alive["own trial"]].state == TrialState.RUNNING
    assert any(t.user_attrs.get("retry_of") == orphans["reused pid"] for t in study.trials)


@pytest.mark.slow  # a real search, stopped or damaged, then resumed
def test_a_rerun_waits_no_longer_than_the_heartbeat_grace_for_an_orphan(tmp_path):
    common = ["search", "--study", "o", "--out", str(tmp_path), "--heartbeat", "1", *TINY]
    assert snnas(*common, "--budget", "1").returncode == 0
    storage, _ = open_journal(tmp_path / "o" / "study.journal")
    study = optuna.load_study(study_name="o", storage=storage)
    ghost = study.ask(fixed_distributions=study.trials[0].distributions)  # died between ask and stamp
    started = time.perf_counter()
    out = snnas(*common, "--budget", "2", timeout=240)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="o", storage=storage)
    assert study.trials[ghost.number].state == TrialState.FAIL
    assert sum(counts_toward_budget(t) for t in study.trials) == 2
    assert time.perf_counter() - started < 200


@pytest.mark.slow  # a real search, stopped or damaged, then resumed
def test_a_torn_journal_tail_is_moved_aside_and_the_study_resumes(tmp_path):
    common = ["search", "--study", "t", "--out", str(tmp_path), *TINY]
    assert snnas(*common, "--budget", "2").returncode == 0
    journal = tmp_path / "t" / "study.journal"
    whole = journal.read_bytes()
    partial = b'{"op_code":5,"worker_id":"x","trial_id":1,"us'
    journal.write_bytes(whole + partial)  # a kill or a full disk during a write
    out = snnas(*common, "--budget", "3")
    assert out.returncode == 0, out.stderr
    assert "cut short" in out.stderr and "study.journal.torn-" in out.stderr
    backups = list(journal.parent.glob("study.journal.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes().strip() == partial
    storage, repaired = open_journal(journal)
    assert repaired is None
    study = optuna.load_study(study_name="t", storage=storage)
    assert sum(counts_toward_budget(t) for t in study.trials) == 3


def test_a_record_appended_after_a_torn_one_is_kept(tmp_path):
    """What Optuna leaves when a run appends after a torn write: both on one line ("Extra data")."""
    study = _study(tmp_path)
    study.enqueue_trial({"x": 1})
    journal = tmp_path / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[-1])
    broken = b"".join(lines[:-1]) + b'{"op_code":7,"wor' + lines[-1]
    journal.write_bytes(broken)
    repaired = repair_journal(journal)
    assert repaired is not None and repaired.kept_records == 1
    assert json.loads(journal.read_bytes().splitlines()[-1]) == record
    storage, _ = open_journal(journal)
    assert optuna.load_study(study_name="s", storage=storage).trials[0].state == TrialState.WAITING


def test_sigterm_before_training_starts_still_requeues_the_proposed_trial(tmp_path):
    """A stop after the candidate is proposed, before its training (parameter count, duplicate
    check): the trial is failed as interrupted and queued again, not left RUNNING."""
    run = start("search", "--study", "p", "--budget", "2", "--steps", "2", "--out", str(tmp_path), *TINY,
                env={**os.environ, "SNNAS_FAILPOINT": "proposed:1=sigterm"})
    _, err = run.communicate(timeout=300)
    assert run.returncode == 143 and "terminated: the results so far are written" in err, err
    storage, _ = open_journal(tmp_path / "p" / "study.journal")
    trials = optuna.load_study(study_name="p", storage=storage).trials
    assert [(t.state, t.user_attrs.get("fail_reason"), t.user_attrs.get("retry_of")) for t in trials] == \
        [(TrialState.FAIL, "interrupted", None), (TrialState.WAITING, None, 0)]


@pytest.mark.slow  # a real search, stopped or damaged, then resumed
def test_sigterm_stops_a_run_writes_the_results_and_requeues_the_running_trial(tmp_path):
    common = ["search", "--study", "g", "--budget", "4", "--steps", "40", "--out", str(tmp_path), *TINY]
    journal = tmp_path / "g" / "study.journal"
    run = start(*common)

    def in_training():
        if not journal.exists():
            return None
        storage, _ = open_journal(journal)
        trials = optuna.load_study(study_name="g", storage=storage).trials
        return any(t.state == TrialState.RUNNING and "arch" in t.user_attrs for t in trials)

    wait_for(in_training, timeout=240)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert "terminated: the results so far are written" in err and "Traceback" not in err
    assert (tmp_path / "g" / "trials.csv").is_file() and json.loads((tmp_path / "g" / "run.json").read_text())[
        "interrupted"]
    storage, _ = open_journal(journal)
    study = optuna.load_study(study_name="g", storage=storage)
    stopped = next(t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted")
    assert any(t.state == TrialState.WAITING and t.user_attrs.get("retry_of") == stopped.number for t in study.trials)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def _outage(monkeypatch, calls: int):
    """The database is unreachable for the next ``calls`` reads of trials (as Optuna reports it)."""
    import sqlalchemy

    real = optuna.storages.RDBStorage._get_trials
    left = [calls]

    def flaky(self, *args, **kwargs):
        if left[0] > 0:
            left[0] -= 1
            try:
                raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "_get_trials", flaky)


def test_a_database_that_goes_away_briefly_is_waited_for_with_one_line(tmp_path, monkeypatch, caplog):
    from snnas.nas.search.workers import rdb_storage

    storage = rdb_storage(f"sqlite:///{tmp_path / 'db.sqlite'}", heartbeat_s=1, label="--storage sqlite:///db",
                          retry_s=30)
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    _outage(monkeypatch, 3)
    with caplog.at_level(logging.INFO, logger="snnas.nas.search.workers"):
        fresh = optuna.load_study(study_name="s", storage=storage)
        assert len(fresh.trials) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("--storage sqlite:///db went away (")
    assert "server closed the connection" in warnings[0]
    assert "retrying" in warnings[0] and "\n" not in warnings[0]


def test_a_database_that_stays_away_ends_the_search_in_one_line_with_the_password_masked(tmp_path, monkeypatch):
    from snnas.nas.search.study import redact
    from snnas.nas.search.workers import StorageUnavailable, rdb_storage

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    storage = rdb_storage(url, heartbeat_s=1, label=redact("postgresql://u:s3cret@h/db", "postgresql://u:s3cret@h/db"),
                          retry_s=1.0)
    study = optuna.create_study(study_name="s", storage=storage)
    _outage(monkeypatch, 10**6)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as error:
        study.ask()
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "\n" not in message and "postgresql://u:***@h/db: unreachable for 1 s" in message and "s3cret" not in message


def test_a_request_the_database_rejects_is_not_retried(tmp_path, monkeypatch):
    from snnas.nas.search.workers import rdb_storage

    storage = rdb_storage(f"sqlite:///{tmp_path / 'db.sqlite'}", heartbeat_s=1, retry_s=30)
    optuna.create_study(study_name="s", storage=storage)
    calls = []

    def wrong(self, *args, **kwargs):
        calls.append(1)
        raise optuna.exceptions.StorageInternalError("bad data") from ValueError("too long")

    monkeypatch.setattr(optuna.storages.RDBStorage, "_get_trials", wrong)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        optuna.load_study(study_name="s", storage=storage).get_trials()
    assert len(calls) == 1


def test_silent_trials_are_not_reaped_right_after_the_database_came_back(tmp_path, monkeypatch):
    """No worker could store a heartbeat while the database was away: silence then is no sign of death."""
    from snnas.nas.search.workers import RetryingRDBStorage

    study = _study(tmp_path)
    silent = _running(study, {"host": "elsewhere", "pid": 1, "started": 5}, time.time() - 600)
    time.sleep(1.2)  # silent for longer than the grace below
    monkeypatch.setattr(RetryingRDBStorage, "back_at", time.monotonic())
    assert reap_dead_workers(study, grace_s=1.0) == []
    monkeypatch.setattr(RetryingRDBStorage, "back_at", time.monotonic() - 2.0)
    assert reap_dead_workers(study, grace_s=1.0) == [silent]
