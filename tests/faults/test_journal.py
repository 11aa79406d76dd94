"""The journal file: stale locks are broken whatever their target, and damage anywhere in the file
costs only the damaged record, never another trial or the trial numbers."""

import json
import logging
import os
import time

import optuna
import pytest
from optuna.trial import TrialState

from snnas.nas.search.journal import JournalError, JournalLock, open_journal, repair_journal

optuna.logging.set_verbosity(optuna.logging.WARNING)
TRIALS = 5


def _study(journal):
    """A small finished study, written by Optuna through snnas's journal: (its trials, the lines)."""
    storage, _ = open_journal(journal)
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr("snnas", {"space": "x"})
    for i in range(TRIALS):
        trial = study.ask()
        x = trial.suggest_int("x", 0, 100)
        trial.set_user_attr("worker", {"pid": 1})
        study.tell(trial, [x / 100, i + 1.0])
    return _trials(journal), journal.read_bytes().splitlines(keepends=True)


def _trials(journal):
    storage, _ = open_journal(journal)
    return {t.number: (t.state, t.values, t.params) for t in optuna.load_study(study_name="s", storage=storage).trials}


def _line(lines, op, trial_id=None):
    """The index of the first line with ``op`` (and ``trial_id``; the k-th creation for op 4)."""
    found = [i for i, line in enumerate(lines) if json.loads(line)["op_code"] == op and
             (trial_id is None or op == 4 or json.loads(line).get("trial_id") == trial_id)]
    return found[trial_id] if op == 4 and trial_id is not None else found[0]


def _flip(lines, index, at=30):
    """``lines`` with one byte of line ``index`` damaged (inside its worker id: the line stops being JSON
    unless ``at`` says otherwise)."""
    line = bytearray(lines[index])
    line[at] = ord("\x01")
    return b"".join(lines[:index]) + bytes(line) + b"".join(lines[index + 1:])


def _repaired(journal, data, caplog=None):
    journal.write_bytes(data)
    repair = repair_journal(journal)
    assert repair is not None
    assert "\n" not in str(repair)
    return repair


# --- B: damage anywhere in the file --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a parameter", "a user attribute", "state and values"])
def test_a_damaged_trial_record_costs_that_record_only(tmp_path, where):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    op, trial = {"a parameter": (5, 1), "a user attribute": (8, 1), "state and values": (6, 2)}[where]
    index = _line(lines, op, trial)
    repair = _repaired(journal, _flip(lines, index))
    start = sum(len(line) for line in lines[:index])
    assert f"damaged record (bytes {start}-{start + len(lines[index]) - 1}: {where} of trial {trial}" in str(repair)
    assert "interrupted write" not in str(repair) and "every other record kept" in str(repair)
    assert repair.backup.name.startswith("study.journal.damaged-")
    assert repair.backup.read_bytes().strip() == _flip(lines, index).splitlines()[index]
    after = _trials(journal)
    assert set(after) == set(before)
    for number in before:
        if number != trial:
            assert after[number] == before[number]  # the others keep their numbers, values and params
    if where == "state and values":  # its result is gone: it is unfinished, and a rerun retries it
        assert after[trial][0] == TrialState.RUNNING and "now unfinished" in str(repair)
    else:
        assert after[trial][:2] == before[trial][:2]


@pytest.mark.parametrize("trial", [0, 2])
def test_a_damaged_creation_record_is_rebuilt_and_no_trial_is_renumbered(tmp_path, trial):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    index = _line(lines, 4, trial)
    repair = _repaired(journal, _flip(lines, index))
    assert f"the record that created trial {trial}, rebuilt so later trials keep their numbers" in str(repair)
    after = _trials(journal)
    assert after == before  # its parameters, attributes and result were in the records after it


def test_a_line_break_turned_into_another_byte_keeps_both_records(tmp_path):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    index = _line(lines, 4, 3)
    data = bytearray(b"".join(lines))
    newline = sum(len(line) for line in lines[:index + 1]) - 1
    data[newline] = ord("X")
    repair = _repaired(journal, bytes(data))
    assert "line break lost" in str(repair) and "both kept" in str(repair)
    assert _trials(journal) == before


def test_a_damaged_study_record_keeps_every_trial(tmp_path):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    repair = _repaired(journal, _flip(lines, _line(lines, 2)))
    assert "a study attribute" in str(repair)
    assert _trials(journal) == before


def test_a_damaged_repeated_study_creation_of_a_rerun_changes_nothing(tmp_path):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    storage, _ = open_journal(journal)  # a rerun: Optuna writes the creation again, and ignores it
    optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"], load_if_exists=True)
    lines = journal.read_bytes().splitlines(keepends=True)
    repair = _repaired(journal, _flip(lines, len(lines) - 1))
    assert "a rerun's repeated creation of the study, which changes nothing" in str(repair)
    assert _trials(journal) == before


def test_a_damaged_study_creation_with_readable_fields_is_rebuilt(tmp_path):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    repair = _repaired(journal, _flip(lines, 0))
    assert "the record that created the study, rebuilt" in str(repair)
    assert _trials(journal) == before


def test_damage_that_cannot_be_repaired_safely_is_refused_in_one_line(tmp_path):
    journal = tmp_path / "study.journal"
    _, lines = _study(journal)
    name = lines[0].index(b'"study_name":"s"') + len(b'"study_name":"')
    damaged = _flip(lines, 0, at=name)  # the study's name itself is unreadable
    journal.write_bytes(damaged)
    with pytest.raises(JournalError) as error:
        open_journal(journal)
    message = str(error.value)
    assert "\n" not in message and str(journal) in message and f"bytes 0-{len(lines[0]) - 1}" in message
    assert "left as it is" in message
    assert journal.read_bytes() == damaged and not list(tmp_path.glob("study.journal.*"))


def test_a_record_with_an_unreadable_trial_whose_loss_would_renumber_is_refused(tmp_path):
    """A creation record damaged beyond recognition (no readable field says what it was): the
    records after it use the trial it created, so setting it aside would renumber them."""
    journal = tmp_path / "study.journal"
    _, lines = _study(journal)
    index = _line(lines, 4, 2)
    damaged = b"".join(lines[:index]) + b"\x00" * (len(lines[index]) - 1) + b"\n" + b"".join(lines[index + 1:])
    journal.write_bytes(damaged)
    with pytest.raises(JournalError, match="would renumber later trials"):
        open_journal(journal)
    assert journal.read_bytes() == damaged


def test_a_torn_last_record_is_still_an_interrupted_write(tmp_path):
    journal = tmp_path / "study.journal"
    before, lines = _study(journal)
    last = lines[-1][:40]
    repair = _repaired(journal, b"".join(lines[:-1]) + last)
    assert "cut short by an interrupted write" in str(repair) and "damaged" not in str(repair)
    assert repair.backup.name.startswith("study.journal.torn-")
    after = _trials(journal)
    assert {n: v for n, v in after.items() if n != TRIALS - 1} == {n: v for n, v in before.items() if n != TRIALS - 1}
    assert after[TRIALS - 1][0] == TrialState.RUNNING  # its last record, the result, was the one cut short


@pytest.mark.parametrize("foreign", [b'{"a": 1}', b"[1, 2, 3]", b'"text"', b"42"])
@pytest.mark.parametrize("where", ["middle", "end"])
def test_foreign_json_is_refused_in_one_line_naming_the_journal(tmp_path, foreign, where):
    journal = tmp_path / "study.journal"
    _, lines = _study(journal)
    data = b"".join(lines[:3]) + foreign + b"\n" + b"".join(lines[3:]) if where == "middle" else \
        b"".join(lines) + foreign + b"\n"
    journal.write_bytes(data)
    with pytest.raises(JournalError) as error:
        open_journal(journal)
    message = str(error.value)
    assert "\n" not in message and str(journal) in message and "not an Optuna journal record" in message
    assert journal.read_bytes() == data


def test_the_cli_reports_foreign_json_and_refused_damage_in_one_line(tmp_path):
    from tests.cli.test_cli import snnas

    folder = tmp_path / "s"
    folder.mkdir()
    _study(folder / "study.journal")
    with open(folder / "study.journal", "ab") as handle:
        handle.write(b'{"a": 1}\n')
    out = snnas("report", str(folder))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("snnas: error: ") and "study.journal" in out.stderr
    assert "not an Optuna journal record" in out.stderr


# --- A: locks left by a killed writer ------------------------------------------------------------------


def _leave_lock(journal, target):
    """What a writer killed while holding the lock leaves: the link, pointing at ``target``."""
    os.symlink(target, str(journal) + ".lock")


@pytest.mark.parametrize("form", ["relative", "absolute", "symlinked folder"])
def test_a_stale_lock_is_broken_whatever_its_target(tmp_path, monkeypatch, caplog, form):
    real = tmp_path / "real"
    (real / "s").mkdir(parents=True)
    os.symlink(real, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    journal = {"relative": "results/s/study.journal", "absolute": str(real / "s" / "study.journal"),
               "symlinked folder": str(tmp_path / "results" / "s" / "study.journal")}[form]
    from pathlib import Path

    storage, _ = open_journal(Path(journal))
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    _leave_lock(journal, journal)  # older snnas versions linked to the path as given
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="snnas.nas.search.journal"):
        storage, _ = open_journal(Path(journal), lock_grace_s=1.0)
        study = optuna.load_study(study_name="s", storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # a rerun writes again
    assert time.monotonic() - started < 10
    assert len(study.trials) == 2
    broken = [r for r in caplog.records if "stale journal lock" in r.getMessage()]
    assert len(broken) == 1 and "\n" not in broken[0].getMessage()
    assert not os.path.lexists(journal + ".lock")


def test_an_old_stale_lock_is_broken_without_waiting_the_whole_grace(tmp_path, caplog):
    journal = tmp_path / "study.journal"
    _study(journal)
    lock = str(journal) + ".lock"
    os.symlink("study.journal", lock)  # relative: the target does not resolve from the lock's folder
    old = time.time() - 3600
    os.utime(lock, (old, old), follow_symlinks=False)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="snnas.nas.search.journal"):
        repair_journal(journal)  # the default grace (Optuna's 30 s): the lock's own age says it is stale
    assert time.monotonic() - started < 5
    assert sum("stale journal lock" in r.getMessage() for r in caplog.records) == 1


def test_a_live_lock_is_waited_for_and_not_broken(tmp_path):
    journal = tmp_path / "study.journal"
    _study(journal)
    holder = JournalLock(str(journal), 5.0)
    holder.acquire()
    import threading

    threading.Timer(0.5, holder.release).start()
    started = time.monotonic()
    waiter = JournalLock(str(journal), 5.0)
    waiter.acquire()
    waiter.release()
    assert 0.4 < time.monotonic() - started < 4


def test_journal_paths_are_absolute_so_lock_targets_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from pathlib import Path

    storage, _ = open_journal(Path("study.journal"))
    assert os.path.isabs(storage._backend._file_path) and isinstance(storage._backend._lock, JournalLock)
