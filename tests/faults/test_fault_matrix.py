"""Fault injection: a search killed at every moment that matters, its disk filled, its parent killed
under its workers. After each, rerunning the same command finishes the budget exactly, with no
finished trial lost and no candidate evaluated twice. Slow (real runs, kills and restarts)."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from snnas.nas.search.journal import open_journal
from snnas.nas.search.workers import counts_toward_budget
from tests.cli.test_cli import snnas
from tests.faults.conftest import TINY, start, wait_for

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trials(folder, name):
    storage, _ = open_journal(folder / name / "study.journal")
    return optuna.load_study(study_name=name, storage=storage).trials


def _assert_finished_exactly(trials, budget):
    counted = [t for t in trials if counts_toward_budget(t)]
    assert len(counted) == budget
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    evaluated = [t for t in counted if t.state == TrialState.COMPLETE]
    keys = [repr(sorted(t.user_attrs["arch"].items())) for t in evaluated]
    assert len(keys) == len(set(keys)), [(t.number, t.state.name, t.user_attrs.get("retry_of"),
                                          t.user_attrs.get("fail_reason"), t.user_attrs.get("duplicate_of"),
                                          (t.user_attrs.get("worker") or {}).get("pid"),
                                          hash(repr(sorted((t.user_attrs.get("arch") or {}).items()))) % 1000)
                                         for t in trials]  # no architecture trained twice (re-proposals reuse, do not count)
    for t in trials:  # a trial killed mid-training is retried with its own parameters, once
        if t.user_attrs.get("fail_reason") == "worker died":
            assert [r for r in trials if r.user_attrs.get("retry_of") == t.number]


@pytest.mark.parametrize("point", ["training:2", "after_tell:2", "reports:1", "write:1"])
def test_sigkill_at_each_point_of_a_run_then_a_rerun_finishes_the_budget(tmp_path, point):
    common = ["search", "--study", "f", "--budget", "3", "--out", str(tmp_path), "--heartbeat", "1", *TINY]
    killed = subprocess.run([sys.executable, "-m", "snnas", *common], capture_output=True, text=True,
                            env={**os.environ, "SNNAS_FAILPOINT": point}, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = snnas(*common, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _assert_finished_exactly(_trials(tmp_path, "f"), 3)
    assert (tmp_path / "f" / "trials.csv").is_file() and not list((tmp_path / "f").glob(".*.partial"))


def test_killing_only_the_parent_stops_its_workers_and_a_rerun_finishes(tmp_path):
    common = ["search", "--study", "p", "--budget", "4", "--steps", "40", "--out", str(tmp_path),
              "--heartbeat", "1", *TINY, "--workers", "2"]  # after TINY, whose --workers 1 would otherwise win
    parent = start(*common)
    journal = tmp_path / "p" / "study.journal"

    def two_running():
        if not journal.exists():
            return None
        running = [t for t in _trials(tmp_path, "p") if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
        return {t.user_attrs["worker"]["pid"] for t in running} if len(running) >= 2 else None

    workers = wait_for(two_running, timeout=240)
    os.kill(parent.pid, signal.SIGKILL)
    parent.communicate()

    def gone():
        return all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in workers)

    wait_for(gone, timeout=30)  # the workers die with their parent
    resumed = snnas(*common, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _assert_finished_exactly(_trials(tmp_path, "p"), 4)


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@contextlib.contextmanager
def _small_disk(path, size):
    """A tmpfs of ``size`` at ``path`` (root only); skipped where it cannot be mounted."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_is_one_line_and_a_rerun_with_room_loses_nothing(tmp_path):
    disk = tmp_path / "disk"
    with _small_disk(disk, "96k") as mounted:
        common = ["search", "--study", "d", "--budget", "3", "--out", str(disk), *TINY]
        if mounted:
            full = snnas(*common, timeout=600)
        else:  # no tmpfs here: the first write of the reports fails as a full disk does
            full = subprocess.run([sys.executable, "-m", "snnas", *common], capture_output=True, text=True,
                                  env={**os.environ, "SNNAS_FAILPOINT": "write:1=enospc"}, timeout=600)
        errors = [line for line in full.stderr.splitlines() if line.startswith("snnas: ")]
        assert full.returncode == 2 and len(errors) == 1 and "no space left" in errors[0], full.stderr
        assert "Traceback" not in full.stderr
        kept = [t for t in _trials(disk, "d") if counts_toward_budget(t)]
        assert kept  # finished trials survived
        roomy = tmp_path / "roomy"
        shutil.copytree(disk, roomy)
    common = ["search", "--study", "d", "--budget", "3", "--out", str(roomy), *TINY]
    resumed = snnas(*common, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    trials = _trials(roomy, "d")
    _assert_finished_exactly(trials, 3)
    assert {t.number for t in kept} <= {t.number for t in trials if counts_toward_budget(t)}


@pytest.mark.postgres
def test_two_postgres_workers_one_killed_finish_the_budget_exactly(pg_url, tmp_path):
    name = f"m-{uuid.uuid4().hex[:8]}"
    common = ["search", "--storage", pg_url, "--study", name, "--budget", "4", "--steps", "40", "--heartbeat", "1",
              "--out", str(tmp_path), *TINY]
    assert snnas(*common, "--budget", "1", "--worker-index", "0").returncode == 0
    victim, survivor = start(*common, "--worker-index", "0"), start(*common, "--worker-index", "1")
    study = lambda: optuna.load_study(study_name=name, storage=pg_url)  # noqa: E731
    wait_for(lambda: [t for t in study().trials if t.state == TrialState.RUNNING and
                      t.user_attrs.get("worker", {}).get("index") == 0], timeout=240)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    _assert_finished_exactly(study().trials, 4)
    optuna.delete_study(study_name=name, storage=pg_url)
    time.sleep(0)
